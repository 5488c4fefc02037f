"""Export formats: how a plain sub-network is written, and how the written file is run again
(with torch alone, or an ONNX runtime) so that it can be verified."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from slimda_nas._io import atomic_write
from slimda_nas.deploy.runtimes import (
    Runner,
    RuntimeMissing,
    check_onnx_exporter,
    onnx_bytes,
    onnx_runner,
    onnx_runtime_name,
    onnxruntime,
)
from slimda_nas.errors import UserError


class ExportError(UserError):
    """An export cannot be written, or the written model fails its verification."""


@dataclass(frozen=True)
class Format:
    """One way to write a model. ``save`` writes the file; ``load`` returns a function from an
    input batch (on the CPU) to logits, running the file as a user would (None: the file holds
    weights only and is loaded into a rebuilt architecture, see :func:`state_dict_loader`)."""

    name: str
    file: str
    save: Callable[[nn.Module, Tensor, Path], None]
    load: Callable[[Path], Runner] | None
    runtime: Callable[[], str]
    #: images a verification may run through this runtime (None: all); the ONNX reference
    #: evaluator is pure numpy, far too slow for a whole test split.
    max_images: Callable[[], int | None] = lambda: None
    #: raises a one-line ExportError when the exporter is missing (checked before any work)
    check: Callable[[], None] = lambda: None


@contextlib.contextmanager
def _quiet_jit():
    """torch 2.14 deprecates torch.jit with a FutureWarning on every call: silence it here only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit.*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


# -- TorchScript --------------------------------------------------------------------------------
def _bytes(path: Path) -> io.BytesIO:
    """The file's bytes, read by Python: torch's C++ loaders take a path as UTF-8 and fail on
    a non-ASCII path under the C locale (decoded with surrogates)."""
    return io.BytesIO(path.read_bytes())


def _save_torchscript(model: nn.Module, example: Tensor, path: Path) -> None:
    with _quiet_jit(), torch.no_grad():
        traced = torch.jit.trace(model, example, check_trace=False)
        atomic_write(path, lambda f: torch.jit.save(traced, f))


def _load_torchscript(path: Path) -> Runner:
    with _quiet_jit():
        module = torch.jit.load(_bytes(path), map_location="cpu")
    module.eval()
    return lambda x: module(x)


# -- torch.export (.pt2) -------------------------------------------------------------------------
def _save_pt2(model: nn.Module, example: Tensor, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    name = _input_name(model)
    with torch.no_grad():
        program = torch.export.export(model, (example,), dynamic_shapes={name: {0: batch}})
    atomic_write(path, lambda f: torch.export.save(program, f))


def _load_pt2(path: Path) -> Runner:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*buffer is not writable.*")  # torch 2.11
        module = torch.export.load(_bytes(path)).module()
    return lambda x: module(x)


def _onnx_available() -> None:
    try:
        check_onnx_exporter()
    except RuntimeMissing as e:
        raise ExportError(str(e)) from None


def _input_name(model: nn.Module) -> str:
    import inspect

    return next(iter(inspect.signature(model.forward).parameters))


# -- ONNX ----------------------------------------------------------------------------------------
def _save_onnx(model: nn.Module, example: Tensor, path: Path) -> None:
    data = onnx_bytes(model, example)
    atomic_write(path, lambda f: f.write(data))


def _load_onnx(path: Path) -> Runner:
    return onnx_runner(path.read_bytes())


# -- state_dict ----------------------------------------------------------------------------------
def _save_state_dict(model: nn.Module, example: Tensor, path: Path) -> None:
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda f: torch.save(state, f))


def state_dict_loader(build: Callable[[], nn.Module]) -> Callable[[Path], Runner]:
    """A state_dict needs its architecture: ``build`` makes an empty one to load it into."""

    def load(path: Path) -> Runner:
        module = build()
        module.load_state_dict(
            torch.load(_bytes(path), map_location="cpu", weights_only=True), strict=True
        )
        module.eval()
        return lambda x: module(x)

    return load


FORMATS: dict[str, Format] = {
    "torchscript": Format(
        "torchscript",
        "model.ts",
        _save_torchscript,
        _load_torchscript,
        lambda: f"torch.jit {torch.__version__}",
    ),
    "pt2": Format(
        "pt2", "model.pt2", _save_pt2, _load_pt2, lambda: f"torch.export {torch.__version__}"
    ),
    "onnx": Format(
        "onnx",
        "model.onnx",
        _save_onnx,
        _load_onnx,
        onnx_runtime_name,
        lambda: None if onnxruntime() else 1000,
        _onnx_available,
    ),
    "state_dict": Format(
        "state_dict",
        "state_dict.pt",
        _save_state_dict,
        None,
        lambda: f"torch.load {torch.__version__}",
    ),
}


def parse_formats(text: str) -> list[str]:
    """``torchscript``, or several separated by commas (``torchscript,pt2``)."""
    names = [n.strip().lower() for n in str(text).split(",")]
    if any(n not in FORMATS for n in names):  # an empty name too: "onnx,,pt2" is a typo
        raise ExportError(
            f"--format: expected one or more of {', '.join(FORMATS)} separated by commas, "
            f"got {text!r}"
        )
    names = list(dict.fromkeys(names))
    for n in names:
        FORMATS[n].check()
    return names
