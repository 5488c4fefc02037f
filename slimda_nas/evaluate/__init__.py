"""Evaluating sub-networks of a trained bank: MACs (thop and its exact fast path), budgets, BN
re-estimation, UPEM against the anchor, ground-truth accuracy and the ranking check."""

from slimda_nas.evaluate.budget import (
    Budget,
    ResolvedBudget,
    format_fraction,
    format_macs,
    parse_budget,
    parse_budgets,
)
from slimda_nas.evaluate.evaluator import CandidateScore, EvalSettings, Evaluator
from slimda_nas.evaluate.ground_truth import ground_truth, has_labels
from slimda_nas.evaluate.macs import CostModel, count_macs, thop_profile
from slimda_nas.evaluate.ranking import RankingResult, correlations, ranking_check
from slimda_nas.evaluate.scores import SCORES, Score, compute_scores, score_names
from slimda_nas.evaluate.space_summary import SpaceSummary, summarize_space

__all__ = [
    "SCORES",
    "Score",
    "Budget",
    "CandidateScore",
    "CostModel",
    "EvalSettings",
    "Evaluator",
    "RankingResult",
    "ResolvedBudget",
    "SpaceSummary",
    "compute_scores",
    "correlations",
    "count_macs",
    "format_fraction",
    "format_macs",
    "ground_truth",
    "has_labels",
    "parse_budget",
    "parse_budgets",
    "ranking_check",
    "summarize_space",
    "thop_profile",
    "score_names",
]
