"""One training step of the model bank, as a module so DistributedDataParallel can wrap it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from slimda_nas.backbones import SlimBackbone
from slimda_nas.methods import Method
from slimda_nas.slim.elastic import Setting, apply_setting


def domain_batches(
    x_src: Tensor, x_tgt: Tensor | None, separate: bool, channels_last: bool
) -> list[Tensor]:
    """What one model's forwards run on: the source and target batches apart (``separate``:
    each domain through BN alone) or as one batch (SymNet's), in the step's memory format."""
    if x_tgt is None:
        batches = [x_src]
    else:
        batches = [x_src, x_tgt] if separate else [torch.cat([x_src, x_tgt])]
    if channels_last:
        batches = [x.contiguous(memory_format=torch.channels_last) for x in batches]
    return batches


class BankStep(nn.Module):
    """Runs every sampled sub-network on the source and target batch and returns the summed
    loss of ``method`` with its terms (summed over models, detached)."""

    def __init__(
        self,
        model: SlimBackbone,
        method: Method,
        channels_last: bool = False,
        warmup: Method | None = None,
        separate_domains: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.method = method
        self.warmup = warmup  # the method of the warm-up phase (in-place distillation)
        self.channels_last = channels_last
        self.separate_domains = separate_domains

    def forward(
        self,
        x_src: Tensor,
        y_src: Tensor,
        x_tgt: Tensor | None,
        widths: Sequence[Setting | dict[str, int]],
        progress: float,
        warmup: bool = False,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        method = self.warmup if warmup else self.method
        n_src = x_src.shape[0]
        with_target = x_tgt is not None and method.uses_target
        batches = domain_batches(
            x_src, x_tgt if with_target else None, self.separate_domains, self.channels_last
        )
        terms: dict[str, Tensor] = {}
        states = []
        for w in widths:  # a configuration's setting (or its layer widths alone)
            apply_setting(self.model, w if isinstance(w, Setting) else Setting(widths=w))
            # joint: one forward, as in SymNet (BN sees both domains); separate: one per domain
            feats = [self.model.forward_features(x) for x in batches]
            f_src, f_tgt = feats if len(feats) == 2 else (feats[0][:n_src], feats[0][n_src:])
            model_terms, state = method.model_terms(self.model, f_src, f_tgt, y_src, progress)
            states.append(state)
            for k, v in model_terms.items():
                terms[k] = terms[k] + v if k in terms else v
        terms.update(method.ensemble_terms(self.model, states, progress))
        apply_setting(self.model, Setting())
        total = sum(terms.values())
        return total, {k: v.detach() for k, v in terms.items()}
