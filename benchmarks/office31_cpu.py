"""Real images on a CPU: Office-31 with the ImageNet EfficientNet-Lite0 at 112 px, trained and
measured on this machine. For each bank, a curve (accuracy of the largest, the uniform models
within 1/4 and 1/16 and the smallest against training wall time) and, when it is finished, the
budget table (the search's pick with the default score, the widest uniform model and the median
of random feasible models at 1/4, 1/8 and 1/16, and on the elastic bank at 1/32 and
1/64 too).

    python -m benchmarks.office31_cpu --task aw --arm staged --seed 0 [--threads 1]
    python -m benchmarks.office31_cpu --task aw --arm source_only --seed 0
    python -m benchmarks.office31_cpu --table        # print what is measured so far

Arms: ``staged`` (the `office31_*_cpu` config on the recipe it had until 2026-12-07, 800
adaptation and 1,200 teacher-stage iterations: adaptation of the largest model, channel
ordering, the cached-teacher stage with progressive shrinking), ``today`` (the SlimDA sandwich
of m = 4 for 2,000 iterations, no ordering, no teacher), ``source_only`` and ``symnet`` (full
width, m = 1, 2,000 iterations on SymNet's schedule), ``elastic`` (the `office31_*_cpu_elastic`
config, input resolution and depth as units too, on that first recipe) and ``elastic_macs``
(it, with the random models of a step drawn by MACs: ``random_models: macs``);
``elastic_long_adaptation`` (the `office31_*_cpu_elastic` config as shipped until the second
change of 2026-12-07: 1,000 adaptation and 1,100 teacher iterations on a slower decay, a
better teacher at the same wall time, the sandwich's smallest the space's narrowest),
``elastic_adapting_largest`` (it, with the largest model adapting through the teacher stage:
``teacher.adaptation: 1``), ``elastic_smallest_1_64`` (it, with the sandwich's smallest model
at 1/64 of the MACs: ``smallest_budget: 1/64``; the shipped config since) and the ablations of
``elastic_long_adaptation``:
``no_ordering``, ``no_kd`` (the stage's students learn the source labels only),
``no_features`` (no dense distillation) and ``no_shrinking``; their tables hold 1/4, 1/8 and
1/16 only (9 minutes instead of 15 on one core). Banks go to
runs/office31_cpu/<task>_<arm>_s<seed> and resume after a kill (the curve too: each point is
kept in the results file as soon as it is measured); a bank no longer on disk (a fresh clone)
is trained and measured again from iteration 0, or from the adapted.pt of another arm that
adapts alike (``adaptation_donor``: its curve and seconds up to there are the new bank's).
Results to benchmarks/results/office31_cpu.json.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

import slimda_nas as sn
from benchmarks import _common as bc
from slimda_nas.train import ADAPTED, CHECKPOINT, load_checkpoint

RESULTS = "office31_cpu.json"
RUNS = bc.REPO / "runs" / "office31_cpu"
CURVE = ("largest", "1/4", "1/16", "smallest")
TABLE_BUDGETS = ("1/4", "1/8", "1/16")
ELASTIC_BUDGETS = (*TABLE_BUDGETS, "1/32", "1/64")  # widths alone cannot reach 1/32 on Lite0
ARMS = (
    "staged",
    "today",
    "source_only",
    "symnet",
    "no_ordering",
    "no_kd",
    "no_features",
    "no_shrinking",
    "elastic",
    "elastic_macs",
    "elastic_long_adaptation",
    "elastic_adapting_largest",
    "elastic_smallest_1_64",
)


# The recipe of the shipped CPU configs until 2026-12-07: 800 adaptation iterations on a
# schedule decaying over them, then 1,200 of the teacher stage (2,000 in all). The arms measured
# with it keep it, so that their banks keep their training hash and their commands their figures.
FIRST_RECIPE = {"iterations": 800, "optimizer": {"gamma": 10.0}, "teacher": {"iterations": 1200}}
FIRST_TOTAL = 2000
WIDTHS_ONLY = ("staged", "today", "source_only", "symnet")  # the rest: the elastic config
ABLATIONS = ("no_ordering", "no_kd", "no_features", "no_shrinking")  # tables: the budgets


def arm_config(
    task: str, arm: str, seed: int, data_root: str | None, tiny: Path | None = None
) -> sn.RunConfig:
    """The shipped CPU config of ``task`` changed as the arm says (tiny: on synthetic images,
    at 32 px, a few iterations)."""
    name = f"{task}_{arm}_s{seed}"
    shipped = f"office31_{task}_cpu" + ("" if arm in WIDTHS_ONLY else "_elastic")
    runs = RUNS if tiny is None else tiny / "banks"
    cfg = sn.load_run_config(
        shipped, name=name, out=str(runs / name), data_root=data_root, seed=seed
    )
    first = FIRST_RECIPE
    if tiny is not None:
        cfg = cfg.replace(**_tiny_changes(tiny, cfg.space))
        first = {}  # a tiny run keeps its few iterations
    # the plain arms: every staged option back at its default (off), so the training hash is
    # that of the same config without those sections, on SymNet's schedule over all 2,000
    plain = {
        "optimizer": {"gamma": 10.0},
        "teacher": dataclasses.asdict(bc.TeacherConfig()),
        "ordering": {"criterion": None},
        "shrinking": dataclasses.asdict(bc.ShrinkingConfig()),
        "iterations": cfg.total_iterations if tiny is not None else FIRST_TOTAL,
    }
    no_floor = {"smallest_budget": None}
    changes: dict = {
        "staged": first,
        "today": {**plain, "models_per_step": 4},
        "source_only": {**plain, "method": "source_only", "models_per_step": 1},
        "symnet": {**plain, "method": "symnet", "models_per_step": 1},
        "elastic": {**first, **no_floor},
        "elastic_macs": {**first, **no_floor, "random_models": "macs"},
        # the elastic config on the recipe since 2026-12-07, the sandwich's smallest the
        # space's narrowest (as shipped until 2026-12-07's second change)
        "elastic_long_adaptation": no_floor,
        "elastic_adapting_largest": {**no_floor, "teacher": {"adaptation": 1.0}},
        "elastic_smallest_1_64": {"smallest_budget": "1/64"},  # shipped since
        # the ablations of elastic_long_adaptation
        "no_ordering": {**no_floor, "ordering": {"criterion": None}},
        "no_kd": {**no_floor, "teacher": {"logits": 0.0, "features": 0.0}},
        "no_features": {**no_floor, "teacher": {"features": 0.0}},
        "no_shrinking": {**no_floor, "shrinking": {"stages": 0}},
    }[arm]
    return cfg.replace(**changes)


def _tiny_changes(tiny: Path, space_path: str) -> dict:
    """A seconds-long version of a CPU config: its space at 32 px, synthetic images."""
    import yaml

    space = sn.load_space(space_path)
    small = tiny / f"{Path(space_path).stem}_32.yaml"
    sizes = {"sizes": [24, 32]} if space.resolution_unit is not None else {}
    base = Path(space_path).resolve()
    small.parent.mkdir(parents=True, exist_ok=True)
    small.write_text(yaml.safe_dump({"extends": str(base), "input": {"size": 32, **sizes}}))
    return {
        **bc.TINY_RUN,
        "task": bc.tiny_task(tiny / "data"),
        "space": str(small),
        "iterations": 2,
        "models_per_step": 1,
        "teacher": {"iterations": 2},
        "eval_every": 0,
    }


class CurveProbe:
    """Target accuracy of the live bank's largest, uniform-within-budget and smallest models
    (BN re-estimated on 500 target training images, every target test image)."""

    def __init__(self, cfg: sn.RunConfig) -> None:
        space = sn.load_space(cfg.space)
        self.data = bc.load_task(cfg.task, bc.resolve_data_root(cfg.data_root), space.input_size)
        self.calib = bc.fixed_subset(self.data.target_train, 500, seed=0)

    def measure(self, bank: sn.ModelBank) -> dict[str, float]:
        cost, space = bc.CostModel(bank), bank.space
        anchor = cost.macs(space.largest())
        configs = {"largest": space.largest(), "smallest": space.smallest()}
        for text in ("1/4", "1/16"):
            ratio = cost.widest_uniform_ratio(sn.parse_budget(text).macs(anchor))
            configs[text] = space.smallest() if ratio is None else space.uniform(ratio)
        calib = list(bc.eval_batches(self.data.target_train, 100, self.calib))
        return {
            name: bc.accuracy(
                bank, c, calib, bc.eval_batches(self.data.target_test, 100, with_labels=True)
            )[bank.deploy_head]
            for name, c in configs.items()
        }


def adaptation_donor(cfg: sn.RunConfig, results: dict) -> str | None:
    """The results key of a bank of this benchmark whose adaptation is ``cfg``'s (its
    ``adapted.pt``, docs/method.md), for a bank not started yet: its curve up to there is this
    bank's too."""
    want = cfg.adaptation_hash()
    if want is None or (cfg.run_dir / CHECKPOINT).exists():
        return None
    for path in sorted(cfg.run_dir.parent.glob(f"*/{ADAPTED}")):
        key = path.parent.name
        curve = results.get(key, {}).get("curve", [])
        if key != cfg.name and any(p["iteration"] == cfg.adaptation_end for p in curve):
            if load_checkpoint(path).adaptation_hash == want:
                return key
    return None


def train_with_curve(
    cfg: sn.RunConfig,
    every: int,
    results: dict,
    key: str,
    out: Path,
    max_seconds: float = 0,
    donor: str | None = None,
) -> None:
    """Train ``cfg`` ``every`` iterations at a time, measuring the curve after each chunk;
    ``results[key]`` keeps the points and the training seconds so far (resumable). With
    ``donor`` (``adaptation_donor``) the bank starts from that bank's adaptation, and its curve
    and seconds up to there are this bank's."""
    entry = results.setdefault(key, {"curve": [], "train_seconds": 0.0})
    probe = None
    adapted = cfg.run_dir.parent / donor / ADAPTED if donor else None
    while True:
        t0 = time.perf_counter()
        r = sn.train_bank(cfg, show_progress=False, stop_after=every, adapted_from=adapted)
        if r.resumed_from >= cfg.total_iterations:  # finished before this call
            break
        if r.adapted_from is not None:
            shared = [p for p in results[donor]["curve"] if p["iteration"] <= r.resumed_from]
            entry.update(
                curve=shared, train_seconds=shared[-1]["train_seconds"], adapted_from=donor
            )
        elif r.resumed_from == 0 and entry["curve"]:
            # points of a bank that is no longer on disk (a fresh clone): measure them again
            entry.update(curve=[], train_seconds=0.0)
        entry["train_seconds"] += time.perf_counter() - t0
        if not entry["curve"] or entry["curve"][-1]["iteration"] < r.iterations:
            probe = probe or CurveProbe(cfg)
            point = {"iteration": r.iterations, "train_seconds": round(entry["train_seconds"], 1)}
            point.update(probe.measure(r.bank))
            entry["curve"].append(point)
            save(out, results, key)
            print(json.dumps({key: point}), flush=True)
        if r.iterations >= cfg.total_iterations:
            break
        if max_seconds and entry["train_seconds"] >= max_seconds:
            print(f"{key}: stopped after {entry['train_seconds']:.0f} s (--max-seconds)")
            break


def random_feasible(ev: sn.Evaluator, limit: float, n: int, seed: int) -> list[float]:
    """Accuracy of ``n`` random configurations within ``limit`` (uniform over them: the band
    sampler's rejection, then its random walk where almost no draw fits)."""
    rng, band = random.Random(seed), bc.BandSampler(ev.run.space, ev.cost)
    draws = [band.sample(rng, int(limit))[0] for _ in range(n)]
    return bc.ground_truth(ev, [ev.run.space.from_indices(d) for d in draws])


def budget_table(
    run_dir: Path,
    trials: int,
    n_random: int,
    full_width_only: bool,
    budgets=TABLE_BUDGETS,
    settings: sn.EvalSettings | None = None,
) -> dict:
    """The finished bank's largest and, per budget (not for full-width baselines), the pick,
    the uniform model and the random median."""
    ground_truth = bc.ground_truth
    run = sn.load_run(run_dir)
    ev = sn.Evaluator(run, settings or sn.EvalSettings())
    space, anchor = run.space, ev.cost.macs(run.space.largest())
    if full_width_only:
        return {"largest": ground_truth(ev, [space.largest()])[0], "budgets": {}}
    result = sn.run_search(
        ev,
        sn.SearchOptions(
            budgets=",".join(budgets),
            sampler="tpe",
            evaluations=trials,
            seed=0,
            storage=str(run_dir / "bench.journal"),
            settings=ev.settings,
        ),
        save=False,
    )
    rows = {}
    for text, pick in zip(budgets, result.picks, strict=True):
        limit = sn.parse_budget(text).macs(anchor)
        ratio = ev.cost.widest_uniform_ratio(limit)
        rand = random_feasible(ev, limit, n_random, seed=0)
        rows[text] = {
            "pick": pick.accuracy,
            "pick_macs": pick.point.macs,
            "uniform": ground_truth(ev, [space.uniform(ratio)])[0] if ratio else None,
            "random_median": statistics.median(rand),
            "random_n": len(rand),
        }
    return {"largest": ground_truth(ev, [space.largest()])[0], "budgets": rows}


def add_table(entry: dict, run_dir: Path, args, tiny: Path | None) -> None:
    """Measure the budget table of a finished bank into ``entry``: the budgets its arm asks for
    that the table does not hold yet (a table measured before a budget was added keeps its rows)."""
    full_width = args.arm in ("source_only", "symnet")
    table = entry.get("table")
    wanted = TABLE_BUDGETS if args.arm in (*WIDTHS_ONLY, *ABLATIONS) else ELASTIC_BUDGETS
    missing = [b for b in wanted if table is None or b not in table["budgets"]]
    if table is not None and (full_width or not missing):
        return
    new = budget_table(
        run_dir, args.trials, args.random, full_width, missing, bc.eval_settings(tiny)
    )
    if table is None:
        entry["table"] = new
    else:
        table["budgets"].update(new["budgets"])


def speed(task: str, steps: int, tiny: Path | None = None) -> dict:
    """Where a CPU step goes: seconds of a full-width step (m = 1), of sandwich steps (m = 4)
    and of teacher-stage steps (m = 3, targets from a stand-in cache), each against its
    MACs-ideal ratio (the sampled models' MACs over the largest's); channels_last on and off."""
    HEADS, sample_model_batch = bc.HEADS, bc.sample_model_batch
    TeacherStep, stage_outputs = bc.TeacherStep, bc.stage_outputs

    cfg = arm_config(task, "staged", 0, None, tiny)
    space = sn.load_space(cfg.space)
    torch.manual_seed(0)
    bank = sn.ModelBank.build(space, 31, heads=HEADS, weights=cfg.weights)
    model, cost = bank.model.train(), bc.CostModel(bank)
    n, size = cfg.batch_size, space.input_size
    x, y = torch.randn(n, 3, size, size), torch.randint(0, 31, (n,))
    full = cost.macs(space.largest())
    out: dict = {"threads": torch.get_num_threads(), "batch_per_domain": n}

    def timed(step, *args) -> float:
        t0 = time.perf_counter()
        total, _ = step(*args)
        total.backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    for layout in ("channels_last", "contiguous"):
        cl = layout == "channels_last"
        model.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
        method = bc.build_method("slimda", **vars(cfg.distillation))
        bank_step = bc.BankStep(model, method, cl, separate_domains=True)
        one = [space.layer_widths(space.largest())]
        timed(bank_step, x, y, x, one, 0.5)  # warm-up
        t_full = statistics.median(timed(bank_step, x, y, x, one, 0.5) for _ in range(steps))
        rows = {}
        for kind, m in (("sandwich", 4), ("teacher", 3)):
            times, ideal = [], []
            for it in range(steps):
                configs = sample_model_batch(space, m, 0, it)
                widths = [space.layer_widths(c) for c in configs]
                ideal.append(sum(cost.macs(c) for c in configs) / full)
                if kind == "sandwich":
                    times.append(timed(bank_step, x, y, x, widths, 0.5))
                    continue
                with torch.no_grad(), stage_outputs(model, model.stage_outputs()) as hints:
                    logits = torch.stack(list(model(x, heads=HEADS).values()), 1)
                targets = (logits, [h.float() for h in hints])
                step = TeacherStep(model, cfg.teacher, cl, True)
                times.append(timed(step, x, y, targets, x, targets, widths))
            ratio = statistics.median(times) / t_full
            rows[kind] = {
                "seconds": statistics.median(times),
                "time_ratio": ratio,
                "macs_ratio": statistics.median(ideal),
                "of_ideal": ratio / statistics.median(ideal),
            }
        out[layout] = {"full_step_seconds": t_full, **rows}
    return out


def save(out: Path, results: dict, key: str) -> None:
    """Write ``results[key]`` into the results file, keeping what other processes wrote."""
    on_disk = bc.read_result(out, {})
    on_disk[key] = results[key]
    bc.write_result(out, on_disk)


def show(results: dict) -> None:
    console = Console()
    curves = Table(title="Office-31, Lite0 at 112 px, CPU: accuracy against training time")
    for col in ("bank", "iteration", "train s", *CURVE):
        curves.add_column(col, justify="left" if col == "bank" else "right")
    for key, entry in results.items():
        for p in entry.get("curve", []):
            curves.add_row(
                key,
                str(p["iteration"]),
                f"{p['train_seconds']:.0f}",
                *(f"{100 * p[m]:.1f}" for m in CURVE),
            )
    console.print(curves)
    table = Table(title="Finished banks: pick / uniform / random median (target accuracy %)")
    budgets = sorted(
        {b for e in results.values() for b in e.get("table", {}).get("budgets", {})},
        key=lambda b: sn.parse_budget(b).fraction,
    )
    for col in ("bank", "largest", *budgets):
        table.add_column(col, justify="left" if col == "bank" else "right")

    def cell(row: dict | None) -> str:
        if row is None:
            return "-"
        uni = "-" if row["uniform"] is None else f"{100 * row['uniform']:.1f}"
        return f"{100 * row['pick']:.1f} / {uni} / {100 * row['random_median']:.1f}"

    for key, entry in results.items():
        t = entry.get("table")
        if t:
            cells = (cell(t["budgets"].get(b)) for b in budgets)
            table.add_row(key, f"{100 * t['largest']:.1f}", *cells)
    console.print(table)


def plot_curves(results: dict, path: Path) -> None:
    """The 1/4 and 1/16 uniform models' accuracy against training iterations, one panel per
    task, one colour per bank; full-width source-only and SymNet as levels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = [t for t in ("aw", "da") if any(k.startswith(f"{t}_") for k in results)]
    fig = Figure(figsize=(6.5 * max(len(tasks), 1), 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    for i, task in enumerate(tasks):
        ax = fig.add_subplot(1, len(tasks), i + 1)
        for key, entry in results.items():
            arm = key[len(task) + 1 : key.rfind("_s")]
            if not key.startswith(f"{task}_"):
                continue
            if arm in ("source_only", "symnet"):
                largest = entry.get("table", {}).get("largest")
                if largest is not None:
                    y = 100 * largest
                    ax.axhline(y, ls=":", color="grey")
                    ax.text(
                        0.01, y + 0.5, f"{arm}, full width", transform=ax.get_yaxis_transform()
                    )
                continue
            if not entry.get("curve"):
                continue
            x = [p["iteration"] for p in entry["curve"]]
            (line,) = ax.plot(x, [100 * p["1/4"] for p in entry["curve"]], label=f"{key} 1/4")
            ax.plot(
                x,
                [100 * p["1/16"] for p in entry["curve"]],
                ls="--",
                color=line.get_color(),
                label=f"{key} 1/16",
            )
        ax.set_xlabel("training iteration (adaptation, then the teacher stage)")
        ax.set_ylabel("target accuracy, %")
        ax.set_title(
            f"Office-31 {task.upper()[0]}->{task.upper()[1]}: uniform models at 1/4, 1/16"
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.savefig(path, dpi=100, bbox_inches="tight")


def plot_picks(results: dict, path: Path) -> None:
    """The search's pick against the budget for every bank whose table reaches 1/64, one panel
    per task; full-width source-only and issue 35's target (75% of it) as levels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tables = {
        k: e["table"]
        for k, e in results.items()
        if "1/64" in e.get("table", {}).get("budgets", {})
    }
    tasks = [t for t in ("aw", "da") if any(k.startswith(f"{t}_") for k in tables)]
    fig = Figure(figsize=(6.5 * max(len(tasks), 1), 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    for i, task in enumerate(tasks):
        ax = fig.add_subplot(1, len(tasks), i + 1)
        source_only = results.get(f"{task}_source_only_s0", {}).get("table", {}).get("largest")
        if source_only is not None:
            for level, text in ((1.0, "source-only, full width"), (0.75, "75% of it")):
                y = 100 * level * source_only
                ax.axhline(y, ls=":", color="grey")
                ax.text(0.01, y + 0.5, text, transform=ax.get_yaxis_transform())
        for key, table in tables.items():
            if key.startswith(f"{task}_"):
                budgets = list(ELASTIC_BUDGETS)
                picks = [100 * table["budgets"][b]["pick"] for b in budgets]
                ax.plot(range(len(budgets)), picks, marker="o", label=key)
        ax.set_xticks(range(len(ELASTIC_BUDGETS)), ELASTIC_BUDGETS)
        ax.set_xlabel("budget (fraction of the largest model's MACs)")
        ax.set_ylabel("target accuracy of the search's pick, %")
        ax.set_title(f"Office-31 {task.upper()[0]}->{task.upper()[1]}: the pick per budget")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=100, bbox_inches="tight")


def main(argv: Sequence[str] | None = None) -> None:
    p = bc.parser(__doc__)
    p.add_argument("--task", choices=("aw", "da"), default="aw")
    p.add_argument("--arm", choices=ARMS, default="staged")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--every", type=int, default=250, help="iterations between curve points")
    p.add_argument("--trials", type=int, default=100, help="search evaluations per budget")
    p.add_argument("--random", type=int, default=15, help="random feasible models per budget")
    p.add_argument("--data-root", default=os.environ.get("SLIMDA_NAS_DATA"))
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=0, help="stop training after (curve only)")
    p.add_argument("--table", action="store_true", help="only print what is measured")
    p.add_argument("--speed", type=int, default=0, metavar="STEPS", help="time steps instead")
    args = bc.parse(p, argv)
    out = bc.results_dir(args) / RESULTS
    tiny = args.tiny
    if tiny is not None:  # a few iterations, a few search evaluations
        args.every, args.trials, args.random = 2, 3, 2
        args.speed = min(args.speed, 1)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = bc.read_result(out, {})
    if args.speed:
        key = f"speed_{args.task}_{torch.get_num_threads()}threads"
        results[key] = speed(args.task, args.speed, tiny)
        save(out, results, key)
        print(json.dumps(results[key], indent=1))
        return
    if not args.table:
        cfg = arm_config(args.task, args.arm, args.seed, args.data_root, tiny)
        key = cfg.name
        donor = adaptation_donor(cfg, results)
        train_with_curve(cfg, args.every, results, key, out, args.max_seconds, donor)
        results[key]["threads"] = torch.get_num_threads()
        if sn.TrainSummary.read(cfg.run_dir) is not None:  # the bank is finished
            add_table(results[key], cfg.run_dir, args, tiny)
        save(out, results, key)
    show(results)
    plot_curves(bc.read_result(out, {}), out.with_name("office31_cpu_curves.png"))
    plot_picks(bc.read_result(out, {}), out.with_name("office31_cpu_picks.png"))


if __name__ == "__main__":
    main()
