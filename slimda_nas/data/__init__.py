"""Domains, tasks, decoded image sets and loaders (section 7 of the spec).

Names load lazily (PEP 562): ``parse_task`` and ``resolve_data_root`` (what the CLI checks
before anything else) do not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "resolve_data_root": "root",
    "default_data_root": "root",
    "ENV_DATA_ROOT": "root",
    "DomainSpec": "tasks",
    "Task": "tasks",
    "parse_task": "tasks",
    "parse_domain": "tasks",
    "ImageSet": "imageset",
    "LabelAccessError": "imageset",
    "IMAGENET_MEAN": "transforms",
    "IMAGENET_STD": "transforms",
    "DIGITS_MEAN": "transforms",
    "DIGITS_STD": "transforms",
    "resize_size": "transforms",
    "TaskData": "load",
    "load_task": "load",
    "load_labelled": "load",
    "UnreadableImagesWarning": "load",
    "InfiniteLoader": "loaders",
    "IndexStream": "loaders",
    "fixed_subset": "loaders",
    "eval_batches": "loaders",
    "DataSummary": "summary",
    "summarize_data": "summary",
}

__all__ = [
    "DIGITS_MEAN",
    "DataSummary",
    "DIGITS_STD",
    "DomainSpec",
    "ENV_DATA_ROOT",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageSet",
    "IndexStream",
    "InfiniteLoader",
    "LabelAccessError",
    "Task",
    "TaskData",
    "UnreadableImagesWarning",
    "default_data_root",
    "eval_batches",
    "fixed_subset",
    "load_labelled",
    "load_task",
    "parse_domain",
    "parse_task",
    "resize_size",
    "resolve_data_root",
    "summarize_data",
]

if TYPE_CHECKING:
    from slimda_nas.data.imageset import ImageSet, LabelAccessError
    from slimda_nas.data.load import (
        TaskData,
        UnreadableImagesWarning,
        load_labelled,
        load_task,
    )
    from slimda_nas.data.loaders import IndexStream, InfiniteLoader, eval_batches, fixed_subset
    from slimda_nas.data.root import ENV_DATA_ROOT, default_data_root, resolve_data_root
    from slimda_nas.data.summary import DataSummary, summarize_data
    from slimda_nas.data.tasks import DomainSpec, Task, parse_domain, parse_task
    from slimda_nas.data.transforms import (
        DIGITS_MEAN,
        DIGITS_STD,
        IMAGENET_MEAN,
        IMAGENET_STD,
        resize_size,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
