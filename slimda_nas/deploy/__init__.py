"""Running a plain sub-network the way a device would (PyTorch eager, ONNX Runtime) and timing it
at batch 1 on this machine: what a device feels, beside the MACs the search constrains."""

from slimda_nas.deploy.latency import LatencyRecord, latency_record, machine, measure_latency

__all__ = ["LatencyRecord", "latency_record", "machine", "measure_latency"]
