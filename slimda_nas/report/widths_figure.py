"""The small bar chart of a chosen model's channels per unit (and, in an elastic space, its
stage depths and input resolution), one per pick on the report page."""

from __future__ import annotations

from matplotlib.figure import Figure

from slimda_nas.report.figures import _png, colour
from slimda_nas.space import DEPTH_PREFIX, RESOLUTION


def widths_chart(channels: dict[str, int], full: dict[str, int], sampler: str) -> bytes:
    """Channels per unit (bars) in front of the full width (faint bars); a space's elastic units
    (stage depths in blocks, the input resolution in pixels) in a panel of their own, as a
    fraction of their largest choice, labelled with their value."""
    names = [n for n in channels if n != RESOLUTION and not n.startswith(DEPTH_PREFIX)]
    elastic = [n for n in channels if n not in names]
    width = max(2.4, 0.34 * len(names) + 0.6) + (0.34 * len(elastic) + 0.5 if elastic else 0)
    fig = Figure(figsize=(width, 1.25))
    if elastic:
        ax, ex = fig.subplots(
            1, 2, gridspec_kw={"width_ratios": [len(names) + 1, len(elastic) + 1]}
        )
    else:
        ax, ex = fig.add_subplot(), None
    x = range(len(names))
    ax.bar(x, [full[n] for n in names], color="#e6e6e6", width=0.8, zorder=1)
    bars = ax.bar(x, [channels[n] for n in names], color=colour(sampler), width=0.8, zorder=2)
    if len(names) <= 16:
        ax.bar_label(bars, fontsize=6, padding=1)
    _unit_axis(ax, names, max(full[n] for n in names) * 1.18)
    if ex is not None:
        xe = range(len(elastic))
        ex.bar(xe, [1.0] * len(elastic), color="#e6e6e6", width=0.8, zorder=1)
        fractions = [channels[n] / full[n] for n in elastic]
        bars = ex.bar(xe, fractions, color=colour(sampler), width=0.8, zorder=2)
        ex.bar_label(bars, [str(channels[n]) for n in elastic], fontsize=6, padding=1)
        _unit_axis(ex, elastic, 1.18)
    return _png(fig)


def _unit_axis(ax, names: list[str], top: float) -> None:
    slanted = len(names) > 6 or (len(names) > 2 and max(map(len, names)) > 8)
    ax.set_xticks(
        list(range(len(names))),
        names,
        fontsize=6,
        rotation=45 if slanted else 0,
        ha="right" if slanted else "center",
    )
    ax.set_ylim(0, top)
    ax.tick_params(axis="y", labelsize=6)
    ax.tick_params(axis="x", length=0)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
