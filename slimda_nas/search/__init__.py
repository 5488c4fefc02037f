"""Searching a trained bank: per MACs budget, the configuration of least UPEM (Optuna TPE,
NSGA-II, feasible random search, and the uniform-width and greedy baselines)."""

from slimda_nas.cost.budget import Budget, ResolvedBudget, parse_budget, parse_budgets
from slimda_nas.search.baselines import BASELINES
from slimda_nas.search.record import (
    RESULTS_FILE,
    Pick,
    Point,
    ResultsFile,
    StudyMeta,
    TrialRecord,
)
from slimda_nas.search.runner import SAMPLERS, SearchOptions, SearchResult, run_search
from slimda_nas.search.samplers import OPTUNA_SAMPLERS
from slimda_nas.search.storage import open_storage
from slimda_nas.search.studies import StudyRecord, pareto_front, read_studies


def __getattr__(name: str):
    """Old names, with a deprecation warning (see :mod:`slimda_nas.search.record`)."""
    if name == "SearchResults":
        from slimda_nas.search import record

        return record.SearchResults
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BASELINES",
    "Budget",
    "OPTUNA_SAMPLERS",
    "Pick",
    "Point",
    "RESULTS_FILE",
    "ResolvedBudget",
    "SAMPLERS",
    "SearchOptions",
    "SearchResult",
    "ResultsFile",
    "StudyMeta",
    "StudyRecord",
    "TrialRecord",
    "open_storage",
    "pareto_front",
    "parse_budget",
    "parse_budgets",
    "read_studies",
    "run_search",
]
