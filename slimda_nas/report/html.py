"""The report page: one self-contained HTML file (inline CSS, images as base64 PNG, no scripts,
no external resources), so it can be mailed or opened from any folder."""

from __future__ import annotations

import base64
import statistics
from html import escape

from slimda_nas.cost.budget import ResolvedBudget, format_fraction, format_macs
from slimda_nas.deploy.latency import LatencyRecord, format_ms, one_thread_text
from slimda_nas.report.collect import Pick, ReportData
from slimda_nas.report.figures import colour

_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;margin:0;
background:#f6f7f9;color:#1d232a;line-height:1.45}
main{max-width:1240px;margin:0 auto;padding:24px 28px 60px;background:#fff;
box-shadow:0 0 12px #0001}
h1{font-size:1.6em;margin:.2em 0}
h2{font-size:1.25em;border-bottom:2px solid #e3e6ea;padding-bottom:4px;margin-top:2em}
h3{font-size:1.05em;margin:1.4em 0 .4em}
.meta{color:#56606b;font-size:.92em}
table{border-collapse:collapse;font-size:.88em;margin:.4em 0 1em}
th,td{border:1px solid #dde1e6;padding:4px 8px;text-align:right;vertical-align:middle}
th{background:#f0f2f5}td.l,th.l{text-align:left}
tr.chosen td{background:#fff6d5;font-weight:600}
img.fig{max-width:100%;border:1px solid #e3e6ea;margin:.3em 0}
img.bars{display:block}
.cap{color:#444;font-size:.92em;max-width:1100px}
code,pre{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:.86em}
pre{background:#f4f5f7;padding:8px 10px;overflow-x:auto;border-radius:4px}
.swatch{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:4px;
vertical-align:-1px}
.note{color:#8a5a00}
dl{display:grid;grid-template-columns:max-content auto;gap:3px 16px;font-size:.9em}
dt{font-weight:600}dd{margin:0}
"""

_CAPTIONS = {
    "pareto": "MACs (thop, log scale) against UPEM for every configuration any study scored, one "
    "colour per sampler. The black step line is the Pareto front over all samplers; stars mark "
    "the model each sampler chose per budget (the large star, labelled, is the best across "
    "samplers). "
    "Dashed lines: 1/2 ... 1/64 of the anchor's MACs; solid line: the anchor.",
    "accuracy": "Ground-truth accuracy on the labelled target test split (the search never sees "
    "it) of Pareto-front configurations spread over the MACs range and of the chosen ones; the "
    "full-width model{reference} as horizontal lines.",
    "efficiency": "Best feasible UPEM found so far against the number of UPEM evaluations, per "
    "budget and sampler: the line is the mean over seeds, the band the min-max range. A dotted "
    "level is a one-evaluation baseline (uniform width). Re-proposed or cached configurations "
    "cost no evaluation.",
}


def render(
    data: ReportData, figures: dict[str, bytes | None], bars: dict[int, bytes], summary: dict
) -> str:
    """The page; ``bars`` maps an index into ``data.picks`` to its widths chart."""
    run = data.run
    no_acc = "; ".join(n for n in data.notes if n.startswith("accuracy")) or "no labels"
    reference = " and the reference run" if data.reference else ""
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>slimda-nas report: {escape(str(run.run_dir))}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f"<h1>slimda-nas report: {escape(str(run.run_dir))}</h1>",
        _meta(data, summary),
        _glance(data),
        _section("Pareto front", figures.get("pareto"), _CAPTIONS["pareto"]),
        _section(
            "Accuracy against MACs",
            figures.get("accuracy"),
            _CAPTIONS["accuracy"].format(reference=reference),
            missing=f"No accuracy: {no_acc}.",
        ),
        _section("Search efficiency", figures.get("efficiency"), _CAPTIONS["efficiency"]),
        _section(
            "UPEM against accuracy",
            figures.get("ranking"),
            _ranking_caption(data),
            missing="No labelled target accuracy: correlations cannot be measured.",
        ),
        _within_section(data, figures.get("within_budget")),
        "<h2>Chosen configuration per budget</h2>",
        "<p class='cap'>One row per sampler: its best configuration within the budget over its "
        "seeds. Bars: channels per unit in front of the full width (grey). Seeds: each seed's own "
        "choice, UPEM mean &plusmn; sd. Highlighted: the model "
        "<code>slimda-nas export --budget</code> picks.</p>",
        *(_budget_table(data, b, bars) for b in data.budgets),
        _labelled(data),
        _studies(data),
        _settings(data, summary),
    ]
    if data.notes:
        items = "".join(f"<li class='note'>{escape(n)}</li>" for n in data.notes)
        parts.append(f"<h2>Notes</h2><ul>{items}</ul>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def img(png: bytes, alt: str, cls: str = "fig") -> str:
    data = base64.b64encode(png).decode()
    return f"<img class='{cls}' alt='{escape(alt)}' src='data:image/png;base64,{data}'>"


def pick_label(k: Pick) -> str:
    """File-name-safe ``<budget>-<sampler>``."""
    return f"{k.budget.slug}-{k.sampler}{'-pareto' if k.pareto else ''}"


def _meta(data: ReportData, summary: dict) -> str:
    run = data.run
    return (
        f"<p class='meta'>task <b>{escape(run.task)}</b> &middot; method "
        f"<b>{escape(run.method)}</b> &middot; space <b>{escape(run.space.name)}</b> "
        f"({escape(run.space.backbone)}) &middot; anchor {format_macs(data.anchor_macs)} MACs "
        f"&middot; {len(data.studies)} studies, {len({p.key for p in data.points})} scored "
        f"configurations &middot; generated {escape(summary['generated'])}</p>"
    )


def _section(title: str, png: bytes | None, caption: str, missing: str = "Nothing yet.") -> str:
    if png is None:
        return f"<h2>{escape(title)}</h2><p class='note'>{escape(missing)}</p>"
    return f"<h2>{escape(title)}</h2>{img(png, title)}<p class='cap'>{escape(caption)}</p>"


def _acc(v: float | None) -> str:
    return "-" if v is None else f"{v:.2%}"


def _swatch(sampler: str) -> str:
    return f"<span class='swatch' style='background:{colour(sampler)}'></span>{escape(sampler)}"


def _frac(macs: int, data: ReportData) -> str:
    return format_fraction(macs / data.anchor_macs)


def _glance(data: ReportData) -> str:
    lat = data.latency
    rows = []
    for b in data.budgets:
        pick = next((k for k in data.picks_at(b) if k.chosen), None)
        cells = f"<td class='l'>{escape(b.text)}</td><td>{format_macs(b.macs)}</td>"
        if pick is None:
            rows.append(f"<tr>{cells}<td class='l' colspan='8'>nothing feasible scored</td></tr>")
            continue
        p = pick.point
        delta = "-"
        if pick.accuracy is not None and data.largest_accuracy is not None:
            delta = f"{(pick.accuracy - data.largest_accuracy) * 100:+.2f} pt"
        cmd = (
            f"slimda-nas export --run {data.run.run_dir} --budget {b.text} "
            f"--sampler {pick.sampler}"
        )
        timing = _latency_cells(lat.get(p.key) if lat else None) if lat else ""
        rows.append(
            f"<tr>{cells}<td class='l'>{_swatch(pick.label)}</td>"
            f"<td>{format_macs(p.macs)} ({_frac(p.macs, data)})</td>{timing}"
            f"<td>{p.value:.4f}</td><td>{_acc(pick.accuracy)}</td><td>{delta}</td>"
            f"<td class='l'><code>{escape(cmd)}</code></td></tr>"
        )
    full = ""
    if data.largest_accuracy is not None:
        full = f" Full-width (largest) model: {_acc(data.largest_accuracy)}."
    timing_head = "<th>latency PyTorch</th><th>latency ONNX Runtime</th>" if lat else ""
    head = (
        "<tr><th class='l'>budget</th><th>MACs limit</th><th class='l'>best sampler</th>"
        f"<th>MACs (thop)</th>{timing_head}<th>UPEM {escape(data.metric)}</th>"
        "<th>accuracy*</th><th>vs full width</th><th class='l'>export it</th></tr>"
    )
    return (
        f"<h2>At a glance</h2><table id='glance'>{head}{''.join(rows)}</table><p class='cap'>* "
        f"target test split, ground truth, never used by the search.{full}"
        f"{_latency_caption(lat) if lat else ''}</p>"
    )


def _latency_cells(rec: dict | None) -> str:
    return f"<td>{format_ms(rec, 'pytorch')}</td><td>{format_ms(rec, 'onnxruntime')}</td>"


def _latency_caption(lat: LatencyRecord) -> str:
    full, missing = lat.get("full_width"), lat.onnx_missing("full_width")
    return escape(
        f" Latency: median of repeated batch-1 runs after a warm-up, on the machine that made "
        f"this report ({lat.machine_text}); full width "
        f"{format_ms(full, 'pytorch')} (PyTorch) / {format_ms(full, 'onnxruntime')} (ONNX Runtime)"
        f"{one_thread_text(full)}. "
        "The numbers belong to this machine: measure on the target device."
        + (f" ONNX Runtime: {missing}." if missing else "")
    )


def _within_section(data: ReportData, png: bytes | None) -> str:
    """The within-budget ranking check: one panel per budget, and per budget the scores that
    rank its band best, beside the searched one and MACs alone."""
    if png is None:
        return (
            "<h2>Ranking within a budget</h2><p class='note'>Not measured: run "
            f"<code>slimda-nas eval --run {escape(str(data.run.run_dir))} --ranking 60 --budget "
            "1/16,1/64</code> to see how well each label-free score ranks the configurations a "
            "search at one budget chooses among.</p>"
        )
    wanted = data.scoring.subsets.scoring
    tables = []
    for text, rec in data.within.items():
        images = rec.images_near(wanted)
        table = rec.rows(images)
        order = sorted(table, key=lambda k: -_finite(table[k].spearman))
        shown = list(dict.fromkeys([*order[:5], data.metric, "macs"]))
        rows = "".join(
            f"<tr><td class='l'>{'MACs alone' if k == 'macs' else escape(k)}"
            f"{' (searched)' if k == data.metric else ''}</td>"
            f"<td>{table[k].spearman:.2f}</td><td>{table[k].kendall:.2f}</td>"
            f"<td>{table[k].pick_accuracy:.2%}</td><td>{table[k].regret * 100:.2f} pt</td></tr>"
            for k in shown
            if k in table
        )
        tables.append(
            f"<h3>Budget {escape(text)}: {rec.n} configurations with MACs in "
            f"[{rec.low:,}, {rec.budget.macs:,}], accuracy median {rec.median_accuracy:.2%}, "
            f"best {rec.best_accuracy:.2%}, split-half ceiling {rec.ceiling:.2f} "
            f"({images} scoring images, sampling seed {rec.seed})</h3>"
            "<table><tr><th class='l'>score</th><th>Spearman</th><th>Kendall</th>"
            f"<th>pick accuracy</th><th>regret</th></tr>{rows}</table>"
        )
    caption = (
        "Each panel: configurations drawn near-uniformly from the band just under one budget "
        "(what a search at that budget chooses among), the searched score against accuracy. The "
        "ceiling is the Spearman of accuracy on one half of the test split against the other: no "
        "score can rank better than the accuracy itself repeats. Regret: the best accuracy of "
        "the band minus that of the score's pick."
    )
    return (
        f"<h2>Ranking within a budget</h2>{img(png, 'within-budget ranking')}"
        f"<p class='cap'>{escape(caption)}</p>{''.join(tables)}"
    )


def _finite(v: float | None) -> float:
    return -2.0 if v is None or v != v else v


def _ranking_caption(data: ReportData) -> str:
    r = data.ranking
    if r is None:
        return ""
    return (
        f"UPEM ({r.metric}) against ground-truth accuracy for {len(r.upem)} configurations from "
        f"{r.source}, coloured by MACs. Correlations of -UPEM with accuracy: Pearson "
        f"{r.pearson:.3f}, Spearman {r.spearman:.3f}, Kendall {r.kendall:.3f} (1: UPEM ranks "
        "exactly like accuracy)."
    )


def _seeds(values: list[float]) -> str:
    if len(values) < 2:
        return "1"
    return f"{len(values)}: {statistics.mean(values):.4f} &plusmn; {statistics.stdev(values):.4f}"


def _budget_table(data: ReportData, budget: ResolvedBudget, bars: dict[int, bytes]) -> str:
    text = budget.text
    head = (
        f"<h3>Budget {escape(text)}: at most {budget.macs:,} MACs "
        f"({_frac(budget.macs, data)} of the anchor)</h3>"
    )
    picks = [(i, k) for i, k in enumerate(data.picks) if k.budget.macs == budget.macs]
    if not picks:
        return head + "<p class='note'>No study found a feasible configuration here.</p>"
    rows = []
    for i, k in picks:
        p = k.point
        alt = f"channels per unit, {k.label} at {text}"
        chart = img(bars[i], alt, "bars") if i in bars else ""
        channels = data.run.space.unit_channels(p.config)
        widths = escape("-".join(str(c) for c in channels.values()))
        rows.append(
            f"<tr class='{'chosen' if k.chosen else ''}'>"
            f"<td class='l'>{_swatch(k.label)}{' &#9733;' if k.chosen else ''}</td>"
            f"<td class='l'>{chart}<code>{widths}</code></td>"
            f"<td>{p.macs:,}<br>({_frac(p.macs, data)})</td><td>{p.params:,}</td>"
            f"<td>{p.value:.4f}</td><td>{_seeds(k.seed_values)}</td><td>{_acc(k.accuracy)}</td>"
            f"<td class='l'>{escape(p.study)}<br>trial {p.trial}</td></tr>"
        )
    columns = (
        "<tr><th class='l'>sampler</th><th class='l'>channels per unit</th><th>MACs (thop)</th>"
        f"<th>parameters</th><th>UPEM {escape(data.metric)}</th><th>seeds</th>"
        "<th>accuracy*</th><th class='l'>study / trial</th></tr>"
    )
    return f"{head}<table>{columns}{''.join(rows)}</table>"


def _labelled(data: ReportData) -> str:
    """``--target-labelled``: each pick's accuracy on the few labelled target images."""
    rec = data.labelled
    if rec is None:
        return ""
    rows = "".join(
        f"<tr><td>{escape(label)}</td><td>{_acc(acc)}</td></tr>"
        for label, acc in rec["accuracy"].items()
    )
    return (
        f"<h2>Accuracy on {rec['images']} labelled target images</h2>"
        f"<p class='cap'>From <code>{escape(rec['folder'])}</code>: reported only, the picks "
        f"were made by UPEM without these labels. {rec['images']} images: one image is "
        f"{100 / rec['images']:.1f} points.</p>"
        f"<table><tr><th>model</th><th>accuracy</th></tr>{rows}</table>"
    )


def _studies(data: ReportData) -> str:
    rows = "".join(
        f"<tr><td class='l'>{escape(s.name)}</td><td class='l'>{_swatch(s.sampler)}</td>"
        f"<td>{s.seed}</td><td>{escape(s.budget.text if s.budget else 'Pareto')}</td><td>{s.trials}</td>"
        f"<td>{s.evaluations}</td><td>{len({p.key for p in s.points})}</td></tr>"
        for s in data.studies
    )
    columns = (
        "<tr><th class='l'>study</th><th class='l'>sampler</th><th>seed</th><th>budget</th>"
        "<th>finished trials</th><th>UPEM evaluations</th><th>configurations scored</th></tr>"
    )
    return (
        f"<h2>Studies</h2><table>{columns}{rows}</table>"
        f"<p class='cap'>Storage: <code>{escape(data.storage)}</code></p>"
    )


def _known(value) -> str:
    return "?" if value is None else str(value)


def _settings(data: ReportData, summary: dict) -> str:
    run, s = summary["run"], data.scoring
    sub = s.subsets
    space = run["space"]
    anchor = s.anchor
    anchor_text = "largest configuration" if anchor in (None, data.run.space.largest()) else anchor
    seeds: dict[str, set[int]] = {}
    for st in data.studies:
        seeds.setdefault(st.sampler, set()).add(st.seed)
    items = [
        ("task", run["task"]),
        ("method", run["method"]),
        ("head scored / deployed", f"{s.head or '?'} / {run['deploy_head']}"),
        (
            "search space",
            f"{space['name']} (hash {space['hash']}, {space['file']}, {space['units']} units, "
            f"{space['size']:,} configurations)",
        ),
        ("checkpoint", run["checkpoint"]),
        ("training", ", ".join(f"{k} {v}" for k, v in run["training"].items())),
        ("anchor", f"{anchor_text}: {data.anchor_macs:,} MACs"),
        ("UPEM metric", data.metric),
        (
            "evaluation subsets",
            f"{_known(sub.calibration)} images for BN re-estimation, "
            f"{_known(sub.scoring)} for UPEM, seed {_known(sub.seed)}, "
            f"from {_known(sub.split)} (unlabelled)",
        ),
        ("BN re-estimation", "on" if s.recalibrate_bn else "OFF"),
        ("search seeds", "; ".join(f"{k}: {sorted(v)}" for k, v in sorted(seeds.items()))),
        ("versions", ", ".join(f"{k} {v}" for k, v in summary["versions"].items())),
    ]
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in items)
    cmds = "\n".join([*summary["reproduce"], f"slimda-nas report --run {data.run.run_dir}"])
    return (
        f"<h2>Settings (to reproduce)</h2><dl>{dl}</dl><p class='cap'>Commands that re-create "
        f"these studies and this page:</p><pre>{escape(cmds)}</pre>"
    )
