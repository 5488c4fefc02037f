"""Batch transforms on stored uint8 images: crop, flip, scale to [0, 1], normalise.

Images are stored already resized (shorter side ``resize_size(S)``), so a batch only crops:
training takes a random S x S crop and a random horizontal flip, evaluation the centre crop.
Both match torchvision's ``RandomCrop``/``CenterCrop`` + ``ToTensor`` + ``Normalize``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DIGITS_MEAN = (0.5, 0.5, 0.5)
DIGITS_STD = (0.5, 0.5, 0.5)

Stored = Tensor | Sequence[Tensor]  # (N, 3, h, w) uint8, or N tensors (3, h_i, w_i)


def resize_size(input_size: int) -> int:
    """Shorter side before cropping: the usual 256 for 224 (``S * 256 / 224``, floored)."""
    return input_size * 256 // 224


def normalise(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 (N, C, H, W) -> float, in ``ToTensor`` then ``Normalize`` order (same rounding)."""
    out = x.to(torch.float32).div_(255)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return out.sub_(m).div_(s)


class DigitsTransform:
    """Digits are stored at their final 3x32x32: no augmentation, only normalisation."""

    mean = DIGITS_MEAN
    std = DIGITS_STD

    def __init__(self, input_size: int = 32) -> None:
        self.input_size = input_size

    def train(self, images: Stored, generator: torch.Generator) -> Tensor:
        return self.eval(images)

    def eval(self, images: Stored) -> Tensor:
        x = images if isinstance(images, Tensor) else torch.stack(list(images))
        return normalise(x, self.mean, self.std)


class CropTransform:
    """Random crop + flip for training, centre crop for evaluation; ImageNet statistics."""

    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(self, input_size: int) -> None:
        self.input_size = input_size

    def train(self, images: Stored, generator: torch.Generator) -> Tensor:
        """Offsets and flips come from ``generator`` only, so a seeded batch is reproducible."""
        s = self.input_size
        draws = torch.rand((len(images), 3), generator=generator, dtype=torch.float64).tolist()
        crops = []
        for img, (u_top, u_left, u_flip) in zip(images, draws, strict=True):
            h, w = img.shape[-2:]
            top, left = int(u_top * (h - s + 1)), int(u_left * (w - s + 1))
            crop = img[:, top : top + s, left : left + s]
            crops.append(crop.flip(-1) if u_flip < 0.5 else crop)
        return normalise(_stack(crops, s), self.mean, self.std)

    def eval(self, images: Stored) -> Tensor:
        s = self.input_size
        crops = [center_crop(img, s) for img in images]
        return normalise(_stack(crops, s), self.mean, self.std)


def center_crop(img: Tensor, s: int) -> Tensor:
    """The centre ``s`` x ``s`` of a (C, h, w) image, rounded as torchvision's ``CenterCrop``."""
    h, w = img.shape[-2:]
    top, left = int(round((h - s) / 2.0)), int(round((w - s) / 2.0))
    return img[:, top : top + s, left : left + s]


def _stack(crops: list[Tensor], s: int) -> Tensor:
    """Copy crops into one preallocated batch (cheaper than ``torch.stack`` on strided views)."""
    out = torch.empty((len(crops), 3, s, s), dtype=torch.uint8)
    for slot, crop in zip(out, crops, strict=True):
        slot.copy_(crop)
    return out
