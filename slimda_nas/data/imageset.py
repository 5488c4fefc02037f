"""``ImageSet``: one split of one domain, decoded once and held in memory as uint8."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor

from slimda_nas.data.transforms import CropTransform, DigitsTransform

Index = Tensor | Sequence[int]


class LabelAccessError(RuntimeError):
    """Raised when code reads the labels of the unlabelled target training view."""


class ImageSet:
    """Stored images + labels + the transform that turns them into network inputs.

    ``pixels`` is a (N, 3, h, w) uint8 tensor (digits) or a list of N (3, h_i, w_i) uint8
    tensors (image folders; sizes may differ). Views made by :meth:`unlabelled` share storage.
    """

    def __init__(
        self,
        name: str,
        classes: list[str],
        pixels: Tensor | list[Tensor],
        labels: Tensor,
        transform: DigitsTransform | CropTransform,
    ) -> None:
        if len(pixels) != len(labels):
            raise ValueError(f"{name}: {len(pixels)} images but {len(labels)} labels")
        self.name = name
        self.classes = list(classes)
        self.transform = transform
        self._pixels = pixels
        self._labels = labels.to(torch.int64)
        self._labelled = True

    def __len__(self) -> int:
        return len(self._labels)

    def __repr__(self) -> str:
        kind = "labelled" if self._labelled else "unlabelled"
        return f"ImageSet({self.name!r}, {len(self)} images, {len(self.classes)} classes, {kind})"

    @property
    def labelled(self) -> bool:
        return self._labelled

    @property
    def input_size(self) -> int:
        return self.transform.input_size

    @property
    def labels(self) -> Tensor:
        """int64 (N,). The unlabelled view refuses, so target labels cannot leak into training."""
        if not self._labelled:
            raise LabelAccessError(
                f"{self.name}: this is the unlabelled target view; the search and training never "
                "read target labels (accuracy uses TaskData.target_test)"
            )
        return self._labels

    def unlabelled(self) -> ImageSet:
        """A view on the same storage whose ``labels`` raise :class:`LabelAccessError`."""
        view = copy.copy(self)
        view._labelled = False
        return view

    def images(self, index: Index) -> Tensor | list[Tensor]:
        """Stored uint8 images: one (N, 3, h, w) tensor when all share a size, else a list."""
        idx = self._index(index)
        if isinstance(self._pixels, Tensor):
            return self._pixels[idx]
        items = [self._pixels[i] for i in idx.tolist()]
        if items and all(t.shape == items[0].shape for t in items):
            return torch.stack(items)
        return items

    def train_batch(self, index: Index, generator: torch.Generator) -> Tensor:
        """float (N, 3, S, S): training augmentation (none for digits), normalised."""
        return self.transform.train(self._select(index), generator)

    def eval_batch(self, index: Index) -> Tensor:
        """float (N, 3, S, S): evaluation transform (centre crop for images), normalised."""
        return self.transform.eval(self._select(index))

    def _select(self, index: Index) -> Tensor | list[Tensor]:
        idx = self._index(index)
        if isinstance(self._pixels, Tensor):
            return self._pixels[idx]
        return [self._pixels[i] for i in idx.tolist()]

    def _index(self, index: Index) -> Tensor:
        idx = torch.as_tensor(index, dtype=torch.int64).reshape(-1)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= len(self)):
            raise IndexError(f"{self.name}: index out of range for {len(self)} images")
        return idx
