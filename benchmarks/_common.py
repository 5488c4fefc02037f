"""What the benchmark scripts share: arguments, result files, tiny mode, bank names, budgets
resolved against the anchor, random feasible models and the two timed measurements (a training
step and a candidate evaluation).

The scripts drive the public API (``import slimda_nas as sn``). What it does not offer they take
from this module, which imports these internals and no others, so a change to them shows here:

- ``slimda_nas._io.write_text``: result files are written atomically.
- ``slimda_nas.cost.budget.Budget``, ``format_fraction``: a budget at the smallest model.
- ``slimda_nas.evaluate.ground_truth.ground_truth``: target accuracy of many models at once.
- ``slimda_nas.evaluate.ranking.correlations``: how well UPEM ranks models by accuracy.
- ``slimda_nas.deploy.latency.machine``: the machine a figure belongs to.
- ``slimda_nas.cost.macs.CostModel``, ``thop_profile``: MACs of a bank without a run.
- ``slimda_nas.cost.feasible.BandSampler``: distinct random feasible configurations.
- ``slimda_nas.methods.HEADS``, ``build_method``, ``slimda_nas.train.sandwich.sample_model_batch``,
  ``slimda_nas.train.step.BankStep``: one training step, timed without data loading.
- ``slimda_nas.report.efficiency.best_so_far``: the best UPEM after k evaluations.
- ``slimda_nas.search.record.trial_record``, ``evaluation_counts``: Optuna's time per trial.
- ``slimda_nas.search.storage.open_storage``, ``slimda_nas.search.studies.read_studies``: every
  study of a benchmark's own journal, read back.
- ``slimda_nas.data.load_task``, ``InfiniteLoader``, ``resolve_data_root``: the training loader,
  timed.
- ``slimda_nas.data.eval_batches``, ``fixed_subset``, ``slimda_nas.train.monitor.accuracy``: the
  accuracy of a bank still training (office31_cpu's curves; ``load_run`` needs a finished run).
- ``slimda_nas.train.config.TeacherConfig``, ``ShrinkingConfig``,
  ``slimda_nas.train.teacher.TeacherStep``, ``stage_outputs``: the staged CPU recipe's arms and
  its teacher-stage step, timed.
- ``slimda_nas._threads.apply_thread_policy``, ``usable_cores``, ``slimda_nas.slim.ops.set_widths``,
  ``slimda_nas.slim.bn_recal.recalibrate_bn``: shared_cores' step and candidate evaluation under
  each thread setting.

Every script is run as ``python -m benchmarks.NAME`` from the repository root, has
``main(argv=None)`` built on :func:`parser`, and a ``--tiny`` mode (seconds, on
:func:`tiny_task`'s synthetic images, every count shrunk) that tests/test_benchmarks.py runs.
A new script (e.g. ``office31_cpu.py``) follows the same pattern and is added to ``SCRIPTS``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

import slimda_nas as sn
from slimda_nas._io import write_text
from slimda_nas._threads import apply_thread_policy, usable_cores
from slimda_nas.cost.budget import Budget, format_fraction
from slimda_nas.cost.feasible import BandSampler
from slimda_nas.cost.macs import CostModel, thop_profile
from slimda_nas.data import (
    InfiniteLoader,
    eval_batches,
    fixed_subset,
    load_task,
    resolve_data_root,
)
from slimda_nas.deploy.latency import machine
from slimda_nas.evaluate.ground_truth import ground_truth
from slimda_nas.evaluate.ranking import correlations
from slimda_nas.methods import HEADS, build_method
from slimda_nas.report.efficiency import best_so_far
from slimda_nas.search.record import evaluation_counts, trial_record
from slimda_nas.search.storage import open_storage
from slimda_nas.search.studies import read_studies as _read_studies
from slimda_nas.slim.bn_recal import recalibrate_bn
from slimda_nas.slim.ops import set_widths
from slimda_nas.train.config import ShrinkingConfig, TeacherConfig
from slimda_nas.train.monitor import accuracy
from slimda_nas.train.sandwich import sample_model_batch
from slimda_nas.train.step import BankStep
from slimda_nas.train.teacher import TeacherStep, stage_outputs

__all__ = [
    "BandSampler",
    "Budget",
    "CostModel",
    "HEADS",
    "InfiniteLoader",
    "REPO",
    "SCRIPTS",
    "ShrinkingConfig",
    "TINY_RUN",
    "TeacherConfig",
    "TeacherStep",
    "accuracy",
    "anchor_budgets",
    "apply_thread_policy",
    "bank_name",
    "best_so_far",
    "build_method",
    "correlations",
    "describe",
    "eval_batches",
    "eval_settings",
    "evaluation_counts",
    "fixed_subset",
    "format_fraction",
    "ground_truth",
    "load_task",
    "machine",
    "open_storage",
    "overrides",
    "parse",
    "parser",
    "random_feasible",
    "read_result",
    "read_studies",
    "recalibrate_bn",
    "resolve_data_root",
    "results_dir",
    "run_config",
    "run_name",
    "sample_model_batch",
    "set_widths",
    "stage_outputs",
    "thop_profile",
    "time_candidates",
    "time_steps",
    "tiny_banks",
    "tiny_domains",
    "tiny_task",
    "trial_record",
    "usable_cores",
    "write_result",
]

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = (
    "budget_table",
    "loader_throughput",
    "office31_cpu",
    "office31_gpu",
    "search_comparison",
    "seed_spread",
    "shared_cores",
    "speed",
    "train_digits_banks",
)
"""Every benchmark; each one's ``--tiny`` mode is a test."""

TINY_RUN = dict(
    iterations=6,
    batch_size=4,
    models_per_step=3,
    device="cpu",
    checkpoint_every=2,
    log_every=2,
    eval_every=6,
    eval_images=12,
    calibration_images=12,
)
"""A bank that trains in seconds: what the tiny modes (and the tests' tiny runs) change."""


# -- arguments and result files -------------------------------------------------------------------
def parser(doc: str | None) -> argparse.ArgumentParser:
    """The script's parser with the options every benchmark has."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--tiny",
        nargs="?",
        const="",
        metavar="DIR",
        help="a seconds-long run on synthetic images, banks and results under DIR (default: a "
        "new temporary folder); checks the script, measures nothing",
    )
    return p


def parse(p: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse; ``--tiny`` without a folder gets a fresh temporary one."""
    args = p.parse_args(argv)
    if args.tiny == "":
        args.tiny = tempfile.mkdtemp(prefix="slimda-bench-")
    args.tiny = None if args.tiny is None else Path(args.tiny)
    return args


def results_dir(args: argparse.Namespace) -> Path:
    """benchmarks/results, or the tiny folder's results: a tiny run never touches the real ones."""
    return REPO / "benchmarks" / "results" if args.tiny is None else args.tiny / "results"


def write_result(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(obj, indent=2, default=str))


def read_result(path: Path, default: Any) -> Any:
    """A results file to add to (runs side by side keep each other's entries)."""
    return json.loads(path.read_text()) if path.exists() else default


# -- tiny mode ----------------------------------------------------------------------------------
def tiny_domains(
    root: Path, domains=("A", "B"), classes: int = 3, per_class: int = 6, size: int = 40
) -> Path:
    """Tiny image-folder domains (``root/<domain>/<class>/*.png``; a class already there is
    kept): class = colour, domain = a brightness shift, so a bank learns and adapts something in
    a few steps. The tests' synthetic data too."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for d, domain in enumerate(domains):
        for c in range(classes):
            folder = root / domain / f"class{c}"
            if folder.is_dir():
                continue
            folder.mkdir(parents=True)
            for i in range(per_class):
                img = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
                img[..., c % 3] += np.uint8(120 + 40 * d)
                Image.fromarray(img).save(folder / f"{i}.png")
    return root


def tiny_task(root: Path) -> str:
    """The task from :func:`tiny_domains`' domain A to its domain B under ``root``."""
    tiny_domains(root)
    return f"folder:{root / 'A'}->folder:{root / 'B'}"


def run_config(task: str, tiny: Path | None, **changes: Any) -> sn.RunConfig:
    """The shipped config of ``task`` with ``changes``; tiny: the digits config shrunk to a
    seconds-long bank on :func:`tiny_task`'s images under ``tiny``."""
    if tiny is None:
        return sn.load_run_config(task, **changes)
    return sn.load_run_config(
        "usps_mnist", **{**TINY_RUN, **changes, "task": tiny_task(tiny / "data")}
    )


def eval_settings(tiny: Path | None, **changes: Any) -> sn.EvalSettings:
    """Scoring settings: the package's defaults, or a dozen images each in tiny mode."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if tiny is not None:
        changes = {"calibration_images": 12, "scoring_images": 12, **changes}
    return sn.EvalSettings(**changes)


def read_studies(storage: str, run_dir: Path, space: sn.SearchSpace) -> list:
    """Every study in the journal or URL ``storage`` (a benchmark's own, beside the run's)."""
    return _read_studies(open_storage(storage, run_dir), space, storage)


def tiny_banks(tiny: Path, methods: Sequence[str]) -> dict[str, Path]:
    """One tiny bank per method under ``tiny/banks`` (trained once, then reused), named as
    train_digits_banks names them for the task ``tiny``."""
    banks = {}
    for method in methods:
        name = run_name("tiny", method)
        cfg = run_config("tiny", tiny, method=method, name=name, out=str(tiny / "banks" / name))
        banks[method] = sn.train_bank(cfg, show_progress=False).run_dir
    return banks


# -- banks --------------------------------------------------------------------------------------
def run_name(task: str, method: str) -> str:
    """The folder name of train_digits_banks' banks (slimda: the task's own name)."""
    return task if method == "slimda" else f"{task}_{method}"


def bank_name(task: str, method: str, seed: int, tag: str | None) -> str:
    """The folder name of seed_spread's banks."""
    return f"{task}_{method}{'_' + tag if tag else ''}_s{seed}"


def overrides(items: list[str]) -> dict:
    """``a.b=value`` pairs as the nested mapping RunConfig.replace takes."""
    out: dict = {}
    for item in items:
        key, _, value = item.partition("=")
        head, _, sub = key.partition(".")
        value = yaml.safe_load(value)
        if sub:
            out.setdefault(head, {})[sub] = value
        else:
            out[head] = value
    return out


def describe(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.mean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "spread": max(values) - min(values),
    }


# -- budgets and random models ------------------------------------------------------------------
def anchor_budgets(ev: sn.Evaluator, texts: Sequence[str]) -> list:
    """Budgets resolved as a search resolves them: fractions of the anchor's MACs."""
    return [sn.parse_budget(t).resolve(ev.anchor_macs) for t in texts]


def random_feasible(ev: sn.Evaluator, limit: int, n: int, seed: int) -> list[dict]:
    """``n`` random configurations of at most ``limit`` MACs (uniform over the space, rejected
    until they fit; repeats allowed, as a user drawing at random would get)."""
    rng = random.Random(seed)
    configs = []
    while len(configs) < n:
        c = ev.run.space.sample(rng)
        if ev.cost.macs(c) <= limit:
            configs.append(c)
    return configs


# -- timed measurements -------------------------------------------------------------------------
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_steps(
    cfg: sn.RunConfig,
    *,
    num_classes: int,
    device: str = "cpu",
    steps: int = 15,
    warmup: int = 3,
    settings: Sequence[tuple[str, bool]] = (("fp32", False),),
) -> dict:
    """Time one SlimDA training step on random images of ``cfg``'s space for m = 1 and m = 4
    sub-networks per step, in each (precision, channels_last) setting, against the MACs-ideal
    ratio (the sampled models' MACs over the largest's)."""
    space = sn.load_space(cfg.space)
    torch.manual_seed(0)
    bank = sn.ModelBank.build(space, num_classes, heads=HEADS, weights=cfg.weights)
    cost = CostModel(bank)
    largest = cost.macs(space.largest())
    model = bank.model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    n = cfg.batch_size
    xs = torch.randn(n, *space.input_shape, device=device)
    xt = torch.randn(n, *space.input_shape, device=device)
    ys = torch.randint(0, num_classes, (n,), device=device)
    rows = []
    for precision, channels_last in settings:
        model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        step = BankStep(model, build_method("slimda"), channels_last)
        bf16 = precision == "bf16" and device.startswith("cuda")
        base = None
        for m in (1, 4):
            times, ideal = [], []
            for it in range(steps + warmup):
                configs = sample_model_batch(space, m, 0, it)
                widths = [space.layer_widths(c) for c in configs]
                _sync(device)
                t = time.perf_counter()
                with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
                    total, _ = step(xs, ys, xt, widths, 0.5)
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
                _sync(device)
                if it >= warmup:
                    times.append(time.perf_counter() - t)
                    ideal.append(sum(cost.macs(c) for c in configs) / largest)
            ms = 1000 * sum(times) / len(times)
            base = base or ms
            rows.append(
                {
                    "precision": precision,
                    "channels_last": channels_last,
                    "m": m,
                    "ms_per_step": ms,
                    "macs_ideal_ratio": sum(ideal) / len(ideal),
                    "time_ratio_vs_m1": ms / base,
                }
            )
    return {
        "batch": f"{n} source + {n} target, {space.input_size} px",
        "largest_macs": largest,
        "rows": rows,
    }


def time_candidates(
    run: sn.TrainedRun,
    scoring_images: Sequence[int],
    *,
    calibration_images: int,
    candidates: int,
    batch_size: int | None = None,
    on_row: Callable[[dict], None] = print,
) -> list[dict]:
    """Seconds per candidate evaluation (BN re-estimation and UPEM, no score cache) for each
    number of scoring images, over ``candidates`` random configurations after one warm-up."""
    rng = random.Random(0)
    configs = [run.space.sample(rng) for _ in range(candidates + 1)]
    device = str(run.device)
    rows = []
    for n in scoring_images:
        extra = {} if batch_size is None else {"batch_size": batch_size}
        settings = sn.EvalSettings(
            calibration_images=calibration_images, scoring_images=n, **extra
        )
        ev = sn.Evaluator(run, settings, cache=False)
        ev.score(configs[0])
        _sync(device)
        t = time.perf_counter()
        for c in configs[1:]:
            ev.score(c)
        _sync(device)
        sec = (time.perf_counter() - t) / candidates
        rows.append(
            {
                "calibration_images": ev.subsets.calibration,
                "scoring_images": ev.subsets.scoring,
                "seconds_per_candidate": sec,
                "candidates_per_s": 1 / sec,
            }
        )
        on_row(rows[-1])
    return rows
