"""``slimda-nas predict``: classify images with an exported model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="classify images with an exported model (class and confidence)",
        description="Classify images with the model of an export folder (TorchScript, .pt2 or "
        "ONNX), preprocessed as its model.json says.",
    )
    p.add_argument("--model", required=True, type=Path, help="export folder (RUN/export/LABEL)")
    p.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from slimda_nas.errors import UserError
    from slimda_nas.export.predict import ExportedModel, list_images

    if args.batch_size < 1:
        raise UserError(f"--batch-size: expected a positive integer, got {args.batch_size}")
    images = list_images(args.images)
    model = ExportedModel(args.model)
    named = {Path(p) for p in args.images}  # a file named must be readable; one found may not
    found = [p for p in images if p not in named]
    predictions = model.predict(images, batch_size=args.batch_size, skippable=found)
    if args.json:
        print(json.dumps([p.to_dict() for p in predictions], indent=2))
        return 0
    t = Table(title=f"{args.model} ({model.format})")
    t.add_column("image")
    t.add_column("class")
    t.add_column("confidence", justify="right")
    for p in predictions:
        t.add_row(p.image, p.label, f"{p.confidence:.1%}")
    Console(highlight=False).print(t)
    return 0
