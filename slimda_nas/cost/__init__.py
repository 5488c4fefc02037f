"""What a sub-network costs and what fits a budget: MACs (thop and its exact fast path), device
budgets, configurations within a MACs band, and a search space's MACs range."""

from slimda_nas.cost.budget import (
    Budget,
    ResolvedBudget,
    format_fraction,
    format_macs,
    parse_budget,
    parse_budgets,
)
from slimda_nas.cost.feasible import BandSampler
from slimda_nas.cost.macs import CostModel, count_macs, thop_profile
from slimda_nas.cost.space_summary import SpaceSummary, summarize_space

__all__ = [
    "BandSampler",
    "Budget",
    "CostModel",
    "ResolvedBudget",
    "SpaceSummary",
    "count_macs",
    "format_fraction",
    "format_macs",
    "parse_budget",
    "parse_budgets",
    "summarize_space",
    "thop_profile",
]
