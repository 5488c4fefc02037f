"""A small VGG-style CNN for 32x32 digits (MNIST, USPS, MNIST-M), trained from scratch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from slimda_nas.backbones._base import SlimBackbone
from slimda_nas.backbones._registry import register_backbone
from slimda_nas.errors import ConfigError
from slimda_nas.slim.ops import SlimBatchNorm1d, SlimBatchNorm2d, SlimConv2d, SlimLinear
from slimda_nas.slim.ordering import ChannelGroup

# (out channels, max-pool after) per 3x3 conv; three pools take 32 px to 4 px.
_DIGITS_CONVS = ((32, True), (64, False), (64, True), (128, False), (128, True))


class DigitsCNN(SlimBackbone):
    """Five 3x3 conv + BN + ReLU layers (pooling after the 1st, 3rd and 5th) and one hidden
    fully connected layer. Every conv and the hidden layer are slimmable."""

    default_input_size = 32
    # The hidden layer reads the flattened 4x4 maps, so the input size is fixed; and there is
    # no elastic depth: no layer is residual, each one changes the representation, so none
    # can be skipped as an identity.
    elastic_resolution = False
    space_defaults = {
        "widths": [0.0625, 0.125, 0.1875, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0],
        "divisor": 1,
        "min_channels": 2,
    }

    def __init__(
        self,
        num_classes: int = 10,
        heads: Sequence[str] = ("fc",),
        in_channels: int = 3,
        convs: Sequence[tuple[int, bool]] = _DIGITS_CONVS,
        hidden: int = 256,
        input_size: int = 32,
    ) -> None:
        super().__init__(heads)
        pools = sum(pool for _, pool in convs)
        if input_size % (2**pools):
            raise ValueError(f"input_size must be a multiple of {2**pools}, got {input_size}")
        self._pools = []
        c_in = in_channels
        for i, (c_out, pool) in enumerate(convs, start=1):
            setattr(self, f"conv{i}", SlimConv2d(c_in, c_out, 3, padding=1, bias=False))
            setattr(self, f"bn{i}", SlimBatchNorm2d(c_out))
            self._pools.append(pool)
            c_in = c_out
        # not in place: dense distillation reads the batch norms' outputs (stage_outputs)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        spatial = (input_size // 2**pools) ** 2
        self.fc1 = SlimLinear(c_in * spatial, hidden, bias=False)
        self.bn_fc1 = SlimBatchNorm1d(hidden)
        self.dropout = nn.Dropout(0.5)
        self._make_heads(hidden, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.fit_input(x)
        for i, pool in enumerate(self._pools, start=1):
            x = self.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
            if pool:
                x = self.pool(x)
        x = torch.flatten(x, 1)
        return self.dropout(self.relu(self.bn_fc1(self.fc1(x))))

    def stage_outputs(self) -> list[str]:
        return [f"bn{i}" for i in range(1, len(self._pools) + 1)]

    def channel_groups(self) -> list[ChannelGroup]:
        n = len(self._pools)
        # fc1 reads the last feature map flattened: each channel is a block of spatial positions
        spatial = self.fc1.in_features // getattr(self, f"conv{n}").out_channels
        groups = [
            ChannelGroup(
                (f"conv{i}",),
                (f"bn{i}",),
                ((f"conv{i + 1}", 1),) if i < n else (("fc1", spatial),),
            )
            for i in range(1, n + 1)
        ]
        return groups + [ChannelGroup(("fc1",), ("bn_fc1",), self._head_consumers())]


@register_backbone("digits_cnn")
def digits_cnn(
    *, num_classes: int = 10, heads: Sequence[str] = ("fc",), weights: None = None, **kwargs
) -> DigitsCNN:
    """Slimmable digits CNN. It has no pretrained weights (``weights`` must be ``None``)."""
    if weights is not None:
        raise ConfigError(
            f"field 'weights': digits_cnn has no pretrained weights (trained from scratch: "
            f"leave weights out or set it to null), got {weights!r}"
        )
    return DigitsCNN(num_classes=num_classes, heads=heads, **kwargs)
