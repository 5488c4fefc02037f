"""Cut a sub-network out of a model bank as a plain PyTorch module.

The result holds ``nn.Conv2d`` / ``nn.BatchNorm2d`` / ``nn.Linear`` layers (exact classes, so
thop and exporters see standard layers) with the sliced weights and statistics, and gives the
same outputs as the bank run at the same widths. At a reduced depth the skipped blocks are
replaced by ``nn.Identity`` (no weights, no MACs), and at a reduced resolution the copy takes
inputs of that size (it does not resize: what it is given is what it runs on).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from slimda_nas.slim.elastic import (
    Setting,
    apply_setting,
    current_setting,
    set_depths,
    set_resolution,
    skipped_blocks,
)
from slimda_nas.slim.ops import (
    SLIM_LAYERS,
    SlimBatchNorm1d,
    SlimBatchNorm2d,
    SlimConv2d,
    SlimLinear,
)


@torch.no_grad()
def trace_channels(
    model: nn.Module, example: Tensor, heads: Sequence[str] | None = None
) -> dict[str, tuple[int, int]]:
    """(input channels, output channels) of every slimmable layer at the current widths."""
    seen: dict[str, tuple[int, int]] = {}
    hooks = []

    def record(name: str):
        def hook(module, inputs, output):
            seen[name] = (inputs[0].shape[1], output.shape[1])

        return hook

    for name, m in model.named_modules():
        if isinstance(m, SLIM_LAYERS):
            hooks.append(m.register_forward_hook(record(name)))
    was_training = model.training
    model.eval()
    try:
        if heads is None:
            model(example)
        else:
            model(example, heads=heads)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return seen


def _plain(module: nn.Module, c_in: int, c_out: int) -> nn.Module:
    if isinstance(module, SlimConv2d):
        _, out, groups = module.active_shape(c_in)
        conv = nn.Conv2d(
            c_in,
            out,
            module.kernel_size,
            module.stride,
            module.padding,
            module.dilation,
            groups,
            module.bias is not None,
            module.padding_mode,
        )
        conv.weight.copy_(module.weight[:out, : c_in // groups])
        if module.bias is not None:
            conv.bias.copy_(module.bias[:out])
        return conv
    if isinstance(module, (SlimBatchNorm1d, SlimBatchNorm2d)):
        cls = nn.BatchNorm2d if isinstance(module, SlimBatchNorm2d) else nn.BatchNorm1d
        bn = cls(c_in, module.eps, module.momentum, module.affine, module.track_running_stats)
        if module.affine:
            bn.weight.copy_(module.weight[:c_in])
            bn.bias.copy_(module.bias[:c_in])
        if module.track_running_stats:
            bn.running_mean.copy_(module.running_mean[:c_in])
            bn.running_var.copy_(module.running_var[:c_in])
            bn.num_batches_tracked.copy_(module.num_batches_tracked)
        return bn
    if isinstance(module, SlimLinear):
        lin = nn.Linear(c_in, c_out, module.bias is not None)
        lin.weight.copy_(module.weight[:c_out, :c_in])
        if module.bias is not None:
            lin.bias.copy_(module.bias[:c_out])
        return lin
    raise TypeError(type(module).__name__)


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


@torch.no_grad()
def materialize_widths(
    model: nn.Module,
    widths: Mapping[str, int],
    example: Tensor,
    keep_heads: Sequence[str] | None = None,
) -> nn.Module:
    """A standalone copy of ``model`` at the given layer widths (see :func:`set_widths`).

    With ``keep_heads`` (for a :class:`~slimda_nas.backbones.SlimBackbone`), the other heads are
    dropped and the first kept head becomes the one ``forward`` returns.
    """
    return materialize_setting(model, Setting(widths=dict(widths)), example, keep_heads)


@torch.no_grad()
def materialize_setting(
    model: nn.Module,
    setting: Setting,
    example: Tensor,
    keep_heads: Sequence[str] | None = None,
) -> nn.Module:
    """A standalone copy of ``model`` at ``setting`` (widths, depths, resolution) that takes
    ``example``-shaped inputs: give it ``example`` at the setting's resolution."""
    previous = current_setting(model)
    heads_all = getattr(model, "head_names", None)
    apply_setting(model, setting)
    try:
        shapes = trace_channels(model, example, heads=heads_all)
        plain = copy.deepcopy(model)
        skipped = skipped_blocks(model)
    finally:
        apply_setting(model, previous)
    for name in skipped:  # before the layers: a skipped block's layers never ran
        _set_submodule(plain, name, nn.Identity())
    set_depths(plain, {})
    set_resolution(plain, None)
    for name, m in list(plain.named_modules()):
        if isinstance(m, SLIM_LAYERS):
            if name not in shapes:
                if keep_heads is not None and name in (heads_all or ()) and name not in keep_heads:
                    continue
                raise RuntimeError(f"layer {name!r} was not run by forward(); cannot size it")
            _set_submodule(plain, name, _plain(m, *shapes[name]))
    if keep_heads is not None:
        for h in heads_all:
            if h not in keep_heads:
                delattr(plain, h)
        plain.head_names = tuple(keep_heads)
    return plain.eval()
