"""What a search costs besides its UPEM evaluations, against the number of trials: the sampler
(``study.ask``), the storage (reading trials back, telling results), and MACs counting, per
trial and per UPEM evaluation, up to 3,000 trials on the ResNet-50 and digits spaces.

    python benchmarks/sampler_overhead.py --spaces resnet50,digits_cnn --samplers tpe,nsga2,random \\
        --trials 3000 --budget 1/64 --label after
    python benchmarks/sampler_overhead.py --eval-time --run runs/seeds/usps_mnist_slimda_s0
    python benchmarks/sampler_overhead.py --eval-time --untrained office31_aw_resnet50 \
        --eval-budgets 1/4,1/16 --eval-n 3 --label r50_evaltime

The search runs exactly as ``slimda-nas search`` runs it (the study worker, a journal file, the
score cache), with one change: a candidate's score is a formula of its widths computed in
microseconds, so only the overhead is timed. ``--eval-time`` measures what a real candidate
evaluation costs on this machine, for the ratio. Writes benchmarks/results/overhead_<label>.json;
``--summarise`` reads every overhead_before_* / overhead_after_* file there and prints the table
(overhead per trial and per evaluation at 100, 1,000, 2,000 and 3,000 trials) and draws
benchmarks/results/overhead.png.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import tempfile
import time
from pathlib import Path

import optuna
import torch

from slimda_nas._io import write_text
from slimda_nas.bank import ModelBank
from slimda_nas.evaluate.budget import parse_budget
from slimda_nas.evaluate.evaluator import CandidateScore
from slimda_nas.evaluate.macs import CostModel
from slimda_nas.evaluate.scores import DEFAULT_METRIC
from slimda_nas.search.score_cache import ScoreCache
from slimda_nas.search.storage import open_storage
from slimda_nas.search.worker import StudySpec, StudyWorker
from slimda_nas.space import load_space, resolve_space_path

REPO = Path(__file__).resolve().parents[1]
CLASSES = {"resnet50": 31, "efficientnet_lite0": 31, "digits_cnn": 10}
WINDOW = 100


class Timed:
    """Wraps a callable, adding its wall time to ``self.seconds``."""

    def __init__(self, fn):
        self.fn, self.seconds, self.calls = fn, 0.0, 0

    def __call__(self, *a, **k):
        t0 = time.perf_counter()
        try:
            return self.fn(*a, **k)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1


def fake_score(space):
    """A UPEM-like score: smaller for wider models, with a per-configuration wobble, so that
    samplers have something to model; computed in microseconds."""
    weights = {u.name: 1.0 + (i % 5) / 4 for i, u in enumerate(space.units)}

    def score(config: dict) -> CandidateScore:
        ch = space.unit_channels(config)
        base = sum(w * -math.log(ch[n] / space.unit(n).full) for n, w in weights.items())
        key = json.dumps(config, sort_keys=True).encode()
        wobble = int(hashlib.sha256(key).hexdigest()[:6], 16) / 16**6
        upem = 0.001 * base + 0.002 * wobble
        return CandidateScore(
            config=dict(config), macs=0, params=0, upem={DEFAULT_METRIC: upem}, seconds=0.0
        )

    return score


def space_cost_budget(space_name: str, budget: str):
    """A shipped search space, its MACs model (an untrained bank) and the budget resolved on it."""
    space = load_space(resolve_space_path(space_name))
    cost = CostModel(ModelBank.build(space, CLASSES.get(space.backbone, 10)))
    return space, cost, parse_budget(budget).resolve(cost.macs(space.largest()))


def run_one(
    space_name: str, sampler: str, trials: int, budget: str, seed: int, keep_scores: bool = False
) -> dict:
    """Overhead per window of trials; with ``keep_scores`` also the score of every evaluation
    in order (what the sampler found)."""
    space, cost, resolved = space_cost_budget(space_name, budget)
    with tempfile.TemporaryDirectory() as tmp:
        storage = open_storage(None, Path(tmp))
        study = optuna.create_study(study_name="bench", storage=storage)
        spec = StudySpec(
            name="bench", sampler=sampler, seed=seed, evaluations=trials, budget=resolved
        )
        timers = {
            "macs": Timed(cost.macs),
            "params": Timed(cost.params),
            "ask": Timed(study.ask),
            "tell": Timed(study.tell),
            "get_trials": Timed(study.get_trials),
            "score": Timed(fake_score(space)),
        }
        cost.macs, cost.params = timers["macs"], timers["params"]
        study.ask, study.tell, study.get_trials = (
            timers["ask"],
            timers["tell"],
            timers["get_trials"],
        )
        rows, state = [], {"t0": time.perf_counter(), "trials": 0, "evals": 0}
        scores = []

        def on_trial(frozen):
            state["trials"] += 1
            if frozen.user_attrs.get("evaluated"):
                state["evals"] += 1
                scores.append(frozen.value)
            if state["trials"] % WINDOW == 0:
                rows.append(
                    {
                        "trials": state["trials"],
                        "evaluations": state["evals"],
                        "wall": time.perf_counter() - state["t0"],
                        **{k: t.seconds for k, t in timers.items()},
                    }
                )

        cache = ScoreCache(Path(tmp) / "scores.jsonl")
        worker = StudyWorker(study, spec, space, cost, timers["score"], cache, 0, on_trial)
        worker.run(max_proposals=trials)
    out = {"space": space_name, "sampler": sampler, "budget": budget, "windows": _windows(rows)}
    return {**out, "scores": scores} if keep_scores else out


def _windows(rows: list[dict]) -> list[dict]:
    """Per window of WINDOW trials: ms per trial of each part, and overhead per evaluation."""
    out, prev = [], {k: 0.0 for k in rows[0]} if rows else {}
    for r in rows:
        d = {k: r[k] - prev[k] for k in r}
        overhead = d["wall"] - d["score"]
        out.append(
            {
                "trials": r["trials"],
                "evaluations": d["evaluations"],
                "ms_per_trial": {
                    k: 1e3 * d[k] / d["trials"]
                    for k in ("wall", "ask", "tell", "get_trials", "macs", "params")
                },
                "overhead_ms_per_trial": 1e3 * overhead / d["trials"],
                "overhead_ms_per_evaluation": 1e3 * overhead / max(d["evaluations"], 1),
            }
        )
        prev = r
    return out


def untrained_run(config: str) -> Path:
    """A bank of a shipped config trained for one small step from random weights: what a
    candidate evaluation costs does not depend on what the bank learnt."""
    import slimda_nas as sn

    out = REPO / "runs" / f"overhead_{config}"
    cfg = sn.load_run_config(config, out=str(out)).replace(
        weights=None, iterations=1, batch_size=4, precision="fp32", device="cpu"
    )
    sn.train_bank(cfg, show_progress=False)
    return out


def eval_time(run_dir: Path, budgets: list[str], n: int) -> dict:
    """Mean seconds of a real candidate evaluation (BN re-estimation + UPEM, the default
    settings) on this machine, over n configurations in the upper half of each budget."""
    import random

    from slimda_nas.evaluate.evaluator import EvalSettings, Evaluator
    from slimda_nas.train import load_run

    run = load_run(run_dir)
    t0 = time.perf_counter()
    ev = Evaluator(run, EvalSettings())
    start = time.perf_counter() - t0
    anchor = ev.cost.macs(run.space.largest())
    out = {}
    for text in budgets:
        limit = parse_budget(text).macs(anchor)
        rng, configs = random.Random(0), []
        while len(configs) < n:
            c = run.space.sample(rng)
            if limit / 2 < ev.cost.macs(c) <= limit:
                configs.append(c)
        ev.score(configs[0])  # warm-up
        times = [ev.score(c).seconds for c in configs]
        out[text] = {"mean_s": sum(times) / len(times), "n": n, "seconds": times}
        print(f"{text}: {out[text]['mean_s']:.2f} s per candidate", flush=True)
    return {
        "run": str(run_dir),
        "task": run.task,
        "space": run.space.backbone,
        "evaluator_start_s": start,
        "subsets": ev.subsets,
        "threads": torch.get_num_threads(),
        "by_budget": out,
    }


MARKS = (100, 1000, 2000, 3000)


def summarise(results_dir: Path) -> list[dict]:
    """Rows (space, budget, sampler, code) with the overhead at MARKS, from the saved runs."""
    rows = []
    for path in sorted(results_dir.glob("overhead_*.json")):
        code = path.stem.split("_")[1]
        if code not in ("before", "after"):
            continue
        for r in json.loads(path.read_text())["runs"]:
            at = {w["trials"]: w for w in r["windows"]}
            rows.append(
                {
                    "space": r["space"],
                    "budget": r["budget"],
                    "sampler": r["sampler"],
                    "code": code,
                    "per_trial_ms": [at[m]["overhead_ms_per_trial"] for m in MARKS if m in at],
                    "per_evaluation_ms": [
                        at[m]["overhead_ms_per_evaluation"] for m in MARKS if m in at
                    ],
                    "curve": [
                        (w["trials"], w["overhead_ms_per_evaluation"]) for w in r["windows"]
                    ],
                }
            )
    return sorted(
        rows, key=lambda r: (r["space"], r["budget"], r["sampler"], r["code"] != "before")
    )


def show(rows: list[dict], out_png: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Search overhead (sampler + storage + MACs), ms, windows of 100 trials")
    for col in ("space", "budget", "sampler", "code"):
        table.add_column(col)
    for m in MARKS:
        table.add_column(f"per trial @{m}", justify="right")
    for m in MARKS:
        table.add_column(f"per eval @{m}", justify="right")
    for r in rows:
        table.add_row(
            r["space"],
            r["budget"],
            r["sampler"],
            r["code"],
            *(f"{v:.0f}" for v in r["per_trial_ms"]),
            *(f"{v:.0f}" for v in r["per_evaluation_ms"]),
        )
    Console().print(table)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["space"], r["budget"]) for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    colours = {"tpe": "tab:blue", "nsga2": "tab:orange", "random": "tab:green"}
    for ax, (space, budget) in zip(axes[0], panels, strict=True):
        for r in rows:
            if (r["space"], r["budget"]) != (space, budget):
                continue
            x, y = zip(*r["curve"], strict=True)
            ax.plot(
                x,
                [max(v, 1e-1) for v in y],
                color=colours.get(r["sampler"], "grey"),
                linestyle="--" if r["code"] == "before" else "-",
                label=f"{r['sampler']} {r['code']}",
            )
        ax.set_yscale("log")
        ax.set_title(f"{space}, {budget}")
        ax.set_xlabel("trial")
        ax.set_ylabel("overhead per UPEM evaluation (ms)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    print(f"wrote {out_png}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--spaces", default="resnet50,digits_cnn")
    p.add_argument("--samplers", default="tpe,nsga2,random")
    p.add_argument("--trials", type=int, default=3000)
    p.add_argument("--budget", default="1/64")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label", default="after")
    p.add_argument("--eval-time", action="store_true")
    p.add_argument("--run", type=Path, help="a trained run, for --eval-time")
    p.add_argument(
        "--untrained", metavar="CONFIG", help="--eval-time on a one-step bank of this config"
    )
    p.add_argument("--eval-budgets", default="1/16,1/64")
    p.add_argument("--eval-n", type=int, default=20, help="configurations per budget")
    p.add_argument("--summarise", action="store_true", help="table and PNG from the saved runs")
    args = p.parse_args()
    if args.summarise:
        results_dir = REPO / "benchmarks" / "results"
        show(summarise(results_dir), results_dir / "overhead.png")
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = REPO / "benchmarks" / "results" / f"overhead_{args.label}.json"
    results = json.loads(out.read_text()) if out.exists() else {"runs": []}
    if args.eval_time:
        run = untrained_run(args.untrained) if args.untrained else args.run
        results["eval_time"] = eval_time(run, args.eval_budgets.split(","), args.eval_n)
    else:
        for space in args.spaces.split(","):
            for sampler in args.samplers.split(","):
                t0 = time.time()
                r = run_one(space, sampler, args.trials, args.budget, args.seed)
                results["runs"] = [
                    x for x in results["runs"] if (x["space"], x["sampler"]) != (space, sampler)
                ] + [r]
                last = r["windows"][-1]
                print(
                    f"{space} {sampler}: {time.time() - t0:.0f} s; last window "
                    f"{last['overhead_ms_per_trial']:.1f} ms/trial, "
                    f"{last['overhead_ms_per_evaluation']:.1f} ms/evaluation",
                    flush=True,
                )
                out.parent.mkdir(parents=True, exist_ok=True)
                write_text(out, json.dumps(results, indent=2))
    write_text(out, json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
