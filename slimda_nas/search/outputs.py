"""Search outputs: ground-truth accuracy of chosen models, results files, the results table."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from slimda_nas._io import write_json, write_yaml
from slimda_nas.evaluate.evaluator import Evaluator
from slimda_nas.search.budget import format_fraction
from slimda_nas.search.runner import SearchResult, settings_hash
from slimda_nas.search.score_cache import config_key

GROUND_TRUTH = "ground_truth.json"
RESULTS = "search/results.json"


def has_labels(evaluator: Evaluator) -> bool:
    from slimda_nas.data import LabelAccessError

    try:
        evaluator.run.data().target_test.labels  # noqa: B018
        return True
    except LabelAccessError:
        return False


def ground_truth(evaluator: Evaluator, configs: list[dict]) -> list[float | None]:
    """Target-test accuracy of ``configs`` (cached per bank, settings and configuration in
    ``ground_truth.json``). Never called by the search itself."""
    if not has_labels(evaluator):
        return [None] * len(configs)
    path = evaluator.run.run_dir / GROUND_TRUTH
    known = json.loads(path.read_text()) if path.is_file() else {}
    prefix = f"{evaluator.run.checkpoint_hash}:{settings_hash(evaluator.record())}"
    out, changed = [], False
    for config in configs:
        key = f"{prefix}:{config_key(evaluator.run.space.to_indices(config))}"
        if key not in known:
            known[key] = evaluator.accuracy(config)
            changed = True
        out.append(known[key])
    if changed:
        try:
            write_json(path, known)
        except OSError:
            pass  # read-only run folder: the figures are still printed
    return out


def attach_ground_truth(result: SearchResult, evaluator: Evaluator) -> None:
    choices = result.choices
    for choice, acc in zip(choices, ground_truth(evaluator, [c.config for c in choices])):
        choice.accuracy = acc
    if result.front:
        for rec, acc in zip(
            result.front, ground_truth(evaluator, [r["config"] for r in result.front])
        ):
            rec["accuracy"] = acc


def write_results(result: SearchResult, run_dir: Path) -> Path:
    """Merge this search's studies into ``search/results.json`` (and ``.yaml``) atomically."""
    path = run_dir / RESULTS
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.setdefault("studies", {})
    data.update(
        {
            "run": str(run_dir),
            "anchor_macs": result.anchor_macs,
            "settings": result.settings,
            "storage": result.storage,
        }
    )
    for s in result.studies:
        data["studies"][s.name] = {**s.to_dict(), "settings": result.settings}
    if result.front:
        data["front"] = result.front
    write_json(path, data)
    write_yaml(path.with_suffix(".yaml"), data)
    return path


def results_table(result: SearchResult, title: str, channels: dict | None = None) -> Table:
    """One row per (budget, sampler): the chosen model. ``channels`` maps a choice's index in
    ``result.choices`` order to its per-unit channel counts, shown instead of ratios."""
    t = Table(title=title)
    for col in (
        "budget",
        "sampler",
        "MACs (thop)",
        f"UPEM {_metric(result)}",
        "acc.*",
        "evals",
        "feas.",
        "channels per unit",
    ):
        t.add_column(
            col,
            justify="left" if col in ("budget", "sampler", "channels per unit") else "right",
            overflow="fold",
        )
    i = 0
    for s in result.studies:
        for c in s.choices:
            widths = (channels or {}).get(i, c.config)
            t.add_row(
                c.budget,
                c.sampler,
                f"{format_macs(c.macs)} = {format_fraction(c.fraction)}",
                f"{c.upem[_metric(result)]:.4f}",
                "-" if c.accuracy is None else f"{c.accuracy:.2%}",
                str(s.evaluations),
                "-" if s.feasible_fraction is None else f"{s.feasible_fraction:.0%}",
                "-".join(str(v) for v in widths.values()),
            )
            i += 1
    return t


def format_macs(macs: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if macs >= scale:
            return f"{macs / scale:.3g}{unit}"
    return str(int(macs))


def _metric(result: SearchResult) -> str:
    return result.settings.get("metric", "kl")
