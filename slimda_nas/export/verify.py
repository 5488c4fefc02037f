"""Checks an exported file must pass: its logits equal the bank's sub-network's, its MACs equal
the search's figure, and its accuracy equals the bank's. A failure is an error, not a warning."""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from slimda_nas.cost.macs import thop_profile
from slimda_nas.export.formats import Runner
from slimda_nas.search.record import same_settings
from slimda_nas.slim.elastic import resize_input


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """True fp32 on CUDA inside the block: cuDNN convolutions default to TF32, whose ~1e-3
    relative error would swamp the comparison (an exported file run on the CPU is exact fp32)."""
    knobs = [
        (torch.backends.cudnn.conv, "fp32_precision"),
        (torch.backends.cuda.matmul, "fp32_precision"),
    ]
    if not all(hasattr(obj, name) for obj, name in knobs):  # torch < 2.9
        knobs = [(torch.backends.cudnn, "allow_tf32"), (torch.backends.cuda.matmul, "allow_tf32")]
    saved = [getattr(obj, name) for obj, name in knobs]
    try:
        for obj, name in knobs:
            setattr(obj, name, "ieee" if name == "fp32_precision" else False)
        yield
    finally:
        for (obj, name), value in zip(knobs, saved, strict=True):
            setattr(obj, name, value)


def at_resolution(runner: Runner, size: int) -> Runner:
    """``runner`` fed the stored images shrunk to ``size`` (its model's input), by the helper
    the bank itself resizes with, so that both see the same pixels."""
    return lambda x: runner(resize_input(x, size))


def _run(runner: Runner, batches: Iterable[Tensor], limit: int | None) -> Tensor:
    out, n = [], 0
    with torch.no_grad():
        for x in batches:
            if limit is not None and n >= limit:
                break
            x = x[: None if limit is None else limit - n].cpu()
            out.append(runner(x).float())
            n += len(x)
    return torch.cat(out)


def logits_check(
    runner: Runner,
    batches: list[Tensor],
    reference: Tensor,
    tolerance: float,
    limit: int | None = None,
) -> dict:
    """(a) Logits of the exported file against the bank's on the same target images.

    The tolerance is relative to the largest reference logit (at least 1), so it means the same
    for a model whose logits are in the tens as for one whose logits are below one.
    """
    out = _run(runner, batches, limit)
    ref = reference[: len(out)].float().cpu()
    diff = float((out - ref).abs().max()) if len(out) else math.inf
    tol = tolerance * max(1.0, float(ref.abs().max()))
    same = float((out.argmax(1) == ref.argmax(1)).float().mean())
    return {
        "images": len(out),
        "max_abs_diff": diff,
        "tolerance": tol,
        "top1_agreement": same,
        "passed": diff <= tol,
    }


def macs_check(
    plain: nn.Module, input_shape: tuple[int, ...], cost_model: int, search: int | None
) -> dict:
    """(b) thop on the exported plain module (a copy: thop leaves buffers behind) against the
    search's figure and the analytic cost model."""
    macs, params = thop_profile(copy.deepcopy(plain), input_shape)
    passed = macs == cost_model and (search is None or macs == search)
    return {
        "thop": macs,
        "cost_model": cost_model,
        "search": search,
        "params": params,
        "passed": passed,
    }


def upem_check(upem: Mapping[str, float], chosen, evaluator) -> dict | None:
    """The exported sub-network's UPEM beside the search's figure, recorded but not enforced:
    the same settings on another device (TF32 convolutions on a GPU) move a small UPEM by more
    than any fixed tolerance, and the logits check already ties the file to the bank."""
    if chosen.point is None:
        return None
    metric = evaluator.settings.metric
    ours, theirs = float(upem[metric]), float(chosen.point.upem.get(metric, math.nan))
    same = chosen.settings is None or same_settings(chosen.settings, evaluator.record())
    return {
        "metric": metric,
        "export": ours,
        "search": theirs,
        "relative_difference": abs(ours - theirs) / max(abs(theirs), 1e-12),
        "same_settings": same,
    }


def accuracy_check(
    runner: Runner, labelled: Iterable[tuple[Tensor, Tensor]], bank: float, images: int
) -> dict:
    """(c) Accuracy of the exported file on the labelled target test split against the bank's
    (measured the same way on the same images). Near-tied logits may flip one prediction, so a
    difference of one image or 0.1 %, whichever is larger, is accepted."""
    correct = n = 0
    with torch.no_grad():
        for x, y in labelled:
            correct += int((runner(x.cpu()).argmax(1) == y.cpu()).sum())
            n += len(y)
    acc = correct / max(n, 1)
    slack = max(1.0 / max(n, 1), 1e-3)
    return {
        "exported": acc,
        "bank": bank,
        "images": n,
        "passed": n == images and abs(acc - bank) <= slack + 1e-12,
    }


def limited(
    labelled: Iterable[tuple[Tensor, Tensor]], limit: int | None
) -> Iterable[tuple[Tensor, Tensor]]:
    """The first ``limit`` labelled images (all when None)."""
    n = 0
    for x, y in labelled:
        if limit is not None and n >= limit:
            return
        take = len(y) if limit is None else min(len(y), limit - n)
        yield x[:take], y[:take]
        n += take


@dataclass(frozen=True, kw_only=True)
class FileCheck:
    """One written file's checks, as a reader shows them."""

    name: str
    bytes: int
    max_abs_diff: float
    seconds: float  # write and verify
    accuracy: tuple[float, float, int] | None  # (the file's, the bank's, images), if labelled


def file_checks(verification: Mapping) -> list[FileCheck]:
    """The ``files`` of a ``verification`` record, typed."""
    out = []
    for name, f in verification["files"].items():
        acc = f.get("accuracy")
        out.append(
            FileCheck(
                name=name,
                bytes=int(f["bytes"]),
                max_abs_diff=float(f["logits"]["max_abs_diff"]),
                seconds=float(f["seconds"]["write_and_verify"]),
                accuracy=None if not acc else (acc["exported"], acc["bank"], int(acc["images"])),
            )
        )
    return out


def macs_passed(verification: Mapping) -> bool:
    """Whether thop's count of the file equals the search's."""
    return bool(verification["macs"]["passed"])


def failures(record: Mapping) -> list[str]:
    """One phrase per failed check of a ``verification`` record."""
    out = []
    m = record["macs"]
    if not m["passed"]:
        out.append(
            f"MACs: thop counts {m['thop']:,}, the search {m['search'] or m['cost_model']:,}"
        )
    for name, f in record["files"].items():
        lg = f["logits"]
        if not lg["passed"]:
            out.append(
                f"{name}: logits differ from the bank's by up to {lg['max_abs_diff']:.3g} "
                f"(tolerance {lg['tolerance']:.3g})"
            )
        acc = f.get("accuracy")
        if acc and not acc["passed"]:
            out.append(
                f"{name}: accuracy {acc['exported']:.4%} on {acc['images']} images, the bank's "
                f"{acc['bank']:.4%}"
            )
    return out
