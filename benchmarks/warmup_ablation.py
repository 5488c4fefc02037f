"""Does the warm-up make the small sub-networks of a pretrained backbone work? Office-31 A->W with
the ImageNet EfficientNet-Lite0 at reduced input size on the CPU, the same adaptation schedule
with and without the in-place-distillation warm-up (and, optionally, progressive shrinking).

    python benchmarks/warmup_ablation.py --size 112 --iterations 300 --warmup 150 \\
        --arms none,warmup --threads 2 [--data-root DATA]

Every arm trains the shipped `office31_aw` config on a copy of the EfficientNet-Lite0 space with
``input: {size: SIZE}``, with ``--iterations`` adaptation iterations; the warm-up arm spends
``--warmup`` more iterations before them (so it also sees more images: the question is whether
those iterations go to the small widths better than adaptation would, which the ``longer`` arm
answers: no warm-up, iterations + warmup adaptation iterations). Banks go to RUNS/<arm>
(resumable); accuracy of the largest, the uniform models within 1/4 and 1/16, and the smallest,
on all 795 webcam images after BN re-estimation, to benchmarks/results/warmup_ablation.json.
Absolute accuracies at reduced size and schedule are not the GPU table's; the arms' difference is.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import seed_spread  # this folder is on sys.path when run as a script
import torch
from rich.console import Console
from rich.table import Table

import slimda_nas as sn
from slimda_nas._io import write_text
from slimda_nas._yaml import read_yaml
from slimda_nas.errors import SpaceError
from slimda_nas.space import resolve_space_path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "warmup_ablation.json"
MODELS = ("largest", "1/4", "1/16", "smallest")


def small_space(runs: Path, size: int) -> Path:
    """The shipped EfficientNet-Lite0 space with a smaller input (kept beside the banks)."""
    import yaml

    raw = read_yaml(resolve_space_path("efficientnet_lite0"), SpaceError)
    raw["input"] = {**raw["input"], "size": size}
    path = runs / f"efficientnet_lite0_{size}px.yaml"
    runs.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def arm_config(arm: str, name: str, args, space: Path) -> sn.RunConfig:
    cfg = sn.load_run_config(
        "office31_aw", out=str(args.runs / name), data_root=args.data_root, device="cpu"
    )
    iterations = args.iterations + (args.warmup if arm == "longer" else 0)
    changes: dict = {
        "space": str(space),
        "iterations": iterations,
        "batch_size": args.batch_size,
        "checkpoint_every": 50,
        "eval_every": 10**6,
        "log_every": 25,
        "calibration_images": 200,
    }
    if arm.startswith("warmup"):
        changes["warmup"] = {"iterations": args.warmup, "lr": args.warmup_lr}
    if arm.endswith("shrink"):
        changes["shrinking"] = {"stages": 3}
    return cfg.replace(**changes)


def evaluate(run_dir: Path) -> dict[str, float]:
    return seed_spread.evaluate(run_dir, ("1/4", "1/16"), sn.EvalSettings(calibration_images=500))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--arms", default="none,warmup", help="none, warmup, warmup_shrink, longer")
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--iterations", type=int, default=300, help="adaptation iterations")
    p.add_argument("--warmup", type=int, default=150, help="warm-up iterations (warmup arms)")
    p.add_argument("--warmup-lr", type=float, help="warm-up learning rate (default: the config's)")
    p.add_argument("--batch-size", type=int, default=32, help="per domain")
    p.add_argument("--runs", type=Path, default=REPO / "runs" / "warmup_ablation")
    p.add_argument("--data-root")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    space = small_space(args.runs, args.size)
    results = json.loads(OUT.read_text()) if OUT.exists() else {"arms": {}}
    results["settings"] = {
        k: v for k, v in vars(args).items() if k in ("size", "iterations", "warmup", "batch_size")
    }  # the same for every arm of one results file
    for arm in args.arms.split(","):
        name = (
            f"{arm}_lr{args.warmup_lr:g}" if args.warmup_lr and arm.startswith("warmup") else arm
        )
        cfg = arm_config(arm, name, args, space)
        start = time.perf_counter()
        sn.train_bank(cfg, show_progress=True)
        results["arms"][name] = {
            "seconds": time.perf_counter() - start,
            "total_iterations": cfg.total_iterations,
            "accuracy": evaluate(cfg.run_dir),
            "torch_threads": torch.get_num_threads(),
        }
        OUT.parent.mkdir(parents=True, exist_ok=True)
        write_text(OUT, json.dumps(results, indent=2))
        print(f"{name}: {results['arms'][name]}", flush=True)
    table = Table(title=f"Office-31 A->W, EfficientNet-Lite0 at {args.size} px (CPU)")
    for col in ("arm", "iterations", *MODELS):
        table.add_column(col, justify="left" if col == "arm" else "right")
    for arm, r in results["arms"].items():
        table.add_row(
            arm,
            str(r["total_iterations"]),
            *(f"{100 * r['accuracy'][m]:.1f}%" for m in MODELS),
        )
    Console().print(table)


if __name__ == "__main__":
    main()
