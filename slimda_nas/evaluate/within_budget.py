"""How well label-free scores rank configurations where the search uses them: among N
configurations of (nearly) the same MACs, in a band just under one budget.

Across the whole MACs range the order is mostly MACs, so a score can look fine there and rank
same-budget models no better than chance (docs/method.md, "Scoring a candidate"). Here every candidate's MACs lie in
``[BAND_LOW * B, B]``; each is scored by every registered score from the same forward passes
(on nested scoring subsets of several sizes) and measured on the labelled target test split and
on its two fixed halves, whose agreement is the ceiling any score can reach.
"""

from __future__ import annotations

import json
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from scipy import stats

from slimda_nas._io import write_json
from slimda_nas.cost.budget import ResolvedBudget
from slimda_nas.cost.feasible import BandSampler
from slimda_nas.errors import BudgetError
from slimda_nas.evaluate.evaluator import Evaluator
from slimda_nas.evaluate.scores import SCORES, tiebreak_key
from slimda_nas.space import Config

BAND_LOW = 0.6
"""Candidates of a budget B have MACs in [0.6 B, B]: what a search at B chooses among."""
FILE = "ranking_within.json"
"""Results beside the run: one entry per budget."""
SUBSETS = (250, 1000, 4000)
"""Scoring-subset sizes compared (the first n of the evaluator's scoring images)."""


def sample_band(evaluator: Evaluator, n: int, high: int, low: int, seed: int = 0) -> list[Config]:
    """``n`` distinct configurations with MACs in ``[low, high]``, drawn near-uniformly
    (rejection, then a random walk over the band where rejection stalls)."""
    band = BandSampler(evaluator.run.space, evaluator.cost)
    rng, seen = random.Random(seed), {}
    attempts = 0
    while len(seen) < n:
        x, _ = band.sample(rng, high, low)
        seen.setdefault(x, None)
        attempts += 1
        if attempts > 20 * n + 100:
            raise BudgetError(
                f"only {len(seen)} distinct configurations have between {low:,} and {high:,} "
                f"MACs in {evaluator.run.space.source}; ask for fewer"
            )
    return [evaluator.run.space.from_indices(list(x)) for x in seen]


def split_halves(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two fixed, disjoint halves of ``n`` test images (a seeded permutation, cut in two)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: n // 2].sort().values, perm[n // 2 :].sort().values


@dataclass(kw_only=True)
class Candidate:
    config: dict
    macs: int
    accuracy: float
    halves: tuple[float, float]
    scores: dict[int, dict[str, float]]  # scoring images -> score -> value


@dataclass(kw_only=True)
class BandRanking:
    """N candidates of one budget band with every score and their ground truth."""

    budget: ResolvedBudget
    low: int
    seed: int
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def accuracies(self) -> list[float]:
        return [c.accuracy for c in self.candidates]

    def ceiling(self) -> float:
        """Spearman of the accuracy on one half of the test split against the other."""
        a = [c.halves[0] for c in self.candidates]
        b = [c.halves[1] for c in self.candidates]
        return _spearman(a, b)

    def table(self, images: int) -> dict[str, dict[str, float]]:
        """Per score (and MACs alone): Spearman and Kendall of -score with accuracy, the
        accuracy of the score's pick (its least value, ties as the search breaks them) and the
        regret (best accuracy - pick's)."""
        acc = self.accuracies
        best = max(acc)
        out = {}
        names = list(self.candidates[0].scores[images]) + ["macs"]
        for name in names:
            if name == "macs":
                values = [-float(c.macs) for c in self.candidates]
                order = [(v, 0.0, -c.macs) for v, c in zip(values, self.candidates)]
            else:
                values = [c.scores[images][name] for c in self.candidates]
                order = [
                    (v, tiebreak_key(c.scores[images], name), -c.macs)
                    for v, c in zip(values, self.candidates)
                ]
            pick = min(range(len(order)), key=order.__getitem__)
            neg = [-v for v in values]
            out[name] = {
                "spearman": _spearman(neg, acc),
                "kendall": _kendall(neg, acc),
                "pick_accuracy": acc[pick],
                "regret": best - acc[pick],
            }
        return out

    def saved(self) -> SavedRanking:
        """What ``ranking_within.json`` keeps of it."""
        subsets = sorted(self.candidates[0].scores) if self.candidates else []
        return SavedRanking(
            budget=self.budget,
            low=self.low,
            seed=self.seed,
            n=len(self.candidates),
            ceiling=self.ceiling(),
            best_accuracy=max(self.accuracies),
            median_accuracy=statistics.median(self.accuracies),
            by_images={m: self.table(m) for m in subsets},
            candidates=[asdict(c) for c in self.candidates],
        )

    def to_dict(self) -> dict:
        return self.saved().to_dict()


@dataclass(frozen=True, kw_only=True)
class ScoreRow:
    """How one score ranked one band: correlations with accuracy, its pick and the regret."""

    spearman: float
    kendall: float
    pick_accuracy: float
    regret: float


@dataclass(frozen=True, kw_only=True)
class SavedRanking:
    """One budget's entry of ``ranking_within.json``, as the report reads it. The budget is
    stored as everywhere else (``budget``, ``budget_macs``, ``anchor_macs``); files of older
    versions nest it (``{"text", "macs", "anchor_macs"}``) and still load."""

    budget: ResolvedBudget
    low: int
    seed: int
    n: int
    ceiling: float
    best_accuracy: float
    median_accuracy: float
    by_images: dict[int, dict[str, dict[str, float]]]  # scoring images -> score -> ScoreRow
    candidates: list[dict]  # Candidate fields

    def images_near(self, wanted: int | None) -> int:
        """The scoring-subset size closest to ``wanted`` (default: the largest)."""
        sizes = sorted(self.by_images)
        return min(sizes, key=lambda s: abs(s - (wanted or sizes[-1])))

    def rows(self, images: int) -> dict[str, ScoreRow]:
        return {k: ScoreRow(**v) for k, v in self.by_images[images].items()}

    def points(self, images: int, score: str) -> tuple[list[float], list[float]]:
        """(score values, accuracies) of the candidates."""
        x = [c["scores"][images][score] for c in self.candidates]
        return x, [c["accuracy"] for c in self.candidates]

    def scores(self, images: int) -> list[str]:
        return list(self.candidates[0]["scores"][images]) if self.candidates else []

    def to_dict(self) -> dict:
        return {
            "budget": self.budget.text,
            "budget_macs": self.budget.macs,
            "anchor_macs": self.budget.anchor_macs,
            "band": [self.low, self.budget.macs],
            "seed": self.seed,
            "n": self.n,
            "ceiling": self.ceiling,
            "best_accuracy": self.best_accuracy,
            "median_accuracy": self.median_accuracy,
            "by_images": {str(m): t for m, t in self.by_images.items()},
            "candidates": [
                {**c, "scores": {str(k): v for k, v in c["scores"].items()}}
                for c in self.candidates
            ],
        }

    @classmethod
    def from_dict(cls, raw: dict) -> SavedRanking:
        b = raw["budget"]
        if isinstance(b, dict):  # older files: the budget nested
            budget = ResolvedBudget.from_dict(b)
        else:
            budget = ResolvedBudget(
                text=str(b), macs=int(raw["budget_macs"]), anchor_macs=int(raw["anchor_macs"])
            )
        return cls(
            budget=budget,
            low=int(raw["band"][0]),
            seed=int(raw["seed"]),
            n=int(raw["n"]),
            ceiling=float(raw["ceiling"]),
            best_accuracy=float(raw["best_accuracy"]),
            median_accuracy=float(raw["median_accuracy"]),
            by_images={int(k): v for k, v in raw["by_images"].items()},
            candidates=[
                {**c, "scores": {int(k): v for k, v in c["scores"].items()}}
                for c in raw["candidates"]
            ],
        )


def band_ranking(
    evaluator: Evaluator,
    budget: ResolvedBudget,
    n: int,
    seed: int = 0,
    subsets: Sequence[int] = SUBSETS,
    on_progress: Callable[[int], None] | None = None,
) -> BandRanking:
    """Score ``n`` configurations of the band under ``budget`` with every label-free score and
    measure their accuracy. The search never calls this: it reads target labels."""
    low = int(BAND_LOW * budget.macs)
    configs = sample_band(evaluator, n, budget.macs, low, seed)
    available = evaluator.subsets.scoring
    sizes = sorted({min(m, available) for m in subsets})
    test_n = len(evaluator.run.data().target_test)
    half_a, half_b = split_halves(test_n)
    result = BandRanking(budget=budget, low=low, seed=seed)
    for i, config in enumerate(configs):
        log_q = evaluator.outputs(config)
        right = evaluator.correct(config).float()
        result.candidates.append(
            Candidate(
                config=dict(config),
                macs=evaluator.cost.macs(config),
                accuracy=float(right.mean()),
                halves=(float(right[half_a].mean()), float(right[half_b].mean())),
                scores={m: evaluator.label_free_scores(log_q, images=m) for m in sizes},
            )
        )
        if on_progress:
            on_progress(i + 1)
    return result


def write_rankings(run_dir: Path, rankings: list[BandRanking], settings: dict) -> Path:
    """Merge these budgets' rankings into ``RUN/ranking_within.json`` (the report reads it)."""
    path = Path(run_dir) / FILE
    entries = read_rankings(run_dir)  # {} where missing or damaged ({"budgets": []}: a list)
    for r in rankings:
        entries[r.budget.text] = r.to_dict()
    return write_json(path, {"settings": settings, "scores": list(SCORES), "budgets": entries})


def read_rankings(run_dir: Path) -> dict[str, dict]:
    """The within-budget rankings saved beside the run (empty when none, or unreadable)."""
    path = Path(run_dir) / FILE
    try:
        raw = json.loads(path.read_text())
        budgets = raw["budgets"]
        return budgets if isinstance(budgets, dict) else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def read_saved(run_dir: Path) -> dict[str, SavedRanking]:
    """:func:`read_rankings`, typed; an entry that does not read back is left out."""
    out = {}
    for text, raw in read_rankings(run_dir).items():
        try:
            out[text] = SavedRanking.from_dict(raw)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            continue
    return out


def _spearman(a: list[float], b: list[float]) -> float:
    if len(set(a)) < 2 or len(set(b)) < 2:
        return float("nan")
    return float(stats.spearmanr(a, b)[0])


def _kendall(a: list[float], b: list[float]) -> float:
    if len(set(a)) < 2 or len(set(b)) < 2:
        return float("nan")
    return float(stats.kendalltau(a, b)[0])
