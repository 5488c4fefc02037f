"""What a reader needs to reproduce a report or an export: the run, the scoring settings, the
searches (as commands) and the versions of the software."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping

from slimda_nas.search.baselines import BASELINES
from slimda_nas.search.studies import StudyRecord
from slimda_nas.train.run import TrainedRun


def run_record(run: TrainedRun) -> dict:
    """The bank: task, method, search space and checkpoint."""
    cfg = run.config
    return {
        "run": str(run.run_dir),
        "task": run.task,
        "method": run.method,
        "deploy_head": run.bank.deploy_head,
        "space": {
            "name": run.space.name,
            "hash": run.space.hash,
            "file": cfg.space,
            "backbone": run.space.backbone,
            "input": list(run.space.input_shape),
            "units": len(run.space.units),
            "size": run.space.size,
        },
        "checkpoint": run.checkpoint_hash,
        "training": {
            "iterations": cfg.iterations,
            "batch_size": cfg.batch_size,
            "models_per_step": cfg.models_per_step,
            "seed": cfg.seed,
        },
    }


def search_commands(run: TrainedRun, studies: list[StudyRecord], settings: dict) -> list[str]:
    """One ``slimda-nas search`` command per (sampler, seed) that re-creates these studies."""
    groups: dict[tuple[str, int, bool], list[StudyRecord]] = defaultdict(list)
    for s in studies:
        groups[(s.sampler, s.seed, s.budget is None)].append(s)
    options = _scoring_options(settings, run.bank.deploy_head)
    counts = Counter(s.evaluations for s in studies if s.sampler not in BASELINES)
    usual = counts.most_common(1)[0][0] if counts else None  # what --trials was, most likely
    out = []
    for (sampler, seed, pareto), group in sorted(groups.items()):
        budgets = ",".join(
            s.budget.text
            for s in sorted(group, key=lambda s: -(s.budget.macs if s.budget else 0))
            if s.budget is not None
        )
        trials = max(s.evaluations for s in group)
        if sampler in BASELINES and usual:
            trials = usual  # a baseline's --trials is a cap it may overrun by its last step
        cmd = (
            f"slimda-nas search --run {run.run_dir} --sampler {sampler} --seed {seed} "
            f"--trials {trials}"
        )
        cmd += " --multi-objective" if pareto else f" --budget {budgets}"
        out.append(cmd + options)
    return out


def _scoring_options(settings: Mapping, deploy_head: str | None) -> str:
    """The command-line options that reproduce ``settings`` (those not at their default)."""
    from slimda_nas.evaluate.evaluator import EvalSettings
    from slimda_nas.evaluate.scoring_record import ScoringRecord

    default = EvalSettings()
    given = EvalSettings.from_record(ScoringRecord.from_dict(settings, default.metric))
    parts = []
    if given.head not in (None, deploy_head):
        parts.append(f"--head {given.head}")
    for name, option in (
        ("metric", "--metric"),
        ("calibration_images", "--calibration-images"),
        ("scoring_images", "--scoring-images"),
        ("subset_seed", "--subset-seed"),
        ("batch_size", "--batch-size"),
    ):
        if getattr(given, name) != getattr(default, name):
            parts.append(f"{option} {getattr(given, name)}")
    if not given.recalibrate_bn:
        parts.append("--no-bn-recal")
    return "".join(f" {p}" for p in parts)
