"""``slimda-nas train``: train a model bank from a run config (torchrun-ready)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    from slimda_nas._shipped import shipped_configs
    from slimda_nas.methods import METHODS

    p = sub.add_parser("train", help="train a SlimDA model bank from a run config")
    p.add_argument(
        "--config",
        required=True,
        type=Path,
        help=f"run config YAML, or a shipped name ({', '.join(shipped_configs())})",
    )
    p.add_argument("--resume", action="store_true", help="require a checkpoint to resume from")
    p.add_argument("--name", help="run name (output folder runs/NAME)")
    p.add_argument("--out", help="output folder (default runs/NAME)")
    p.add_argument("--method", choices=tuple(METHODS))
    p.add_argument("--iterations", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--data-root", help="data folder (default $SLIMDA_NAS_DATA, then the cache folder)"
    )
    p.add_argument("--weights", help="pretrained weights: imagenet or a state_dict path")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from slimda_nas.train import load_run_config, train_bank

    overrides = {
        k: getattr(args, k)
        for k in ("name", "out", "method", "iterations", "seed", "device", "weights")
    }
    overrides["data_root"] = args.data_root
    cfg = load_run_config(args.config, **overrides)
    result = train_bank(cfg, resume=True if args.resume else None, show_progress=not args.quiet)
    console = Console()
    console.print(
        f"bank written to {result.checkpoint} ({result.iterations} iterations"
        + (f", resumed from {result.resumed_from}" if result.resumed_from else "")
        + ")"
    )
    for name, heads in result.accuracy.items():
        text = ", ".join(f"{h} {v:.2%}" for h, v in heads.items())
        console.print(
            f"target accuracy of the {name} model (ground truth, never used for training): {text}"
        )
    return 0
