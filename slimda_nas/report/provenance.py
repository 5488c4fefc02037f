"""What a reader needs to reproduce a report or an export: the run, the scoring settings, the
searches (as commands) and the versions of the software."""

from __future__ import annotations

from collections import Counter, defaultdict

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


def _scoring_options(settings: dict, deploy_head: str | None) -> str:
    from slimda_nas.evaluate.evaluator import EvalSettings

    default = EvalSettings()
    subsets = settings.get("subsets") or {}
    parts = []
    if settings.get("head") not in (None, deploy_head):
        parts.append(f"--head {settings['head']}")
    if settings.get("metric", default.metric) != default.metric:
        parts.append(f"--metric {settings['metric']}")
    if subsets.get("calibration", default.calibration_images) != default.calibration_images:
        parts.append(f"--calibration-images {subsets['calibration']}")
    if subsets.get("scoring", default.scoring_images) != default.scoring_images:
        parts.append(f"--scoring-images {subsets['scoring']}")
    if subsets.get("seed", default.subset_seed) != default.subset_seed:
        parts.append(f"--subset-seed {subsets['seed']}")
    if subsets.get("batch_size", default.batch_size) != default.batch_size:
        parts.append(f"--batch-size {subsets['batch_size']}")
    if settings.get("recalibrate_bn") is False:
        parts.append("--no-bn-recal")
    return "".join(f" {p}" for p in parts)
