"""Which label-free score ranks configurations of one budget best: the within-budget ranking
check over several tasks, banks (training seeds), budgets and sampling seeds, and the default
chosen from it.

    python benchmarks/ranking_within.py --runs runs/seeds/usps_mnist_slimda_s0,... \\
        --budgets 1/4,1/16,1/64 --seeds 0,1,2 --n 60 --scoring-images 4000
    python benchmarks/ranking_within.py --summarise     # the table and the choice, from saved runs

Per run the rankings go to benchmarks/results/ranking_within/<run>.json (one entry per budget
and sampling seed; a finished entry is not redone). The summary (per task, budget, score and
scoring-subset size: mean Spearman over banks and seeds, the worst bank, pick accuracy, regret,
the split-half ceiling) and the default chosen on seeds 0-1 and checked on seed 2 go to
benchmarks/results/ranking_within.json.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from rich.console import Console
from rich.table import Table

from slimda_nas._io import write_text

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "ranking_within"
CHOOSE_ON, CHECK_ON = (0, 1), (2,)
TARGET_BUDGETS = ("1/16", "1/64")
TIE = 0.03  # objective differences this small are well inside the Spearman's standard error


def rank_run(run_dir: Path, budgets: list[str], seeds: list[int], n: int, images: int) -> None:
    import slimda_nas as sn
    from slimda_nas.evaluate.within_budget import band_ranking

    path = OUT / f"{run_dir.name}.json"
    done = json.loads(path.read_text()) if path.exists() else {"entries": {}}
    run = sn.load_run(run_dir)
    ev = sn.Evaluator(run, sn.EvalSettings(scoring_images=images))
    anchor = ev.cost.macs(ev.anchor_config)
    done.update(
        {
            "run": str(run_dir),
            "task": run.task,
            "method": run.method,
            "bank_seed": run.config.seed,
            "settings": ev.record(),
        }
    )
    for text in budgets:
        for seed in seeds:
            key = f"{text} seed {seed}"
            if key in done["entries"]:
                continue
            r = band_ranking(ev, sn.parse_budget(text).resolve(anchor), n, seed)
            rec = r.to_dict()
            done["entries"][key] = rec
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text(path, json.dumps(_rounded(done)))
            best = max(
                rec["by_images"][str(min(images, 1000))].items(),
                key=lambda kv: _num(kv[1]["spearman"]),
            )
            print(
                f"{run_dir.name} {key}: ceiling {rec['ceiling']:.2f}, best {best[0]} "
                f"{best[1]['spearman']:.2f}",
                flush=True,
            )


def _num(v) -> float:
    return -2.0 if v is None or (isinstance(v, float) and math.isnan(v)) else v


def summarise() -> dict:
    runs = [json.loads(p.read_text()) for p in sorted(OUT.glob("*.json"))]
    rows = []  # one per (run, budget, seed, images, score)
    for r in runs:
        for key, e in r["entries"].items():
            budget, seed = key.split(" seed ")
            for images, table in e["by_images"].items():
                for score, v in table.items():
                    rows.append(
                        {
                            "task": r["task"],
                            "bank": Path(r["run"]).name,
                            "budget": budget,
                            "seed": int(seed),
                            "images": int(images),
                            "score": score,
                            "ceiling": e["ceiling"],
                            "best": e["best_accuracy"],
                            "median": e["median_accuracy"],
                            **v,
                        }
                    )
    summary = _aggregate(rows)
    choice = _choose(rows, TARGET_BUDGETS)
    # the issue asks for the choice over 1/4 too; the rule was written for the target budgets,
    # so the wider one is reported beside it, as a check, not as the rule
    wider = _choose(rows, ("1/4", *TARGET_BUDGETS))
    out = {"summary": summary, "choice": choice, "choice_with_1/4": wider}
    # the rows are derived from the per-run files, so only the aggregates are written
    path = REPO / "benchmarks" / "results" / "ranking_within.json"
    write_text(path, json.dumps(_rounded(out), indent=1))
    return out


def _rounded(value, digits: int = 6):
    """``value`` with every float kept to ``digits`` significant digits: scores and accuracies
    mean nothing beyond that, and the full repr doubles the size of the results."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v, digits) for v in value]
    return value


def _aggregate(rows: list[dict], seeds=None) -> dict:
    """(task, budget, images, score) -> mean/min Spearman over banks and seeds, mean pick
    accuracy and regret, mean ceiling."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if seeds is None or r["seed"] in seeds:
            groups.setdefault((r["task"], r["budget"], r["images"], r["score"]), []).append(r)
    out = {}
    for (task, budget, images, score), g in groups.items():
        banks: dict[str, list[float]] = {}
        for r in g:
            banks.setdefault(r["bank"], []).append(_num(r["spearman"]))
        out[f"{task}|{budget}|{images}|{score}"] = {
            "task": task,
            "budget": budget,
            "images": images,
            "score": score,
            "spearman": statistics.fmean(_num(r["spearman"]) for r in g),
            "spearman_worst_bank": min(statistics.fmean(v) for v in banks.values()),
            "kendall": statistics.fmean(_num(r["kendall"]) for r in g),
            "pick_accuracy": statistics.fmean(r["pick_accuracy"] for r in g),
            "regret": statistics.fmean(r["regret"] for r in g),
            "ceiling": statistics.fmean(_num(r["ceiling"]) for r in g),
            "n": len(g),
        }
    return out


def _objective(t: dict) -> float:
    # mean Spearman, with the worst case weighing in: a score that collapses on one bank is a
    # risk users meet
    return t["mean_spearman"] + 0.5 * t["worst_bank"]


def _choose(rows: list[dict], budgets: tuple[str, ...]) -> dict:
    """The score (and scoring-subset size) with the best mean within-budget Spearman over
    `budgets` and the tasks whose worst bank is also good, chosen on seeds 0-1 and checked on
    seed 2; ties of a few hundredths go to the smaller regret."""

    def ranked(seeds):
        agg = _aggregate(rows, seeds)
        by: dict[tuple, list[dict]] = {}
        for a in agg.values():
            if a["budget"] in budgets and a["score"] != "macs":
                by.setdefault((a["score"], a["images"]), []).append(a)
        table = []
        for (score, images), g in by.items():
            table.append(
                {
                    "score": score,
                    "images": images,
                    "mean_spearman": statistics.fmean(a["spearman"] for a in g),
                    "worst_bank": min(a["spearman_worst_bank"] for a in g),
                    "mean_regret": statistics.fmean(a["regret"] for a in g),
                }
            )
        return sorted(table, key=lambda t: -_objective(t))

    chosen = ranked(CHOOSE_ON)
    checked = {(t["score"], t["images"]): t for t in ranked(CHECK_ON)}
    top = None
    if chosen:
        best = _objective(chosen[0])
        tied = [t for t in chosen if _objective(t) >= best - TIE]
        top = min(tied, key=lambda t: t["mean_regret"])
    return {
        "rule": f"maximise mean within-budget Spearman at {', '.join(budgets)} + 0.5 x the worst "
        f"bank's, on sampling seeds 0-1 (within {TIE} of the best: the smaller mean regret); "
        "checked on seed 2",
        "chosen_on_seeds": list(CHOOSE_ON),
        "ranking": chosen[:10],
        "default": top,
        "check": checked.get((top["score"], top["images"])) if top else None,
        "check_ranking": sorted(checked.values(), key=lambda t: -_objective(t))[:10],
    }


def show(out: dict) -> None:
    t = Table(
        title="within-budget ranking: mean Spearman over banks and seeds (worst bank) / regret"
    )
    for col in (
        "task",
        "budget",
        "images",
        "score",
        "Spearman",
        "worst bank",
        "Kendall",
        "pick acc",
        "regret pt",
        "ceiling",
    ):
        t.add_column(col)
    for a in sorted(
        out["summary"].values(),
        key=lambda a: (a["task"], a["budget"], a["images"], -a["spearman"]),
    ):
        if a["images"] != 1000:
            continue
        t.add_row(
            a["task"],
            a["budget"],
            str(a["images"]),
            a["score"],
            f"{a['spearman']:.2f}",
            f"{a['spearman_worst_bank']:.2f}",
            f"{a['kendall']:.2f}",
            f"{a['pick_accuracy']:.2%}",
            f"{a['regret'] * 100:.2f}",
            f"{a['ceiling']:.2f}",
        )
    Console().print(t)
    for name in ("choice", "choice_with_1/4"):
        Console().print(name, out[name]["default"], out[name]["check"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", default="")
    p.add_argument("--budgets", default="1/4,1/16,1/64")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--n", type=int, default=60)
    p.add_argument("--scoring-images", type=int, default=4000)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--summarise", action="store_true")
    args = p.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    for run in filter(None, args.runs.split(",")):
        rank_run(
            Path(run),
            args.budgets.split(","),
            [int(s) for s in args.seeds.split(",")],
            args.n,
            args.scoring_images,
        )
    if args.summarise or args.runs:
        show(summarise())


if __name__ == "__main__":
    main()
