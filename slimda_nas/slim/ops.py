"""Slimmable layers: torch layers at their largest width that run on a leading slice.

Each layer keeps its standard parameter names (``weight``, ``bias``, ``running_mean``...), so
checkpoints of the dense network load unchanged. Input widths are read from the input tensor;
the output width of a layer that owns one is the plain attribute ``active_out`` (``None`` means
full width), set from a configuration by :func:`slimda_nas.slim.set_widths`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SlimConv2d(nn.Conv2d):
    """A Conv2d that runs on the first input channels and the first ``active_out`` filters.

    Grouped and depthwise convolutions keep the channels per group fixed, so the number of
    active groups follows the active input width and the output width follows the groups:
    such a layer has no output width of its own.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.active_out: int | None = None

    @property
    def owns_width(self) -> bool:
        """Whether the output width can be chosen (only ungrouped convolutions)."""
        return self.groups == 1

    def active_shape(self, in_channels: int) -> tuple[int, int, int]:
        """(active in, active out, active groups) for an input of ``in_channels``."""
        if self.groups == 1:
            out = self.out_channels if self.active_out is None else self.active_out
            return in_channels, out, 1
        per_group_in = self.in_channels // self.groups
        per_group_out = self.out_channels // self.groups
        if in_channels % per_group_in:
            raise ValueError(
                f"grouped conv with {per_group_in} channels per group got {in_channels} inputs"
            )
        groups = in_channels // per_group_in
        return in_channels, groups * per_group_out, groups

    def forward(self, x: Tensor) -> Tensor:
        in_c, out_c, groups = self.active_shape(x.shape[1])
        weight = self.weight
        if out_c != self.out_channels or in_c != self.in_channels:
            weight = weight[:out_c, : in_c // groups]
        bias = None if self.bias is None else self.bias[:out_c]
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, groups)


class _SlimBatchNorm:
    """Batch norm whose parameters and running statistics are shared and sliced to the input."""

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        # Same bookkeeping as nn.BatchNorm2d, on the first c channels.
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or self.running_mean is None
        return F.batch_norm(
            x,
            None if self.running_mean is None else self.running_mean[:c],
            None if self.running_var is None else self.running_var[:c],
            None if self.weight is None else self.weight[:c],
            None if self.bias is None else self.bias[:c],
            use_batch_stats,
            factor,
            self.eps,
        )


class SlimBatchNorm2d(_SlimBatchNorm, nn.BatchNorm2d):
    """BatchNorm2d on the first input channels."""


class SlimBatchNorm1d(_SlimBatchNorm, nn.BatchNorm1d):
    """BatchNorm1d on the first input features."""


class SlimLinear(nn.Linear):
    """A Linear layer on the first input features and the first ``active_out`` outputs."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.active_out: int | None = None

    owns_width = True

    def forward(self, x: Tensor) -> Tensor:
        in_f = x.shape[-1]
        out_f = self.out_features if self.active_out is None else self.active_out
        weight = self.weight
        if in_f != self.in_features or out_f != self.out_features:
            weight = weight[:out_f, :in_f]
        bias = None if self.bias is None else self.bias[:out_f]
        return F.linear(x, weight, bias)


SLIM_LAYERS = (SlimConv2d, SlimBatchNorm1d, SlimBatchNorm2d, SlimLinear)


def is_width_owner(module: nn.Module) -> bool:
    """True for layers whose output width a configuration sets."""
    return isinstance(module, (SlimConv2d, SlimLinear)) and module.owns_width


def set_widths(model: nn.Module, widths: dict[str, int]) -> None:
    """Set the output width of every width-owning layer: ``widths[name]``, else full width.

    ``widths`` maps module names (as in ``model.named_modules()``) to channel counts. Names that
    are not width-owning layers of ``model`` raise ``KeyError``.
    """
    owners = {n: m for n, m in model.named_modules() if is_width_owner(m)}
    unknown = set(widths) - set(owners)
    if unknown:
        raise KeyError(f"not slimmable layers of this model: {sorted(unknown)}")
    for name, module in owners.items():
        width = widths.get(name)
        full = module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
        if width is not None and not 1 <= width <= full:
            raise ValueError(f"layer {name!r}: width {width} outside 1..{full}")
        module.active_out = None if width is None or width == full else int(width)


@torch.no_grad()
def active_widths(model: nn.Module) -> dict[str, int]:
    """The output width of every width-owning layer as currently set."""
    out = {}
    for name, m in model.named_modules():
        if is_width_owner(m):
            full = m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
            out[name] = full if m.active_out is None else m.active_out
    return out
