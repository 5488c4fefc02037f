"""``slimda-nas space``: create, show and validate search-space YAML files."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from slimda_nas.errors import UserError, check_int


def register(sub) -> None:
    p = sub.add_parser("space", help="create, show and validate search spaces")
    ssub = p.add_subparsers(dest="space_command", metavar="ACTION", required=True)

    init = ssub.add_parser("init", help="write a commented default space for a backbone")
    init.add_argument("--backbone", required=True)
    init.add_argument("--out", type=Path, help="file to write (default: print to stdout)")
    init.add_argument(
        "--input-size", type=int, help="input size in pixels (default: the backbone's)"
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    init.add_argument(
        "--budgets", help="budgets you mean to search (1/16,1/64): warn when one is unreachable"
    )
    init.add_argument(
        "--num-classes", type=int, default=10, help="classes of the head counted in MACs"
    )
    init.set_defaults(handler=_init)

    for name, fn, text in (
        ("show", _show, "table of units, choices and MACs"),
        ("validate", _validate, "check a file"),
    ):
        q = ssub.add_parser(name, help=text)
        q.add_argument("file", type=Path, help="a space YAML file, or a shipped name (digits_cnn)")
        q.add_argument(
            "--budget",
            help="also report the feasible fraction at these budgets (e.g. 1/64 or 1/16,1/64)",
        )
        q.add_argument(
            "--num-classes", type=int, default=10, help="classes of the head counted in MACs"
        )
        q.add_argument(
            "--samples", type=int, default=2000, help="random configurations drawn for --budget"
        )
        q.set_defaults(handler=fn)


def _init(args: argparse.Namespace) -> int:
    import yaml

    from slimda_nas._io import check_output_path, write_text
    from slimda_nas.backbones import get_builder
    from slimda_nas.cost.budget import parse_budgets
    from slimda_nas.space import MAX_INPUT_SIZE, space_from_dict
    from slimda_nas.space.template import default_space_yaml

    get_builder(args.backbone)  # one-line error for an unknown backbone
    if args.input_size is not None and not 8 <= args.input_size <= MAX_INPUT_SIZE:
        raise UserError(
            f"--input-size: expected pixels from 8 to {MAX_INPUT_SIZE}, got {args.input_size}"
        )
    if not 1 <= args.num_classes <= 100_000:
        raise UserError(f"--num-classes: expected 1 to 100000 classes, got {args.num_classes}")
    budgets = parse_budgets(args.budgets) if args.budgets is not None else []
    text = default_space_yaml(args.backbone, input_size=args.input_size)
    space = space_from_dict(
        yaml.safe_load(text), source=f"<default space for {args.backbone}>"
    )  # never write a bad one
    if args.out is not None:
        check_output_path(args.out, "--out")  # a link, a device, a FIFO or a folder: never
        if args.out.exists() and not args.force:
            raise UserError(f"--out {args.out}: already exists (use --force to overwrite)")
    _reach(space, budgets, args.num_classes)
    if args.out is None:
        print(text, end="")
        return 0
    write_text(args.out, text)
    Console(stderr=True).print(f"wrote {args.out}")
    return 0


def _reach(space, budgets: list, num_classes: int) -> None:
    """Say on stderr which budgets the space can meet, before anyone trains on it; warn for
    each budget named that it cannot."""
    import warnings

    from slimda_nas.cost.space_summary import budget_reach, reach_text, summarize_space
    from slimda_nas.errors import Notice

    summary = summarize_space(space, num_classes)
    Console(stderr=True, highlight=False, soft_wrap=True).print(reach_text(summary))
    for line in budget_reach(summary, budgets)[1]:
        warnings.warn(
            Notice(f"--budgets: {line}; narrow the widths or the input size"), stacklevel=2
        )


def _summary(args: argparse.Namespace):
    from slimda_nas.cost.budget import parse_budgets
    from slimda_nas.cost.space_summary import summarize_space
    from slimda_nas.space import load_space, resolve_space_path

    if not 1 <= args.num_classes <= 100_000:
        raise UserError(f"--num-classes: expected 1 to 100000 classes, got {args.num_classes}")
    check_int("--samples", args.samples, 1, 10**6)
    space = load_space(resolve_space_path(args.file))
    budgets = None if args.budget is None else parse_budgets(args.budget)
    return summarize_space(space, args.num_classes, budgets, samples=args.samples)


def _budget_lines(s) -> list[str]:
    from slimda_nas.cost.budget import format_fraction
    from slimda_nas.cost.space_summary import lower_reach_advice, unreachable_message

    lines = []
    for fit in s.fits:
        if not fit.reachable:
            lines.append(
                f"budget {fit.budget}: unreachable: "
                + unreachable_message(fit.budget, s.smallest_macs, s.largest_macs)
                + f"; {lower_reach_advice(s.space)}"
            )
            continue
        line = (
            f"budget {fit.budget} = {fit.macs:,} MACs: reachable (smallest model is "
            f"{format_fraction(s.smallest_fraction)}); {fit.fraction:.1%} of {fit.samples} "
            "random configurations fit"
        )
        if fit.band_found is not None:
            line += (
                f"; not empty: the band sampler found {fit.band_found} distinct configurations "
                f"within it in {fit.band_seconds:.1f} s"
            )
        lines.append(line)
    return lines


def _show(args: argparse.Namespace) -> int:
    from slimda_nas.cost.budget import format_fraction

    s = _summary(args)
    console = Console()
    sp = s.space
    sizes = "" if len(sp.input_sizes) < 2 else f", sizes {' '.join(map(str, sp.input_sizes))}"
    t = Table(
        title=f"{args.file}  ({sp.backbone}, input {sp.input_channels}x{sp.input_size}x"
        f"{sp.input_size}{sizes})"
    )
    t.add_column("unit")
    t.add_column("layers", justify="right")
    t.add_column("full", justify="right")
    t.add_column("choices (channels, blocks or pixels)")
    for u in sp.units:
        layers = str(len(u.layers)) if u.is_width else "-"
        t.add_row(u.name, layers, str(u.full), " ".join(str(c) for c in u.channel_choices))
    console.print(t)
    m = Table(title=f"MACs (thop, batch 1, {s.num_classes}-class head)")
    m.add_column("configuration")
    m.add_column("MACs", justify="right")
    m.add_column("of largest", justify="right")
    m.add_row("largest", f"{s.largest_macs:,}", "1")
    for r, macs in s.uniform:
        if 0 < r < 1:
            m.add_row(f"uniform {r:g}", f"{macs:,}", format_fraction(macs / s.largest_macs))
    m.add_row("smallest", f"{s.smallest_macs:,}", format_fraction(s.smallest_fraction))
    console.print(m)
    console.print(
        f"{len(s.space.units)} units, {s.space.size:,} configurations, {s.largest_params:,} parameters "
        f"at full width; space hash {s.space.hash}"
    )
    for line in _budget_lines(s):
        console.print(line)
    return 0


def _validate(args: argparse.Namespace) -> int:
    s = _summary(args)
    print(
        f"{args.file}: ok ({len(s.space.units)} units, {s.space.size:,} configurations, "
        f"largest {s.largest_macs:,} MACs, smallest {s.smallest_macs:,} MACs)"
    )
    for line in _budget_lines(s):
        print(line)
    return 2 if any(not fit.reachable for fit in s.fits) else 0
