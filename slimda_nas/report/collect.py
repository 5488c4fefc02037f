"""Everything the report shows, gathered once: studies, the Pareto front, the chosen model per
budget and sampler, efficiency curves, ground-truth accuracy and correlations."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from slimda_nas.errors import RunError, UserError
from slimda_nas.evaluate.evaluator import EvalSettings, Evaluator
from slimda_nas.evaluate.ranking import correlations
from slimda_nas.report.efficiency import Curve, curves, sampler_label
from slimda_nas.report.studies import (
    Point,
    Study,
    bank_studies,
    load_studies,
    open_run_storage,
    read_results,
)
from slimda_nas.run import TrainedRun, load_run
from slimda_nas.search.budget import parse_budget
from slimda_nas.search.storage import describe

#: Reference budgets drawn on every MACs axis (fractions of the anchor's MACs).
REFERENCE_FRACTIONS = ("1/2", "1/4", "1/8", "1/16", "1/32", "1/64")
#: Pareto-front configurations whose accuracy is measured (a greedy search alone can put a
#: hundred points on the front; each costs a pass over the target test split, once).
ACCURACY_POINTS = 24


@dataclass
class Pick:
    """The configuration one sampler chose at one budget (best over its seeds)."""

    budget: str
    budget_macs: int
    sampler: str
    point: Point
    channels: dict[str, int]
    seed_values: list[float]  # UPEM of each seed's choice
    accuracy: float | None = None
    chosen: bool = False  # the best across samplers at this budget


@dataclass
class Ranking:
    """UPEM against accuracy over some configurations, with the three correlations."""

    source: str
    metric: str
    upem: list[float]
    accuracy: list[float]
    macs: list[int]
    pearson: float
    spearman: float
    kendall: float


@dataclass
class ReportData:
    run: TrainedRun
    storage: str
    settings: dict
    metric: str
    anchor_macs: int
    studies: list[Study]
    budgets: list[tuple[str, int]]  # (text, MACs), largest first
    front: list[Point]
    picks: list[Pick]
    curves: list[Curve]
    full_width: dict[str, int]
    accuracy: dict[str, float | None] = field(default_factory=dict)  # by configuration key
    has_labels: bool = False
    largest_accuracy: float | None = None
    reference: tuple[str, float] | None = None
    ranking: Ranking | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def points(self) -> list[Point]:
        return [p for s in self.studies for p in s.points]

    @property
    def samplers(self) -> list[str]:
        return sorted({sampler_label(s) for s in self.studies})

    def picks_at(self, budget_macs: int) -> list[Pick]:
        return [p for p in self.picks if p.budget_macs == budget_macs]


def collect(
    run_dir: Path,
    *,
    storage: str | None = None,
    reference: str | Path | None = None,
    accuracy: bool = True,
    accuracy_points: int = ACCURACY_POINTS,
    device: str = "auto",
    data_root: str | None = None,
) -> ReportData:
    """Read the run, its studies and (where the target has labels) the accuracy of the chosen
    configurations and of up to ``accuracy_points`` Pareto-front ones, spread over MACs."""
    run = load_run(run_dir, device=device, data_root=data_root)
    results = read_results(run.run_dir)
    where = describe(storage, run.run_dir)
    studies = load_studies(open_run_storage(storage, run.run_dir), run.space, where)
    if not studies:
        raise RunError(
            f"{where}: no studies yet (run `slimda-nas search --run {run.run_dir}` first)"
        )
    settings, studies, notes = bank_studies(studies, results, run.checkpoint_hash)
    settings = settings or {}
    if not studies:
        raise RunError(f"{where}: no study of this bank has a scored configuration ({notes[0]})")
    anchor_macs = _anchor_macs(studies, results, run, settings)
    budgets = _budgets(studies, results, anchor_macs)
    front = pareto_points([p for s in studies for p in s.points])
    full = {u.name: u.full for u in run.space.units}
    data = ReportData(
        run,
        where,
        settings,
        settings.get("metric", "kl"),
        anchor_macs,
        studies,
        budgets,
        front,
        _picks(studies, budgets, run),
        curves(studies, budgets),
        full,
        notes=notes,
    )
    if accuracy:
        _ground_truth(data, settings, reference, accuracy_points)
    else:
        data.notes.append("accuracy not computed (--no-accuracy)")
    data.ranking = _ranking(data)
    return data


def pareto_points(points: list[Point]) -> list[Point]:
    """Configurations no other beats on both MACs and UPEM, by MACs (each configuration once)."""
    front, best, seen = [], math.inf, set()
    for p in sorted(points, key=lambda p: (p.macs, p.value, p.study, p.number)):
        if p.value < best and p.key not in seen:
            front.append(p)
            best = p.value
            seen.add(p.key)
    return front


def _anchor_macs(studies: list[Study], results: dict, run: TrainedRun, settings: dict) -> int:
    for s in studies:
        if s.anchor_macs:
            return int(s.anchor_macs)
    if results.get("anchor_macs"):
        return int(results["anchor_macs"])
    from slimda_nas.evaluate.macs import CostModel

    anchor = settings.get("anchor") or run.space.largest()
    return CostModel(run.bank, settings.get("head")).macs(anchor)


def _budgets(studies: list[Study], results: dict, anchor_macs: int) -> list[tuple[str, int]]:
    found: dict[int, str] = {}
    for s in studies:
        if s.budget_macs is not None:
            found.setdefault(int(s.budget_macs), s.budget or str(s.budget_macs))
    if any(s.budget_macs is None for s in studies):
        for st in results.get("studies", {}).values():
            for c in st.get("choices", []):
                found.setdefault(int(c["budget_macs"]), c["budget"])
        if not found:
            for text in REFERENCE_FRACTIONS:
                found.setdefault(parse_budget(text).macs(anchor_macs), text)
    return sorted(((text, macs) for macs, text in found.items()), key=lambda b: -b[1])


def _picks(studies: list[Study], budgets: list[tuple[str, int]], run: TrainedRun) -> list[Pick]:
    picks = []
    for text, macs in budgets:
        by_sampler: dict[str, list[Point]] = defaultdict(list)
        for s in studies:
            if s.budget_macs not in (macs, None):
                continue
            ok = [
                p
                for p in s.points
                if (p.feasible if s.budget_macs is not None else p.macs <= macs)
            ]
            if ok:
                by_sampler[sampler_label(s)].append(min(ok, key=_rank))
        here = []
        for sampler, choices in sorted(by_sampler.items()):
            best = min(choices, key=_rank)
            here.append(
                Pick(
                    text,
                    macs,
                    sampler,
                    best,
                    run.space.unit_channels(best.config),
                    [c.value for c in sorted(choices, key=lambda c: c.seed)],
                )
            )
        if here:
            min(here, key=lambda k: _rank(k.point)).chosen = True
        picks.extend(here)
    return picks


def _rank(p: Point) -> tuple:
    return (p.value, p.macs, p.study, p.number)


def spread(front: list[Point], k: int) -> list[Point]:
    """At most ``k`` front points, evenly spaced in log MACs, both ends kept."""
    if len(front) <= k:
        return list(front)
    if k < 2:
        return front[:k]
    lo, hi = math.log(max(front[0].macs, 1)), math.log(max(front[-1].macs, 1))
    chosen = {}
    for i in range(k):
        target = lo + (hi - lo) * i / (k - 1)
        p = min(
            (p for p in front if p.key not in chosen),
            key=lambda p: abs(math.log(max(p.macs, 1)) - target),
        )
        chosen[p.key] = p
    return sorted(chosen.values(), key=lambda p: p.macs)


def _ground_truth(
    data: ReportData, settings: dict, reference: str | Path | None, points: int
) -> None:
    """Accuracy of (part of) the front, the picks and the largest model (cached in
    ground_truth.json)."""
    from slimda_nas.errors import DataError
    from slimda_nas.search.outputs import ground_truth, has_labels

    try:
        evaluator = Evaluator(data.run, EvalSettings.from_record(settings))
        data.has_labels = has_labels(evaluator)
    except DataError as e:
        data.notes.append(f"accuracy not shown: the task's data cannot be read ({e})")
        return
    if not data.has_labels:
        data.notes.append("accuracy not shown: the target domain has no labels")
        return
    largest = data.run.space.largest()
    configs = {p.key: p.config for p in spread(data.front, points)}
    configs.update({k.point.key: k.point.config for k in data.picks})
    keys = list(configs)
    values = ground_truth(evaluator, [configs[k] for k in keys] + [largest])
    data.accuracy = dict(zip(keys, values[:-1], strict=False))
    data.largest_accuracy = values[-1]
    for pick in data.picks:
        pick.accuracy = data.accuracy.get(pick.point.key)
    if reference is not None:
        data.reference = _reference_accuracy(Path(reference), data, settings)


def _reference_accuracy(path: Path, data: ReportData, settings: dict) -> tuple[str, float]:
    """Full-width accuracy of another run (e.g. source-only) on the same target test split."""
    from dataclasses import replace

    from slimda_nas.search.outputs import ground_truth

    ref = load_run(path, device=str(data.run.device), data_root=data.run.data_root)
    if ref.task != data.run.task:
        raise UserError(
            f"--reference {path}: task {ref.task!r} differs from this run's {data.run.task!r}"
        )
    ref._data = data.run._data  # same task: decode the images once
    base = EvalSettings.from_record(settings)
    evaluator = Evaluator(ref, replace(base, head=None, anchor=None))
    acc = ground_truth(evaluator, [ref.space.largest()])[0]
    return f"{ref.run_dir.name} ({ref.method}, full width)", acc


def _ranking(data: ReportData) -> Ranking | None:
    """From ``ranking.json`` (``slimda-nas eval --ranking N``) if present, else the front and
    the picks."""
    path = data.run.run_dir / "ranking.json"
    if path.is_file():
        try:
            rec = json.loads(path.read_text())
            metric = rec.get("metric", data.metric)
            cands = [c for c in rec["candidates"] if c.get("accuracy") is not None]
            upem = [float(c["upem"][metric]) for c in cands]
            acc = [float(c["accuracy"]) for c in cands]
            macs = [int(c["macs"]) for c in cands]
        except (ValueError, KeyError, TypeError) as e:
            data.notes.append(f"{path} ignored: unreadable ({type(e).__name__})")
        else:
            if len(upem) >= 3:
                n = rec.get("n", len(cands))
                return Ranking(
                    f"{path.name}: {n} configurations across the MACs range "
                    "(slimda-nas eval --ranking)",
                    metric,
                    upem,
                    acc,
                    macs,
                    *correlations(upem, acc),
                )
    pts = {p.key: p for p in data.front}
    pts.update({k.point.key: k.point for k in data.picks})
    pairs = [(p, data.accuracy.get(k)) for k, p in pts.items() if data.accuracy.get(k) is not None]
    if len(pairs) < 3:
        return None
    upem = [p.value for p, _ in pairs]
    acc = [a for _, a in pairs]
    return Ranking(
        "the Pareto-front and chosen configurations (run `slimda-nas eval --ranking 100` for "
        "an unbiased sample)",
        data.metric,
        upem,
        acc,
        [p.macs for p, _ in pairs],
        *correlations(upem, acc),
    )
