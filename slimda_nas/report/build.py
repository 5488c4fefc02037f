"""``build_report``: gather, draw, write. Every file is written atomically, the page last, so a
reader never sees a page whose figures are from another build."""

from __future__ import annotations

from pathlib import Path

from slimda_nas._io import write_bytes, write_json, write_text
from slimda_nas.report import figures
from slimda_nas.report.collect import ACCURACY_POINTS, collect
from slimda_nas.report.html import pick_label, render
from slimda_nas.report.summary import summary, summary_csv
from slimda_nas.train.run import TrainedRun

REPORT_DIR = "report"
FIGURES = ("pareto", "accuracy", "efficiency", "ranking")


def build_report(
    run_dir: str | Path | TrainedRun,
    *,
    storage: str | None = None,
    reference: str | Path | None = None,
    out: str | Path | None = None,
    accuracy: bool = True,
    accuracy_points: int = ACCURACY_POINTS,
    device: str = "auto",
    data_root: str | None = None,
) -> Path:
    """Write ``RUN/report/`` (``index.html``, the PNG figures, ``summary.json``/``.csv``) and
    return the page's path.

    Args:
        run_dir: a trained run (folder or loaded) with at least one search in its storage.
        storage: the study storage (default ``RUN/study.journal``): a journal path or an RDB URL.
        reference: another run of the same task (e.g. source-only) whose full-width accuracy is
            drawn as a reference line.
        out: the report folder (default ``RUN/report``).
        accuracy: measure ground-truth accuracy where the target has labels (cached per
            configuration in ``RUN/ground_truth.json``) of the chosen configurations and of
            ``accuracy_points`` Pareto-front ones spread over the MACs range.
    """
    data = collect(
        run_dir if isinstance(run_dir, TrainedRun) else Path(run_dir),
        storage=storage,
        reference=reference,
        accuracy=accuracy,
        accuracy_points=accuracy_points,
        device=device,
        data_root=data_root,
    )
    folder = Path(out) if out is not None else data.run.run_dir / REPORT_DIR
    drawn = {
        "pareto": figures.pareto_figure(data),
        "accuracy": figures.accuracy_figure(data) if data.accuracy else None,
        "efficiency": figures.efficiency_figure(data),
        "ranking": figures.ranking_figure(data),
    }
    for name in FIGURES:
        path = folder / f"{name}.png"
        if drawn[name] is not None:
            write_bytes(path, drawn[name])
        elif path.exists():
            path.unlink()  # a figure of an earlier build that no longer applies
    bars = {
        i: figures.widths_chart(
            data.run.space.unit_channels(k.point.config), data.full_width, k.sampler
        )
        for i, k in enumerate(data.picks)
    }
    widths = folder / "widths"
    written = {
        write_bytes(widths / f"{pick_label(k)}.png", bars[i]).name
        for i, k in enumerate(data.picks)
    }
    for old in widths.glob("*.png"):
        if old.name not in written:
            old.unlink()
    record = summary(data)
    write_json(folder / "summary.json", record)
    write_text(folder / "summary.csv", summary_csv(data))
    return write_text(folder / "index.html", render(data, drawn, bars, record))
