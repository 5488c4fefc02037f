"""Export a chosen sub-network as a standalone model (TorchScript, torch.export ``.pt2``, ONNX,
state_dict) with its configuration, and verify the written file against the bank."""

from slimda_nas.export.api import ExportResult, export_model, export_pareto
from slimda_nas.export.formats import FORMATS, ExportError, parse_formats

__all__ = [
    "FORMATS",
    "ExportError",
    "ExportResult",
    "export_model",
    "export_pareto",
    "parse_formats",
]
