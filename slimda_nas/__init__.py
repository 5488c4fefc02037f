"""slimda-nas: train one SlimDA model bank, search layer-wise widths per MACs budget with UPEM,
report and export verified sub-networks.

The whole pipeline from Python (``docs/api.md``)::

    import slimda_nas as sn

    cfg = sn.load_run_config("usps_mnist")                # a shipped config, or a YAML path
    run = sn.load_run(sn.train_bank(cfg).run_dir)         # resumes; a finished run is reused
    sn.run_search(run, sn.SearchOptions(budgets="1/64"))  # writes RUN/search/results.json
    sn.build_report(run)                                  # RUN/report/index.html
    sn.export_model(run, budget="1/64", formats="torchscript")

Names load lazily (PEP 562), so ``import slimda_nas`` is cheap until one is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    # search spaces and the bank
    "load_space": "slimda_nas.space",
    "SearchSpace": "slimda_nas.space",
    "ModelBank": "slimda_nas.bank",
    # training
    "RunConfig": "slimda_nas.train",
    "load_run_config": "slimda_nas.train",
    "train_bank": "slimda_nas.train",
    "TrainResult": "slimda_nas.train",
    "TrainSummary": "slimda_nas.train",
    "load_run": "slimda_nas.train",
    "TrainedRun": "slimda_nas.train",
    "default_run": "slimda_nas.train",
    # evaluation
    "EvalSettings": "slimda_nas.evaluate",
    "Evaluator": "slimda_nas.evaluate",
    "parse_budget": "slimda_nas.cost",
    "parse_budgets": "slimda_nas.cost",
    # search
    "SearchOptions": "slimda_nas.search",
    "SearchResult": "slimda_nas.search",
    "run_search": "slimda_nas.search",
    # reports and export
    "build_report": "slimda_nas.report",
    "export_model": "slimda_nas.export",
    "export_pareto": "slimda_nas.export",
    # errors
    "UserError": "slimda_nas.errors",
}

__all__ = [
    "EvalSettings",
    "Evaluator",
    "ModelBank",
    "RunConfig",
    "SearchOptions",
    "SearchResult",
    "SearchSpace",
    "TrainResult",
    "TrainSummary",
    "TrainedRun",
    "UserError",
    "build_report",
    "default_run",
    "export_model",
    "export_pareto",
    "load_run",
    "load_run_config",
    "load_space",
    "parse_budget",
    "parse_budgets",
    "run_search",
    "train_bank",
]

if TYPE_CHECKING:
    from slimda_nas.bank import ModelBank
    from slimda_nas.cost import parse_budget, parse_budgets
    from slimda_nas.errors import UserError
    from slimda_nas.evaluate import EvalSettings, Evaluator
    from slimda_nas.export import export_model, export_pareto
    from slimda_nas.report import build_report
    from slimda_nas.search import SearchOptions, SearchResult, run_search
    from slimda_nas.space import SearchSpace, load_space
    from slimda_nas.train import (
        RunConfig,
        TrainedRun,
        TrainResult,
        TrainSummary,
        default_run,
        load_run,
        load_run_config,
        train_bank,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
