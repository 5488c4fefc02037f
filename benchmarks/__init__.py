"""The heavier measurements behind BENCHMARKS.md, run as ``python -m benchmarks.NAME`` from the
repository root; what the scripts share is in :mod:`benchmarks._common`."""
