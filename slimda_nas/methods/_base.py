"""The interface every training method implements, and the head calls they share."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from slimda_nas.backbones import SlimBackbone

HEADS = ("cs", "ct", "ca")
"""Every bank has the tri-classifier heads, whatever the method, so banks are interchangeable."""


class Method:
    """A way to train the bank. One training step calls :meth:`model_terms` once per sampled
    model (features of the source and target batch at that model's widths), then
    :meth:`ensemble_terms` once with what those calls returned (``progress``: the fraction of
    the phase done, in [0, 1]). The step minimises the sum of
    all terms; each method routes gradients by what it detaches.
    """

    name: str = ""
    uses_target: bool = True
    trained_heads: tuple[str, ...] = HEADS
    default_deploy_head: str = "ca"

    @classmethod
    def from_options(cls, **seed_options) -> Method:
        """The method built from the run config's ``distillation`` section (most ignore it)."""
        return cls()

    def model_terms(
        self, model: SlimBackbone, f_src: Tensor, f_tgt: Tensor, y_src: Tensor, progress: float
    ) -> tuple[dict[str, Tensor], Any]:
        raise NotImplementedError

    def ensemble_terms(
        self, model: SlimBackbone, states: list[Any], progress: float
    ) -> dict[str, Tensor]:
        return {}


def head_only(head: nn.Linear, f: Tensor) -> Tensor:
    """Head logits whose gradient reaches the head's weights only (features detached)."""
    return head(f.detach())


def features_only(head: nn.Linear, f: Tensor) -> Tensor:
    """Head logits whose gradient reaches the features only (head weights detached)."""
    bias = None if head.bias is None else head.bias.detach()
    return F.linear(f, head.weight[:, : f.shape[1]].detach(), bias)
