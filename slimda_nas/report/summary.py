"""The report for machines: ``summary.json`` (everything the page shows) and ``summary.csv``
(one row per budget and sampler)."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from slimda_nas._versions import versions
from slimda_nas.report.collect import ReportData
from slimda_nas.report.provenance import run_record, search_commands
from slimda_nas.search.record import Pick, Point

SUMMARY_FILE = "summary.json"  # what makes a folder an earlier report


def read_summary(folder: Path) -> dict | None:
    """``folder``'s summary.json where it is one a report wrote (else None: a user's file)."""
    try:
        record = json.loads((Path(folder) / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not {"run", "budgets", "generated"} <= set(record):
        return None
    return record


def summary(data: ReportData) -> dict:
    return _finite(
        {
            "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "run": run_record(data.run),
            "storage": data.storage,
            "settings": data.settings,
            "metric": data.metric,
            "anchor_macs": data.anchor_macs,
            "budgets": [
                {
                    "budget": b.text,
                    "budget_macs": b.macs,
                    "fraction": b.fraction,
                    "chosen": next((_pick(k, data) for k in data.picks_at(b) if k.chosen), None),
                    "samplers": [_pick(k, data) for k in data.picks_at(b)],
                }
                for b in data.budgets
            ],
            "pareto_front": [_point(p, data) for p in data.front],
            "full_width_accuracy": data.largest_accuracy,
            "target_labelled": data.labelled,
            "reference": None
            if data.reference is None
            else {"name": data.reference[0], "accuracy": data.reference[1]},
            "correlations": None
            if data.ranking is None
            else {
                "source": data.ranking.source,
                "metric": data.ranking.metric,
                "n": len(data.ranking.upem),
                "pearson": data.ranking.pearson,
                "spearman": data.ranking.spearman,
                "kendall": data.ranking.kendall,
            },
            "efficiency": [asdict(c) for c in data.curves],
            "within_budget": {
                text: {
                    k: v
                    for k, v in rec.to_dict().items()
                    if k
                    in (
                        "band",
                        "n",
                        "seed",
                        "ceiling",
                        "best_accuracy",
                        "median_accuracy",
                        "by_images",
                    )
                }
                for text, rec in data.within.items()
            },
            "latency": None
            if data.latency is None
            else {
                "machine": data.latency.machine,
                "note": data.latency.note,
                "full_width": data.latency.get("full_width"),
                "budgets": {
                    k.budget.text: data.latency.get(k.point.key) for k in data.picks if k.chosen
                },
            },
            "studies": [
                {
                    "name": s.name,
                    "sampler": s.sampler,
                    "seed": s.seed,
                    "budget": s.budget.text if s.budget else None,
                    "budget_macs": s.budget.macs if s.budget else None,
                    "trials": s.trials,
                    "evaluations": s.evaluations,
                    "configurations": len({p.key for p in s.points}),
                }
                for s in data.studies
            ],
            "reproduce": search_commands(data.run, data.studies, data.settings),
            "notes": data.notes,
            "versions": versions(),
        }
    )


def _point(p: Point, data: ReportData) -> dict:
    return {
        "macs": p.macs,
        "fraction": p.macs / data.anchor_macs,
        "params": p.params,
        "upem": p.upem,
        "value": p.value,
        "accuracy": data.accuracy.get(p.key),
        "config": p.config,
        "channels": data.run.space.unit_channels(p.config),
        "study": p.study,
        "trial": p.trial,
        "sampler": p.sampler,
    }


def _pick(k: Pick, data: ReportData) -> dict:
    return {
        **_point(k.point, data),
        "sampler": k.label,
        "accuracy": k.accuracy,
        "chosen": k.chosen,
        "seeds": len(k.seed_values),
        "seed_values": k.seed_values,
    }


def summary_csv(data: ReportData) -> str:
    metrics = sorted({m for k in data.picks for m in k.point.upem})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "budget",
            "budget_macs",
            "sampler",
            "chosen",
            "seeds",
            "study",
            "trial",
            "macs",
            "fraction",
            "params",
            *[f"upem_{m}" for m in metrics],
            "accuracy",
            "channels",
        ]
    )
    for k in data.picks:
        p = k.point
        w.writerow(
            [
                k.budget.text,
                k.budget.macs,
                k.label,
                int(k.chosen),
                len(k.seed_values),
                p.study,
                p.trial,
                p.macs,
                f"{p.macs / data.anchor_macs:.6f}",
                p.params,
                *[_num(p.upem.get(m)) for m in metrics],
                _num(k.accuracy),
                "-".join(str(c) for c in data.run.space.unit_channels(p.config).values()),
            ]
        )
    return buf.getvalue()


def _num(v: float | None) -> str:
    return "" if v is None or not math.isfinite(v) else f"{v:.6g}"


def _finite(obj):
    """NaN and infinities are not JSON: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
