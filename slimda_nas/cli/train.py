"""``slimda-nas train``: train a model bank from a run config, or from two folders (torchrun-ready).

``--source DIR --target DIR`` (or ``--task TEXT``) builds the config from the backbone's defaults
(``slimda_nas/train/defaults.py``) and writes it, complete, as ``RUN/run.yaml``:
``slimda-nas train --config RUN/run.yaml`` trains the same bank. ``--dry-run`` shows what would
happen and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

from slimda_nas.errors import Notice, UserError


def register(sub) -> None:
    from slimda_nas._shipped import shipped_configs
    from slimda_nas.methods import METHODS

    p = sub.add_parser(
        "train",
        help="train a SlimDA model bank from a run config or from two image folders",
        description="Train a model bank. Either --config, or --source DIR --target DIR (class "
        "sub-folders in each; the target's labels are used only to report accuracy), or --task.",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--config",
        type=Path,
        help=f"run config YAML, or a shipped name ({', '.join(shipped_configs())})",
    )
    what.add_argument("--source", help="labelled source images: DIR/<class>/*.jpg, or a list file")
    what.add_argument(
        "--task",
        help="a task text: usps->mnist, office31:amazon->webcam, folder:A->folder:B, "
        "list:a.txt->list:b.txt",
    )
    p.add_argument("--target", help="target images (with --source): DIR/<class>/*.jpg or a list")
    p.add_argument(
        "--backbone",
        help="with --source/--task: digits_cnn, efficientnet_lite0 (default for images) or "
        "resnet50",
    )
    p.add_argument("--size", type=int, help="with --source/--task: input size in pixels")
    p.add_argument("--space", help="with --source/--task: a search space file or shipped name")
    p.add_argument(
        "--budgets",
        help="budgets you mean to search (1/16,1/64): checked against the space's MACs range",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved config, a data summary, the MACs range against --budgets and "
        "a measured time estimate; write nothing",
    )
    p.add_argument("--resume", action="store_true", help="require a checkpoint to resume from")
    p.add_argument(
        "--adapted-from",
        metavar="RUN",
        help="start where RUN's teacher stage began (its adapted.pt) when this config differs "
        "from RUN's only in the teacher stage's options (the stage, ordering, shrinking, "
        "smallest_budget): the same bank, without repeating the adaptation",
    )
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

    from slimda_nas.train import RUN_CONFIG, train_bank
    from slimda_nas.train.loop import discard_unused

    new = _resolve(args)
    cfg = new.config
    budgets = _budgets(args.budgets)
    if args.dry_run:
        from slimda_nas.cli._train_plan import dry_run

        return dry_run(new, budgets, args.data_root, adapted_from=args.adapted_from)
    if budgets:
        _warn_unreachable(new, budgets)
    fresh = not cfg.run_dir.exists()
    new.write_space()
    try:
        result = train_bank(
            cfg,
            resume=True if args.resume else None,
            show_progress=not args.quiet,
            adapted_from=args.adapted_from,
        )
    except UserError:
        if fresh and os.environ.get("RANK", "0") == "0":  # torchrun: rank 0 owns the folder
            discard_unused(cfg.run_dir, written=(Path(cfg.space).name,))
        raise
    began = (
        f", its adaptation taken from {result.adapted_from}"
        if result.adapted_from
        else f", resumed from {result.resumed_from}"
        if result.resumed_from
        else ""
    )
    if result.resumed_from == result.iterations:  # finished before this call
        what, began = "already trained, left as it is:", ""
    else:
        what = "bank written to"
    console = Console()
    console.print(
        f"{what} {result.checkpoint} ({result.iterations} iterations{began}); "
        f"its config: {cfg.run_dir / RUN_CONFIG}"
    )
    for name, heads in result.accuracy.items():
        text = ", ".join(f"{h} {v:.2%}" for h, v in heads.items())
        console.print(
            f"target accuracy of the {name} model (ground truth, never used for training): {text}"
        )
    return 0


def _resolve(args: argparse.Namespace):
    """The config and space the arguments name (a :class:`~slimda_nas.train.NewRun`)."""
    from slimda_nas.space import load_space
    from slimda_nas.train import NewRun, domain_text, load_run_config, new_run_config

    if args.name is not None and not args.name.strip():
        raise UserError("--name: expected a run name, got an empty one")
    fields = {
        k: getattr(args, k)
        for k in ("out", "method", "iterations", "seed", "device", "weights", "data_root")
    }
    if args.config is not None:
        for option in ("target", "backbone", "size", "space"):
            if getattr(args, option) is not None:
                raise UserError(f"--{option}: only with --source/--task, not with --config")
        cfg = load_run_config(args.config, name=args.name, **fields)
        return NewRun(cfg, load_space(cfg.space))
    if args.source is not None:
        if args.target is None:
            raise UserError("--source: needs --target DIR (the target domain's images)")
        domains = []
        for option, value in (("--source", args.source), ("--target", args.target)):
            if not Path(value).expanduser().exists():
                raise UserError(f"{option} {value}: no such folder or list file")
            # a task names both domains in one text: "->" splits it, spaces around are dropped
            domains.append(domain_text(value))
            if "->" in domains[-1] or domains[-1] != domains[-1].strip():
                raise UserError(
                    f"{option} {value!r}: a path holding '->' or ending in a space cannot be "
                    "named in a run's task; rename the folder or give a link to it"
                )
        task = "->".join(domains)
    else:
        if args.target is not None:
            raise UserError("--target: only with --source (a --task names both domains)")
        task = args.task
    return new_run_config(
        task,
        backbone=args.backbone,
        input_size=args.size,
        space=args.space,
        name=args.name,
        **fields,
    )


def _budgets(text: str | None) -> list:
    from slimda_nas.cost.budget import parse_budgets

    return [] if text is None else parse_budgets(text)


def _warn_unreachable(new, budgets: list) -> None:
    from slimda_nas.cli._train_plan import space_reach

    _, _, unreachable = space_reach(new, budgets)
    if unreachable:
        warnings.warn(Notice(f"--budgets: {'; '.join(unreachable)}"), stacklevel=2)
