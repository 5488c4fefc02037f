"""Everything the report shows, gathered once: studies, the Pareto front, the chosen model per
budget and sampler, efficiency curves, ground-truth accuracy and correlations."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from slimda_nas.cost.budget import ResolvedBudget, parse_budget
from slimda_nas.deploy.latency import LatencyRecord
from slimda_nas.errors import RunError, UserError
from slimda_nas.evaluate.evaluator import EvalSettings, Evaluator
from slimda_nas.evaluate.ground_truth import ground_truth, has_labels
from slimda_nas.evaluate.labelled import labelled_accuracy, load_labelled_target
from slimda_nas.evaluate.ranking import RANKING_FILE, correlations, read_ranking
from slimda_nas.evaluate.scoring_record import ScoringRecord
from slimda_nas.evaluate.within_budget import SavedRanking, read_saved
from slimda_nas.report.efficiency import Curve, curves
from slimda_nas.search.record import Pick, Point, ResultsFile
from slimda_nas.search.storage import describe, open_run_storage
from slimda_nas.search.studies import (
    StudyRecord,
    bank_studies,
    pareto_front,
    picks,
    read_studies,
    sampler_label,
)
from slimda_nas.train.run import TrainedRun, load_run

#: Reference budgets drawn on every MACs axis (fractions of the anchor's MACs).
REFERENCE_FRACTIONS = ("1/2", "1/4", "1/8", "1/16", "1/32", "1/64")
#: Pareto-front configurations whose accuracy is measured (a greedy search alone can put a
#: hundred points on the front; each costs a pass over the target test split, once).
ACCURACY_POINTS = 24


@dataclass(kw_only=True)
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


@dataclass(kw_only=True)
class ReportData:
    run: TrainedRun
    storage: str
    settings: dict
    metric: str
    anchor_macs: int
    studies: list[StudyRecord]
    budgets: list[ResolvedBudget]  # largest first
    front: list[Point]
    picks: list[Pick]
    curves: list[Curve]
    full_width: dict[str, int]
    accuracy: dict[str, float | None] = field(default_factory=dict)  # by configuration key
    has_labels: bool = False
    largest_accuracy: float | None = None
    reference: tuple[str, float] | None = None
    ranking: Ranking | None = None
    # batch-1 latency on this machine of each budget's chosen pick (by point key) and of the
    # full width ("full_width"), with the machine it was measured on ("machine", "note")
    latency: LatencyRecord | None = None
    # ``eval --ranking N --budget B``: per budget text, the saved within-budget ranking
    within: dict[str, SavedRanking] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # --target-labelled: accuracy of each pick (by pick label) on a few labelled target images,
    # reported only (evaluate/labelled.py)
    labelled: dict | None = None

    @property
    def scoring(self) -> ScoringRecord:
        """The scoring settings of the studies shown, typed."""
        return ScoringRecord.from_dict(self.settings)

    @property
    def points(self) -> list[Point]:
        return [p for s in self.studies for p in s.points]

    @property
    def samplers(self) -> list[str]:
        return sorted({sampler_label(s) for s in self.studies})

    def picks_at(self, budget: ResolvedBudget) -> list[Pick]:
        return [p for p in self.picks if p.budget.macs == budget.macs]

    def reference_lines(self) -> dict[int, str]:
        """MACs -> label of the vertical lines on every MACs axis: the reference fractions,
        the report's budgets and the anchor."""
        lines = {parse_budget(t).macs(self.anchor_macs): t for t in REFERENCE_FRACTIONS}
        for b in self.budgets:
            lines.setdefault(b.macs, b.text)
        lines[self.anchor_macs] = "anchor"
        return lines


def collect(
    run_dir: Path | TrainedRun,
    *,
    storage: str | None = None,
    reference: str | Path | None = None,
    accuracy: bool = True,
    accuracy_points: int = ACCURACY_POINTS,
    latency: bool = True,
    device: str = "auto",
    data_root: str | None = None,
    target_labelled: str | Path | None = None,
) -> ReportData:
    """Read the run, its studies and (where the target has labels) the accuracy of the chosen
    configurations and of up to ``accuracy_points`` Pareto-front ones, spread over MACs."""
    run = load_run(run_dir, device=device, data_root=data_root)
    labelled = None if target_labelled is None else load_labelled_target(target_labelled, run)
    results = ResultsFile.read(run.run_dir)
    where = describe(storage, run.run_dir)
    studies = read_studies(open_run_storage(storage, run.run_dir), run.space, where)
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
    data = ReportData(
        run=run,
        storage=where,
        settings=settings,
        metric=ScoringRecord.from_dict(settings).metric,
        anchor_macs=anchor_macs,
        studies=studies,
        budgets=budgets,
        front=pareto_front(p for s in studies for p in s.points),
        picks=picks(studies, budgets),
        curves=curves(studies, budgets),
        full_width={u.name: u.full for u in run.space.units},
        notes=notes,
    )
    if accuracy:
        _ground_truth(data, settings, reference, accuracy_points)
    else:
        data.notes.append("accuracy not computed (--no-accuracy)")
    data.ranking = _ranking(data)
    data.within = read_saved(run.run_dir)
    if latency:
        data.latency = _latency(data)
    if labelled is not None:
        evaluator = Evaluator(run, EvalSettings.from_record(settings))
        configs = {f"{k.budget.text} {k.label}": k.point.config for k in data.picks}
        data.labelled = labelled_accuracy(evaluator, labelled, configs)
    return data


def _latency(data: ReportData) -> LatencyRecord:
    """Latency of every budget's chosen configuration and of the full width (cached; BN
    statistics do not change the time, so the models are not re-calibrated for it)."""
    from slimda_nas.deploy.latency import latency_record

    bank = data.run.bank
    configs = {k.point.key: k.point.config for k in data.picks if k.chosen}
    configs["full_width"] = data.run.space.largest()
    models = {
        name: (config, lambda c=config: bank.materialize(c).cpu().eval())
        for name, config in configs.items()
    }
    return latency_record(
        data.run.run_dir, data.run.checkpoint_hash, models, bank.space.input_shape_at
    )


def _anchor_macs(
    studies: list[StudyRecord], results: ResultsFile | None, run: TrainedRun, settings: dict
) -> int:
    for s in studies:
        if s.meta.anchor_macs:
            return int(s.meta.anchor_macs)
    if results is not None:
        return results.anchor_macs
    from slimda_nas.cost.macs import CostModel

    scoring = ScoringRecord.from_dict(settings)
    return CostModel(run.bank, scoring.head).macs(scoring.anchor or run.space.largest())


def _budgets(
    studies: list[StudyRecord], results: ResultsFile | None, anchor_macs: int
) -> list[ResolvedBudget]:
    """The budgets the studies searched; for Pareto studies, the budgets the search picked at
    (``results.json``), else the reference fractions."""
    found: dict[int, ResolvedBudget] = {}
    for s in studies:
        if s.budget is not None:
            found.setdefault(s.budget.macs, s.budget)
    if any(s.budget is None for s in studies):
        for k in results.picks() if results is not None else []:
            found.setdefault(k.budget.macs, k.budget)
        if not found:
            for text in REFERENCE_FRACTIONS:
                b = parse_budget(text).resolve(anchor_macs)
                found.setdefault(b.macs, b)
    return sorted(found.values(), key=lambda b: -b.macs)


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
    try:
        rec = read_ranking(data.run.run_dir, data.metric)
    except RunError as e:
        data.notes.append(f"{str(e).replace(': unreadable', ' ignored: unreadable')}")
        rec = None
    if rec is not None:
        cands = [c for c in rec.scores if c.accuracy is not None]
        try:
            upem = [float(c.upem[rec.metric]) for c in cands]
        except KeyError as e:
            data.notes.append(f"{RANKING_FILE} ignored: unreadable ({type(e).__name__})")
            cands = []
        if len(cands) >= 3:
            return _ranking_of(
                f"{RANKING_FILE}: {len(rec.scores)} configurations across the MACs range "
                "(slimda-nas eval --ranking)",
                rec.metric,
                upem,
                [c.accuracy for c in cands],
                [c.macs for c in cands],
            )
    pts = {p.key: p for p in data.front}
    pts.update({k.point.key: k.point for k in data.picks})
    pairs = [(p, data.accuracy.get(k)) for k, p in pts.items() if data.accuracy.get(k) is not None]
    if len(pairs) < 3:
        return None
    upem = [p.value for p, _ in pairs]
    acc = [a for _, a in pairs]
    return _ranking_of(
        "the Pareto-front and chosen configurations (run `slimda-nas eval --ranking 100` for "
        "an unbiased sample)",
        data.metric,
        upem,
        acc,
        [p.macs for p, _ in pairs],
    )


def _ranking_of(source: str, metric: str, upem: list, acc: list, macs: list) -> Ranking:
    pearson, spearman, kendall = correlations(upem, acc)
    return Ranking(
        source=source,
        metric=metric,
        upem=upem,
        accuracy=acc,
        macs=macs,
        pearson=pearson,
        spearman=spearman,
        kendall=kendall,
    )
