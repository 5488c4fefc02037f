"""``slimda-nas train --dry-run``: what a training run would do, shown before it starts.

Prints the resolved config, the data summary, the space's MACs range against the budgets named
and a measured time estimate. Reads data and builds models in memory; writes nothing.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from slimda_nas.errors import DataError


def space_reach(new, budgets: list, num_classes: int = 10):
    """(space summary, one line per budget, the lines of the unreachable budgets)."""
    from slimda_nas.cost.space_summary import budget_reach, summarize_space

    summary = summarize_space(new.space, num_classes)
    lines, unreachable = budget_reach(summary, budgets)
    return summary, lines, unreachable


def dry_run(
    new, budgets: list, data_root: str | None, steps: int = 2, adapted_from: Path | None = None
) -> int:
    from slimda_nas.cost.space_summary import lower_reach_advice, reach_text
    from slimda_nas.data import resolve_data_root, summarize_data
    from slimda_nas.train import backbone_defaults, time_training_steps
    from slimda_nas.train.session import check_adapted_from
    from slimda_nas.train.teacher import VIEWS

    cfg, space = new.config, new.space
    adapted = None if adapted_from is None else check_adapted_from(cfg, Path(adapted_from))
    console = Console(highlight=False, soft_wrap=True)
    row = backbone_defaults(space.backbone)
    console.rule(f"run config (RUN/run.yaml; run folder {cfg.run_dir})")
    console.print(yaml.safe_dump(cfg.to_dict(), sort_keys=False).rstrip(), markup=False)
    console.print(f"fields left out took the {space.backbone} defaults: {row.kind}")
    if new.space_text is not None:
        console.print(
            f"search space: generated for input {space.input_size}, would be {cfg.space}"
        )

    console.rule(f"data: {cfg.task}")
    data = summarize_data(cfg.task, resolve_data_root(data_root or cfg.data_root))
    console.print(_data_table(data))
    for d in (data.source, data.target):
        if d.unreadable:
            console.print(
                f"{d.name}: {len(d.unreadable)} unreadable files, left out (first: {d.unreadable[0]})"
            )
    if data.only_source or data.only_target:
        console.print(
            f"classes only in source: {data.only_source or 'none'}; "
            f"only in target: {data.only_target or 'none'}"
        )
    num_classes = len(data.classes) or 10

    console.rule(f"search space: {space.name} ({space.backbone}, input {space.input_size} px)")
    summary, lines, unreachable = space_reach(new, budgets, num_classes)
    console.print(reach_text(summary))
    for line in lines:
        console.print(line)
    if unreachable:
        console.print(lower_reach_advice(space))

    console.rule("time on this machine")
    images = data.source.images + data.target.images
    t = time_training_steps(cfg, space, num_classes, steps=steps, images=images)
    if adapted is not None:  # its adaptation is not trained again
        phases = [replace(p, iterations=0) if p.phase == "adaptation" else p for p in t.phases]
        t = replace(t, phases=tuple(phases))
    console.print(
        f"measured {t.steps} training steps of each phase here ({t.device}, {t.threads} "
        f"thread(s), random inputs of batch {cfg.batch_size} per domain):"
    )
    for p in t.phases:
        if adapted is not None and p.phase == "adaptation":
            console.print(f"  adaptation: taken from {adapted}, not trained again")
            continue
        console.print(
            f"  {p.phase}: {p.models_per_step} model(s) per step, {p.seconds_per_iteration:.2f} "
            f"s/iteration x {p.iterations:,} iterations = {_duration(p.seconds_per_iteration * p.iterations)}"
        )
    if t.cache_seconds:
        console.print(
            f"  the teacher's pass over {images:,} images x {VIEWS} views: "
            f"{_duration(t.cache_seconds)}"
        )
    console.print(
        f"about {_duration(t.total_seconds)} in all; decoding the images, evaluations and "
        "checkpoints come on top"
    )
    console.print("dry run: nothing was written")
    if data.problems:
        raise DataError(f"training would stop: {data.problems[0]}")
    _check_outputs_and_weights(cfg)
    return 0


def _check_outputs_and_weights(cfg) -> None:
    """What the real run refuses at its start: a run folder it may not write, a weights file
    that is not there."""
    from slimda_nas._io import check_output_path
    from slimda_nas.errors import CheckpointError

    check_output_path(cfg.run_dir, "run folder", folder=True)
    if cfg.weights not in (None, "imagenet") and not Path(cfg.weights).is_file():
        raise CheckpointError(f"training would stop: weights {cfg.weights}: file not found")


def _data_table(data) -> Table:
    t = Table(title="images per class (source labelled; target labels only report accuracy)")
    t.add_column("class")
    t.add_column(f"source: {data.source.name}", justify="right")
    unlabelled = " (unlabelled)" if data.target.unlabelled else ""
    t.add_column(f"target: {data.target.name}{unlabelled}", justify="right")
    for c in dict.fromkeys([*data.source.counts, *data.target.counts]):
        t.add_row(c, str(data.source.counts.get(c, "-")), str(data.target.counts.get(c, "-")))
    for d in (data.source, data.target):
        if d.error:
            t.caption = (t.caption + "; " if t.caption else "") + f"{d.name}: {d.error}"
    t.add_row("total", str(data.source.images), str(data.target.images), end_section=True)
    return t


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
