"""Running a plain sub-network the way a device would: PyTorch eager, or ONNX through ONNX
Runtime (the reference evaluator of ``onnx`` only where the runtime is missing)."""

from __future__ import annotations

import contextlib
import inspect
import io
import warnings
from collections.abc import Callable

import torch
from torch import Tensor, nn

from slimda_nas.errors import UserError

Runner = Callable[[Tensor], Tensor]


class RuntimeMissing(UserError):
    """An optional runtime or exporter (ONNX) is not installed."""


def check_onnx_exporter() -> None:
    """One-line error when ``torch.onnx.export`` cannot run here (it needs onnx and onnxscript)."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise RuntimeMissing(
            "--format onnx: the ONNX exporter is not installed "
            "(pip install onnx onnxscript onnxruntime, or slimda-nas[onnx])"
        ) from None


def onnx_bytes(model: nn.Module, example: Tensor) -> bytes:
    """``model`` as an ONNX model with a dynamic batch dimension (input ``input``, output
    ``logits``)."""
    check_onnx_exporter()
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    name = next(iter(inspect.signature(model.forward).parameters))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes={name: {0: batch}},
            verbose=False,
        )
    return program.model_proto.SerializeToString()


def onnxruntime():
    """The ``onnxruntime`` module, or None where it is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    return ort


def onnx_runtime_name() -> str:
    ort = onnxruntime()
    return (
        f"onnxruntime {ort.__version__}" if ort else "onnx.reference (onnxruntime not installed)"
    )


def onnx_runner(model: str | bytes, threads: int | None = None) -> Runner:
    """A function from a CPU batch to logits running the ONNX ``model`` (a path or its bytes)
    with ONNX Runtime on the CPU, ``threads`` intra-op threads (default: PyTorch's)."""
    ort = onnxruntime()
    if ort is None:
        import onnx
        from onnx.reference import ReferenceEvaluator

        proto = onnx.load(model) if isinstance(model, str) else onnx.load_from_string(model)
        ref = ReferenceEvaluator(proto)
        name = ref.input_names[0]
        return lambda x: torch.from_numpy(ref.run(None, {name: x.numpy()})[0])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])
