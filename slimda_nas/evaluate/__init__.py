"""Scoring sub-networks of a trained bank: BN re-estimation, label-free scores (UPEM against the
anchor), ground-truth accuracy, and how well the scores rank models (across MACs and within one
budget). What a model costs is :mod:`slimda_nas.cost`."""

from slimda_nas.evaluate.evaluator import CandidateScore, EvalSettings, Evaluator
from slimda_nas.evaluate.ground_truth import ground_truth, has_labels
from slimda_nas.evaluate.ranking import RankingResult, correlations, ranking_check
from slimda_nas.evaluate.scores import SCORES, Score, compute_scores, score_names

__all__ = [
    "SCORES",
    "CandidateScore",
    "EvalSettings",
    "Evaluator",
    "RankingResult",
    "Score",
    "compute_scores",
    "correlations",
    "ground_truth",
    "has_labels",
    "ranking_check",
    "score_names",
]
