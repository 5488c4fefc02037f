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


class IndexStream:
    """Endless batches of indices into ``range(size)``: one seeded permutation per epoch,
    concatenated, so a batch may straddle two epochs and nothing is dropped. ``key`` names the
    stream (a data set's name), so two streams of one seed differ. Resumable bit for bit."""

    def __init__(self, size: int, seed: int, key: str) -> None:
        if size < 1:
            raise ValueError(f"IndexStream: {key} has no items")
        self.size, self.seed, self.key = int(size), int(seed), key
        self.epoch = 0
        self.offset = 0
        self._perm: tuple[int, Tensor] | None = None

    def take(self, count: int) -> Tensor:
        """The next ``count`` indices."""
        parts, need = [], count
        while need:
            perm = self._epoch_perm()
            part = perm[self.offset : self.offset + need]
            parts.append(part)
            need -= len(part)
            self.offset += len(part)
            if self.offset == self.size:
                self.epoch, self.offset = self.epoch + 1, 0
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _epoch_perm(self) -> Tensor:
        if self._perm is None or self._perm[0] != self.epoch:
            seed = _seed64("epoch", self.seed, self.key, self.size, self.epoch)
            self._perm = (self.epoch, _permutation(self.size, seed))
        return self._perm[1]

    def state_dict(self) -> dict:
        return {
            "seed": self.seed,
            "size": self.size,
            "name": self.key,
            "epoch": self.epoch,
            "offset": self.offset,
        }

    def load_state_dict(self, state: dict, **expected: object) -> None:
        """Resume; the seed, size and name (and any ``expected`` extra) must match."""
        mine = {"seed": self.seed, "size": self.size, "name": self.key, **expected}
        for key, value in mine.items():
            if state.get(key) != value:
                raise CheckpointError(
                    f"loader state: {key}: expected {value!r} (this loader), got {state.get(key)!r}"
                )
        epoch, offset = state["epoch"], state["offset"]
        if (
            not (isinstance(epoch, int) and isinstance(offset, int))
            or epoch < 0
            or not (0 <= offset < self.size)
        ):
            raise CheckpointError(
                f"loader state: epoch/offset: got {epoch}/{offset} for {self.size} items"
            )
        self.epoch, self.offset = epoch, offset


class InfiniteLoader:
    """Endless training batches, each a full ``batch_size``, over an :class:`IndexStream`
    (one permutation per epoch, seeded from ``(seed, epoch)``; sets smaller than a batch work).
    The augmentation of a batch is seeded from ``(seed, epoch, position)`` of its first index,
    so ``state_dict``/``load_state_dict`` resume bit for bit. Use different seeds for the
    source and the target loader.
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
        self._stream = IndexStream(len(data), self.seed, data.name)

    @property
    def epoch(self) -> int:
        """Epochs completed so far (the epoch of the next index)."""
        return self._stream.epoch

    def __iter__(self) -> InfiniteLoader:
        return self

    def __next__(self) -> Tensor | tuple[Tensor, Tensor]:
        epoch, offset = self._stream.epoch, self._stream.offset
        index = self._stream.take(self.batch_size)
        generator = torch.Generator().manual_seed(
            _seed64("augment", self.seed, self.data.name, epoch, offset)
        )
        x = self.data.train_batch(index, generator)
        return (x, self._labels[index]) if self._labels is not None else x

    def state_dict(self) -> dict:
        return {**self._stream.state_dict(), "batch_size": self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        """Resume; the seed, batch size and data must be the ones the state was saved with."""
        self._stream.load_state_dict(state, batch_size=self.batch_size)
