"""``build_report``: gather, draw, write. The report is built in a staging folder and swapped in
whole, so a reader never sees a page whose figures are from another build, and a folder that
is not an earlier report is never written into."""

from __future__ import annotations

from pathlib import Path

from slimda_nas._check import typed
from slimda_nas._folders import check_replaceable, staged_folder
from slimda_nas._io import write_bytes, write_json, write_text
from slimda_nas.errors import RunError
from slimda_nas.report import figures
from slimda_nas.report.collect import ACCURACY_POINTS, collect
from slimda_nas.report.html import pick_label, render
from slimda_nas.report.summary import SUMMARY_FILE, read_summary, summary, summary_csv
from slimda_nas.report.widths_figure import widths_chart
from slimda_nas.train.run import TrainedRun, load_run

REPORT_DIR = "report"
FIGURES = ("pareto", "accuracy", "efficiency", "ranking", "within_budget")


@typed
def build_report(
    run_dir: str | Path | TrainedRun,
    *,
    storage: str | None = None,
    reference: str | Path | None = None,
    out: str | Path | None = None,
    accuracy: bool = True,
    accuracy_points: int = ACCURACY_POINTS,
    latency: bool = True,
    device: str = "auto",
    data_root: str | None = None,
    target_labelled: str | Path | None = None,
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
        latency: measure each budget's chosen model's batch-1 latency on this machine
            (PyTorch and ONNX Runtime) and the full-width model's, cached in ``RUN/cache``.
        target_labelled: a folder of labelled target images: each pick's accuracy on them is
            reported (with how many images it rests on); it plays no part in the picks.
    """
    if reference is not None:
        load_run(reference, device="cpu")  # a missing or unfinished reference run fails first
    if out is not None:
        check_target(Path(out))
    data = collect(
        run_dir if isinstance(run_dir, TrainedRun) else Path(run_dir),
        storage=storage,
        reference=reference,
        accuracy=accuracy,
        accuracy_points=accuracy_points,
        latency=latency,
        device=device,
        data_root=data_root,
        target_labelled=target_labelled,
    )
    folder = Path(out) if out is not None else data.run.run_dir / REPORT_DIR
    check_target(folder)
    drawn = {
        "pareto": figures.pareto_figure(data),
        "accuracy": figures.accuracy_figure(data) if data.accuracy else None,
        "efficiency": figures.efficiency_figure(data),
        "ranking": figures.ranking_figure(data),
        "within_budget": figures.within_budget_figure(data),
    }
    bars = {
        i: widths_chart(data.run.space.unit_channels(k.point.config), data.full_width, k.label)
        for i, k in enumerate(data.picks)
    }
    record = summary(data)
    with staged_folder(folder) as tmp:  # swapped in whole: never new figures beside an old page
        for name in FIGURES:
            if drawn[name] is not None:
                write_bytes(tmp / f"{name}.png", drawn[name])
        for i, k in enumerate(data.picks):
            write_bytes(tmp / "widths" / f"{pick_label(k)}.png", bars[i])
        write_json(tmp / SUMMARY_FILE, record)
        write_text(tmp / "summary.csv", summary_csv(data))
        write_text(tmp / "index.html", render(data, drawn, bars, record))
    return folder / "index.html"


def check_target(folder: Path) -> None:
    """Refuse a report folder that holds anything but an earlier report."""
    check_replaceable(
        folder,
        lambda f: read_summary(f) is not None,
        "report (no summary.json of slimda-nas)",
        RunError,
    )
