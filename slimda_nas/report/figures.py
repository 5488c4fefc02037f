"""The report's figures as PNG bytes (matplotlib, Agg canvas, no pyplot global state)."""

from __future__ import annotations

import io
import math

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    PercentFormatter,
)

from slimda_nas.cost.budget import format_macs
from slimda_nas.evaluate.scores import LEGACY_METRIC
from slimda_nas.report.collect import ReportData
from slimda_nas.search.studies import sampler_label

SAMPLER_COLOURS = {
    "tpe": "#1f77b4",
    "nsga2": "#ff7f0e",
    "random": "#6f6f6f",
    "uniform": "#2ca02c",
    "greedy": "#9467bd",
}
_EXTRA = ("#d62728", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
DPI = 110
_PLAIN = FuncFormatter(lambda v, _: f"{v:.3g}")


def colour(sampler: str) -> str:
    base = sampler.split(" ", 1)[0]
    if base in SAMPLER_COLOURS:
        return SAMPLER_COLOURS[base]
    return _EXTRA[sum(map(ord, base)) % len(_EXTRA)]


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _macs_axis(ax, data: ReportData) -> None:
    """Log MACs axis with the reference budgets (1/2 ... 1/64 of the anchor) as vertical lines."""
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_macs(v)))
    ax.set_xlabel("MACs (thop, batch 1)")
    lines = data.reference_lines()
    transform = ax.get_xaxis_transform()
    for macs, text in lines.items():
        ax.axvline(macs, color="#999999", lw=0.8, ls="-" if text == "anchor" else "--", zorder=0)
        ax.text(
            macs,
            1.01,
            text,
            transform=transform,
            ha="center",
            va="bottom",
            fontsize=8,
            color="#555555",
        )


def _log_axis(ax, values: list[float], axis: str = "y", formatter=_PLAIN) -> None:
    """A log axis with plain labels at 1-2-3-5-7, 1-2-5 or 1 per decade, by range, so that a
    narrow UPEM range still gets a few labels and a wide one is not crowded."""
    positive = [v for v in values if v > 0]
    if not positive:
        return
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    span = max(positive) / min(positive)
    subs = (1.0,) if span > 300 else (1.0, 2.0, 5.0) if span > 12 else (1.0, 2.0, 3.0, 5.0, 7.0)
    target.set_major_locator(LogLocator(base=10, subs=subs))
    target.set_major_formatter(formatter)
    target.set_minor_formatter(NullFormatter())
    if span < 3:  # under half a decade: evenly spaced plain ticks read better
        target.set_major_locator(MaxNLocator(nbins=4))
    if span < 1.0001:  # one value (a lone baseline): give the axis a range to lay out
        (ax.set_ylim if axis == "y" else ax.set_xlim)(min(positive) / 1.5, max(positive) * 1.5)


def pareto_figure(data: ReportData) -> bytes:
    """MACs vs UPEM of every scored configuration, the front, and the chosen models.

    UPEM 0 (the anchor against itself) has no place on a log axis and is left out.
    """
    fig = Figure(figsize=(11, 6.4))
    ax = fig.add_subplot()
    for sampler in data.samplers:
        pts = [p for s in data.studies if sampler_label(s) == sampler for p in s.points]
        pts = [p for p in pts if p.value > 0]
        n = len({p.key for p in pts})
        ax.scatter(
            [p.macs for p in pts],
            [p.value for p in pts],
            s=16,
            alpha=0.45,
            color=colour(sampler),
            label=f"{sampler} ({n} configurations)",
            linewidths=0,
        )
    front = [p for p in data.front if p.value > 0]
    ax.plot(
        [p.macs for p in front],
        [p.value for p in front],
        color="black",
        lw=1.2,
        drawstyle="steps-post",
        marker="o",
        ms=3,
        label="Pareto front (all samplers)",
        zorder=3,
    )
    for pick in data.picks:
        if pick.point.value <= 0:
            continue
        ax.scatter(
            [pick.point.macs],
            [pick.point.value],
            marker="*",
            s=300 if pick.chosen else 110,
            color=colour(pick.sampler),
            edgecolors="black",
            linewidths=1.0 if pick.chosen else 0.5,
            zorder=4,
        )
        if pick.chosen:
            ax.annotate(
                pick.budget.text,
                (pick.point.macs, pick.point.value),
                xytext=(-4, -14),
                textcoords="offset points",
                fontsize=9,
                weight="bold",
                ha="right",
            )
    ax.scatter(
        [],
        [],
        marker="*",
        s=110,
        color="white",
        edgecolors="black",
        label="chosen per budget and sampler (large: best of all samplers)",
    )
    _macs_axis(ax, data)
    _log_axis(ax, [p.value for p in data.points])
    ax.set_ylabel(f"UPEM ({data.metric}) against the anchor, lower is better")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, frameon=False)
    ax.set_title("Pareto front: cost against unsupervised score", pad=18)
    return _png(fig)


def accuracy_figure(data: ReportData) -> bytes | None:
    """MACs vs ground-truth accuracy of the front and of the chosen models."""
    front = [(p.macs, data.accuracy.get(p.key)) for p in data.front]
    front = [(m, a) for m, a in front if a is not None]
    if not front and data.largest_accuracy is None:
        return None
    fig = Figure(figsize=(11, 6))
    ax = fig.add_subplot()
    ax.plot(
        [m for m, _ in front],
        [a for _, a in front],
        color="black",
        lw=1,
        marker="o",
        ms=3,
        alpha=0.7,
        label="Pareto-front configurations (by UPEM)",
    )
    for pick in data.picks:
        if pick.accuracy is not None:
            ax.scatter(
                [pick.point.macs],
                [pick.accuracy],
                marker="*",
                zorder=4,
                s=300 if pick.chosen else 110,
                color=colour(pick.sampler),
                edgecolors="black",
                linewidths=1.0 if pick.chosen else 0.5,
            )
    for sampler in dict.fromkeys(k.label for k in data.picks if k.accuracy is not None):
        ax.scatter(
            [],
            [],
            marker="*",
            s=110,
            color=colour(sampler),
            edgecolors="black",
            linewidths=0.5,
            label=f"chosen by {sampler}",
        )
    if data.largest_accuracy is not None:
        ax.axhline(
            data.largest_accuracy,
            color="#1a9850",
            lw=1.5,
            label=f"full width (largest model): {data.largest_accuracy:.2%}",
        )
    if data.reference is not None:
        name, acc = data.reference
        ax.axhline(acc, color="#d73027", lw=1.5, ls="-.", label=f"{name}: {acc:.2%}")
    _macs_axis(ax, data)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("accuracy on the labelled target test split")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, frameon=False)
    ax.set_title(
        "Ground truth (never seen by the search): large stars are the models picked", pad=18
    )
    return _png(fig)


def efficiency_figure(data: ReportData) -> bytes | None:
    """Best feasible UPEM against UPEM evaluations, one panel per budget."""
    budgets = [b for b in data.budgets if any(c.budget_macs == b.macs for c in data.curves)]
    if not budgets:
        return None
    seeds: dict[str, set[int]] = {}
    for c in data.curves:
        seeds.setdefault(c.sampler, set()).update(c.seeds)
    cols = min(3, len(budgets))
    rows = math.ceil(len(budgets) / cols)
    fig = Figure(figsize=(4.8 * cols, 3.5 * rows + 0.7))
    axes = fig.subplots(rows, cols, squeeze=False)
    handles = {}
    for ax, budget in zip(axes.flat, budgets, strict=False):
        values = []
        for c in (c for c in data.curves if c.budget_macs == budget.macs):
            label = _seed_label(c.sampler, seeds[c.sampler])
            handles.setdefault(label, _curve(ax, c))
            values += [v for v in c.low + c.high if v is not None]
        _log_axis(ax, values)
        ax.set_title(f"budget {budget.text} ({format_macs(budget.macs)} MACs)", fontsize=10)
        ax.set_xlabel("UPEM evaluations")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(left=0.5, right=max(ax.get_xlim()[1], 5.5))
        ax.set_ylabel(f"best feasible UPEM ({data.metric})")
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(budgets) :]:
        ax.set_visible(False)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="upper center",
        frameon=False,
        ncol=min(5, len(handles)),
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.55 / fig.get_size_inches()[1]))
    return _png(fig)


def _curve(ax, c):
    """Mean line and min-max band as steps (the value after evaluation k holds until k + 1; the
    last one is drawn half a step on), a dot where the curve ends (a baseline that needs N
    evaluations before its first feasible model shows as that dot); a one-shot baseline as a
    dotted level."""
    col = colour(c.sampler)
    ys = [math.nan if v is None else v for v in c.mean]
    if len(ys) == 1 and c.mean[0] is not None:
        ax.plot([1], ys, marker="o", color=col)
        return ax.axhline(ys[0], color=col, ls=":", lw=1.5)
    n = len(ys)
    x = [*range(1, n + 1), n + 0.5]
    (line,) = ax.plot(x, [*ys, ys[-1]], color=col, lw=1.6, drawstyle="steps-post")
    if len(c.seeds) > 1:
        lo = [math.nan if v is None else v for v in c.low]
        hi = [math.nan if v is None else v for v in c.high]
        ax.fill_between(
            x, [*lo, lo[-1]], [*hi, hi[-1]], color=col, alpha=0.18, step="post", linewidth=0
        )
    if c.mean[-1] is not None:
        ax.plot([n], [ys[-1]], marker="o", ms=4, color=col)
    return line


def ranking_figure(data: ReportData) -> bytes | None:
    """UPEM against accuracy, coloured by MACs, with the three correlations."""
    r = data.ranking
    if r is None:
        return None
    keep = [i for i, u in enumerate(r.upem) if u > 0]  # UPEM 0 (the anchor) is off a log axis
    upem, acc, macs = ([seq[i] for i in keep] for seq in (r.upem, r.accuracy, r.macs))
    fig = Figure(figsize=(8, 5.5))
    ax = fig.add_subplot()
    sc = ax.scatter(
        upem,
        acc,
        c=macs,
        cmap="viridis",
        norm=LogNorm(min(macs), max(macs) + 1),
        s=28,
        edgecolors="black",
        linewidths=0.3,
    )
    cb = fig.colorbar(sc, ax=ax)
    cb.set_label("MACs (thop)")
    _log_axis(cb.ax, macs, formatter=FuncFormatter(lambda v, _: format_macs(v)))
    _log_axis(ax, upem, axis="x")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(f"UPEM ({r.metric}), lower is better")
    ax.set_ylabel("accuracy on the labelled target test split")
    text = (
        f"{len(r.upem)} configurations\nPearson {r.pearson:.3f}\nSpearman {r.spearman:.3f}\n"
        f"Kendall {r.kendall:.3f}\n(of -UPEM with accuracy)"
    )
    ax.text(
        0.98,
        0.97,
        text,
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=9,
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85},
    )
    ax.grid(True, alpha=0.3)
    ax.set_title("Does UPEM rank candidates like accuracy does?")
    return _png(fig)


def within_budget_figure(data: ReportData) -> bytes | None:
    """One panel per budget: the searched score against accuracy for the configurations of
    the band under it, with its Spearman and the split-half ceiling."""
    if not data.within:
        return None
    budgets = list(data.within.items())
    wanted = data.scoring.subsets.scoring
    fig = Figure(figsize=(4.6 * len(budgets), 4.2))
    for i, (text, rec) in enumerate(budgets):
        ax = fig.add_subplot(1, len(budgets), i + 1)
        images = rec.images_near(wanted)
        metric = data.metric if data.metric in rec.scores(images) else LEGACY_METRIC
        x, y = rec.points(images, metric)
        ax.scatter(x, y, s=22, color="#1f77b4", edgecolors="black", linewidths=0.3)
        row = rec.rows(images)[metric]
        ax.set_title(
            f"budget {text}: {len(x)} configurations\nSpearman {row.spearman:.2f} "
            f"(ceiling {rec.ceiling:.2f}), regret {row.regret * 100:.2f} pt",
            fontsize=9,
        )
        ax.set_xlabel(f"{metric} ({images} images), lower is better")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        if i == 0:
            ax.set_ylabel("target test accuracy")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _seed_label(sampler: str, seeds: set[int]) -> str:
    listed = ", ".join(map(str, sorted(seeds)))
    return f"{sampler} (seed{'s' if len(seeds) > 1 else ''} {listed})"
