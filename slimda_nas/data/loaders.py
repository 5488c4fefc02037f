"""Feeding batches: an endless, resumable training stream and deterministic evaluation passes.

All randomness is derived from integers by hashing (sha256, then SplitMix64 for per-index
keys), not from global RNG state, so the same seed gives the same indices in any process, on
any machine, with any torch or numpy version. Crop and flip draws use a ``torch.Generator``
seeded the same way (torch's CPU Mersenne Twister is itself portable).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from slimda_nas.data.imageset import ImageSet
from slimda_nas.errors import CheckpointError

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _seed64(*parts: object) -> int:
    """A 63-bit seed from a tuple of plain values (stable across runs, unlike ``hash``)."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def _permutation(n: int, seed: int) -> Tensor:
    """A pseudo-random permutation of range(n): indices sorted by SplitMix64 keys.

    A prefix of the permutation is a uniform draw without replacement, and prefixes nest:
    the first 100 of a 500-draw are the 100-draw with the same seed.
    """
    with np.errstate(over="ignore"):
        x = np.uint64(seed) + (np.arange(n, dtype=np.uint64) + np.uint64(1)) * _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return torch.from_numpy(np.argsort(x, kind="stable").astype(np.int64))


def fixed_subset(data: ImageSet, size: int, seed: int) -> Tensor:
    """``min(size, len(data))`` distinct indices drawn with ``seed`` (for BN re-estimation and
    UPEM), identical across processes and machines; the order is the draw order."""
    if size < 0:
        raise ValueError(f"fixed_subset: size: expected >= 0, got {size}")
    return _permutation(len(data), _seed64("subset", seed, data.name, len(data)))[:size].clone()


def eval_batches(
    data: ImageSet, batch_size: int, index: Tensor | None = None, with_labels: bool = False
) -> Iterator[Tensor | tuple[Tensor, Tensor]]:
    """Evaluation-transformed batches over ``index`` (default: every image), in order."""
    if batch_size < 1:
        raise ValueError(f"eval_batches: batch_size: expected >= 1, got {batch_size}")
    idx = torch.arange(len(data)) if index is None else torch.as_tensor(index, dtype=torch.int64)
    labels = data.labels if with_labels else None  # refuse early on an unlabelled view
    for start in range(0, len(idx), batch_size):
        part = idx[start : start + batch_size]
        x = data.eval_batch(part)
        yield (x, labels[part]) if labels is not None else x


class InfiniteLoader:
    """Endless training batches, each a full ``batch_size``.

    The index stream is the concatenation of one permutation per epoch (seeded from
    ``(seed, epoch)``); a batch may straddle two epochs, so nothing is dropped and sets smaller
    than a batch work. The augmentation of a batch is seeded from ``(seed, epoch, position)``
    of its first index, so ``state_dict``/``load_state_dict`` resume bit for bit. Use different
    seeds for the source and the target loader.
    """

    def __init__(
        self, data: ImageSet, batch_size: int, seed: int, with_labels: bool = True
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"InfiniteLoader: batch_size: expected >= 1, got {batch_size}")
        if len(data) == 0:
            raise ValueError(f"InfiniteLoader: {data.name} has no images")
        self.data = data
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.with_labels = with_labels
        self._labels = data.labels if with_labels else None  # refuse early on unlabelled views
        self._epoch = 0
        self._offset = 0
        self._perm: tuple[int, Tensor] | None = None

    @property
    def epoch(self) -> int:
        """Epochs completed so far (the epoch of the next index)."""
        return self._epoch

    def __iter__(self) -> InfiniteLoader:
        return self

    def __next__(self) -> Tensor | tuple[Tensor, Tensor]:
        epoch, offset = self._epoch, self._offset
        index = self._next_indices()
        generator = torch.Generator().manual_seed(
            _seed64("augment", self.seed, self.data.name, epoch, offset)
        )
        x = self.data.train_batch(index, generator)
        return (x, self._labels[index]) if self._labels is not None else x

    def _next_indices(self) -> Tensor:
        n, parts, need = len(self.data), [], self.batch_size
        while need:
            perm = self._epoch_perm()
            take = perm[self._offset : self._offset + need]
            parts.append(take)
            need -= len(take)
            self._offset += len(take)
            if self._offset == n:
                self._epoch, self._offset = self._epoch + 1, 0
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _epoch_perm(self) -> Tensor:
        if self._perm is None or self._perm[0] != self._epoch:
            seed = _seed64("epoch", self.seed, self.data.name, len(self.data), self._epoch)
            self._perm = (self._epoch, _permutation(len(self.data), seed))
        return self._perm[1]

    def state_dict(self) -> dict:
        return {
            "seed": self.seed,
            "batch_size": self.batch_size,
            "size": len(self.data),
            "name": self.data.name,
            "epoch": self._epoch,
            "offset": self._offset,
        }

    def load_state_dict(self, state: dict) -> None:
        """Resume; the seed, batch size and data must be the ones the state was saved with."""
        for key, mine in (
            ("seed", self.seed),
            ("batch_size", self.batch_size),
            ("size", len(self.data)),
            ("name", self.data.name),
        ):
            if state.get(key) != mine:
                raise CheckpointError(
                    f"loader state: {key}: expected {mine!r} (this loader), got {state.get(key)!r}"
                )
        epoch, offset = int(state["epoch"]), int(state["offset"])
        if epoch < 0 or not 0 <= offset < len(self.data):
            raise CheckpointError(
                f"loader state: epoch/offset: got {epoch}/{offset} for {len(self.data)} images"
            )
        self._epoch, self._offset = epoch, offset
