"""How well UPEM ranks candidates: correlations with ground-truth accuracy (paper: Fig. 4)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scipy import stats

from slimda_nas._io import write_json
from slimda_nas.errors import RunError
from slimda_nas.evaluate.evaluator import CandidateScore, Evaluator
from slimda_nas.evaluate.scores import DEFAULT_METRIC
from slimda_nas.evaluate.scoring_record import ScoringRecord
from slimda_nas.space import Config, SearchSpace


def sample_across_macs(space: SearchSpace, n: int, seed: int = 0) -> list[Config]:
    """``n`` configurations from the smallest to the largest model: each draws a level in
    [0, 1] (stratified) and picks every unit's choice near that level, so the MACs range is
    covered evenly rather than piled in the middle as uniform sampling does."""
    rng = random.Random(seed)
    configs = []
    for i in range(n):
        level = (i + rng.random()) / n
        config = {}
        for u in space.units:
            top = len(u.choices) - 1
            j = round(level * top + rng.gauss(0.0, 0.35 * max(top, 1) / 2))
            config[u.name] = u.choices[min(top, max(0, j))]
        configs.append(config)
    return configs


_NAN3 = (float("nan"), float("nan"), float("nan"))


@dataclass
class RankingResult:
    """Correlations of -UPEM (higher is better) with accuracy over the scored configurations.

    ``by_score`` holds (Pearson, Spearman, Kendall) for every UPEM metric, and for MACs alone
    (positive: larger models are more accurate), the baseline UPEM must beat to tell more
    than size does; ``pearson`` and friends are those of the searched ``metric``.
    """

    scores: list[CandidateScore]
    metric: str = DEFAULT_METRIC
    by_score: dict[str, tuple[float, float, float]] = field(init=False)

    def __post_init__(self) -> None:
        accuracy = [s.accuracy for s in self.scores]
        self.by_score = {
            m: correlations([s.upem[m] for s in self.scores], accuracy)
            for m in (self.scores[0].upem if self.scores else ())
        }
        self.by_score["macs"] = correlations([-float(s.macs) for s in self.scores], accuracy)

    @property
    def pearson(self) -> float:
        return self.by_score.get(self.metric, _NAN3)[0]

    @property
    def spearman(self) -> float:
        return self.by_score.get(self.metric, _NAN3)[1]

    @property
    def kendall(self) -> float:
        return self.by_score.get(self.metric, _NAN3)[2]

    def to_dict(self) -> dict:
        return {
            "metric": self.metric,
            "n": len(self.scores),
            "pearson": self.pearson,
            "spearman": self.spearman,
            "kendall": self.kendall,
            "by_score": {
                k: dict(zip(("pearson", "spearman", "kendall"), v))
                for k, v in self.by_score.items()
            },
            "candidates": [s.to_dict() for s in self.scores],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], metric: str = DEFAULT_METRIC) -> RankingResult:
        """Read back :meth:`to_dict` (``metric``: for a file that does not name its own)."""
        metric = str(raw.get("metric") or metric)
        scores = [
            CandidateScore(
                config=dict(c.get("config") or {}),
                macs=int(c["macs"]),
                params=int(c.get("params", 0)),
                upem={k: float(v) for k, v in c["upem"].items()},
                seconds=float(c.get("seconds", 0.0)),
                metric=str(c.get("metric") or metric),
                accuracy=None if c.get("accuracy") is None else float(c["accuracy"]),
            )
            for c in raw["candidates"]
        ]
        return cls(scores, metric)


def read_ranking(run_dir: Path, metric: str = DEFAULT_METRIC) -> RankingResult | None:
    """``RUN/ranking.json`` (None when absent); a damaged file is one line naming it."""
    path = Path(run_dir) / RANKING_FILE
    if not path.is_file():
        return None
    try:
        return RankingResult.from_dict(json.loads(path.read_text()), metric)
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
        raise RunError(f"{path}: unreadable ({type(e).__name__})") from None


def correlations(upem: list[float], accuracy: list[float]) -> tuple[float, float, float]:
    """(Pearson, Spearman, Kendall) between -UPEM and accuracy."""
    neg = [-u for u in upem]
    if len(set(neg)) < 2 or len(set(accuracy)) < 2:
        return float("nan"), float("nan"), float("nan")
    return (
        float(stats.pearsonr(neg, accuracy)[0]),
        float(stats.spearmanr(neg, accuracy)[0]),
        float(stats.kendalltau(neg, accuracy)[0]),
    )


RANKING_FILE = "ranking.json"
"""``slimda-nas eval --ranking N`` with the default metric and BN re-estimation: the report's."""


def write_ranking(run_dir, result: RankingResult, settings: dict) -> Path:
    """``RUN/ranking.json`` (the searched metric with BN re-estimation, what the report shows),
    or ``ranking-<metric>[-no-bn-recal].json`` for other settings."""
    suffix = "" if result.metric == DEFAULT_METRIC else f"-{result.metric}"
    suffix += "" if ScoringRecord.from_dict(settings).recalibrate_bn else "-no-bn-recal"
    return write_json(
        Path(run_dir) / f"ranking{suffix}.json", {**result.to_dict(), "settings": settings}
    )


def ranking_check(
    evaluator: Evaluator,
    configs: list[Config],
    on_progress: Callable[[int], None] | None = None,
) -> RankingResult:
    """Score UPEM and ground-truth accuracy of ``configs`` and correlate them."""
    scores = []
    for i, config in enumerate(configs):
        score = evaluator.score(config)
        score.accuracy = evaluator.accuracy(config)
        scores.append(score)
        if on_progress:
            on_progress(i + 1)
    return RankingResult(scores, evaluator.settings.metric)
