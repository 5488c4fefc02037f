"""Slimmable ResNet-50 with torchvision's parameter names, so its state_dict loads unchanged."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from slimda_nas.backbones._base import SlimBackbone, load_dense_state_dict, read_state_dict_file
from slimda_nas.backbones._registry import register_backbone
from slimda_nas.slim.ops import SlimBatchNorm2d, SlimConv2d
from slimda_nas.slim.ordering import ChannelGroup


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (stride on the 3x3 conv, "ResNet v1.5") with slimmable layers.

    ``conv1``/``conv2`` set the block's mid width; ``conv3`` and ``downsample.0`` write into
    the stage's residual stream, whose width the stage's blocks share.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: bool = False):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = SlimConv2d(inplanes, planes, 1, bias=False)
        self.bn1 = SlimBatchNorm2d(planes)
        self.conv2 = SlimConv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = SlimBatchNorm2d(planes)
        self.conv3 = SlimConv2d(planes, out, 1, bias=False)
        self.bn3 = SlimBatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Sequential | None = None
        if downsample:
            self.downsample = nn.Sequential(
                SlimConv2d(inplanes, out, 1, stride=stride, bias=False), SlimBatchNorm2d(out)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(SlimBackbone):
    """torchvision's bottleneck ResNet (``layers`` blocks per stage) built from slimmable layers.

    Module names (``conv1``, ``bn1``, ``layer1..4``, ``fc``) are torchvision's: they are the
    checkpoint contract.
    """

    # For `slimda-nas space init`: 0.125 is the smallest ratio whose rounding stays distinct
    # on the 64-channel layers (0.0625 and 0.125 both give 8 there).
    space_defaults = {
        "widths": [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0],
        "divisor": 8,
        "min_channels": 8,
    }

    def __init__(
        self,
        layers: Sequence[int] = (3, 4, 6, 3),
        num_classes: int = 1000,
        heads: Sequence[str] = ("fc",),
        in_channels: int = 3,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__(heads)
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"layers must be 4 positive block counts, got {list(layers)}")
        self.conv1 = SlimConv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = SlimBatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = 64
        for i, (planes, blocks) in enumerate(
            zip((64, 128, 256, 512), layers, strict=True), start=1
        ):
            stride = 1 if i == 1 else 2
            stage = [Bottleneck(inplanes, planes, stride, downsample=True)]
            inplanes = planes * Bottleneck.expansion
            stage += [Bottleneck(inplanes, planes) for _ in range(1, blocks)]
            self.add_module(f"layer{i}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self._make_heads(inplanes, num_classes)
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        # torchvision's initialisation, so training from scratch behaves the same.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)

    def _stages(self) -> list[nn.Sequential]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.fit_input(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i, stage in enumerate(self._stages(), start=1):
            k = self.stage_depth(f"layer{i}", len(stage))
            x = stage(x) if k == len(stage) else stage[:k](x)  # the first k blocks
        return torch.flatten(self.avgpool(x), 1)

    def depth_stages(self) -> dict[str, tuple[str, ...]]:
        """Every stage: blocks after the first add their input to an output of the same
        shape, so a stage may stop after any of them (the first, with its downsample, always
        runs)."""
        return {
            f"layer{i}": tuple(f"layer{i}.{j}" for j in range(len(stage)))
            for i, stage in enumerate(self._stages(), start=1)
            if len(stage) > 1
        }

    def tied_layers(self) -> list[tuple[str, ...]]:
        """Per stage: the shortcut conv and every block's conv3 (all summed into one stream)."""
        groups = []
        for i, stage in enumerate(self._stages(), start=1):
            names = [f"layer{i}.0.downsample.0"]
            names += [f"layer{i}.{j}.conv3" for j in range(len(stage))]
            groups.append(tuple(names))
        return groups

    def stage_outputs(self) -> list[str]:
        """Each stage, or at a reduced depth its last block that runs."""
        out = []
        for i, stage in enumerate(self._stages(), start=1):
            k = self.stage_depth(f"layer{i}", len(stage))
            out.append(f"layer{i}" if k == len(stage) else f"layer{i}.{k - 1}")
        return out

    def channel_groups(self) -> list[ChannelGroup]:
        stages = self._stages()

        def readers(i: int) -> tuple[tuple[str, int], ...]:
            """Who reads stage ``i``'s stream (0: the stem): the next blocks' conv1, the next
            stage's shortcut, or the heads after the last stage."""
            if i == len(stages):
                return self._head_consumers()
            nxt = f"layer{i + 1}"
            return ((f"{nxt}.0.conv1", 1), (f"{nxt}.0.downsample.0", 1))

        groups = [ChannelGroup(("conv1",), ("bn1",), readers(0))]
        for i, stage in enumerate(stages, start=1):
            for j in range(len(stage)):
                b = f"layer{i}.{j}"
                groups.append(ChannelGroup((f"{b}.conv1",), (f"{b}.bn1",), ((f"{b}.conv2", 1),)))
                groups.append(ChannelGroup((f"{b}.conv2",), (f"{b}.bn2",), ((f"{b}.conv3", 1),)))
            blocks = range(len(stage))
            groups.append(
                ChannelGroup(
                    (f"layer{i}.0.downsample.0", *(f"layer{i}.{j}.conv3" for j in blocks)),
                    (f"layer{i}.0.downsample.1", *(f"layer{i}.{j}.bn3" for j in blocks)),
                    tuple((f"layer{i}.{j}.conv1", 1) for j in blocks if j) + readers(i),
                )
            )
        return groups


@register_backbone("resnet50")
def resnet50(
    *,
    num_classes: int = 1000,
    heads: Sequence[str] = ("fc",),
    weights: str | os.PathLike | None = None,
    in_channels: int = 3,
    input_size: int = 224,
    **kwargs,
) -> ResNet:
    """Slimmable ResNet-50.

    ``weights`` is ``None`` (torchvision's random init) or the path of a torchvision
    ``resnet50`` state_dict (there is no download). Its ``fc`` loads into a head named ``fc``
    of the same shape; other heads start fresh. ``input_size`` is accepted for the search
    space and otherwise unused: adaptive pooling takes any size.
    """
    del input_size
    model = ResNet(
        (3, 4, 6, 3), num_classes=num_classes, heads=heads, in_channels=in_channels, **kwargs
    )
    if weights is not None:
        if not isinstance(weights, (str, os.PathLike)):
            raise ValueError(f"resnet50: weights must be None or a file path, got {weights!r}")
        state = read_state_dict_file(weights, "a torchvision resnet50 state_dict")
        load_dense_state_dict(model, state, str(weights), classifier="fc")
    return model
