"""Classifying images with an exported model, preprocessed as its ``model.json`` says
(``slimda-nas predict``): no bank, no run folder, only the export folder."""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from slimda_nas.data.folders import IMAGE_EXTENSIONS
from slimda_nas.errors import DataError, Notice
from slimda_nas.export.formats import FORMATS, ExportError, Runner
from slimda_nas.export.model_record import MODEL_FILE, ExportRecord
from slimda_nas.slim.elastic import resize_input

#: Formats predict can run by themselves, in the order it prefers them.
_RUNNABLE = ("torchscript", "pt2", "onnx")


@dataclass(frozen=True)
class Prediction:
    image: str
    label: str
    index: int
    confidence: float  # softmax probability of ``label``

    def to_dict(self) -> dict:
        return {
            "image": self.image,
            "class": self.label,
            "index": self.index,
            "confidence": self.confidence,
        }


class ExportedModel:
    """An export folder's model file, run with the preprocessing its record carries."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        record_path = self.folder / MODEL_FILE
        if self.folder.is_file():
            raise ExportError(
                f"{self.folder}: is a file, expected an export folder (written by "
                "`slimda-nas export`)"
            )
        self.record = ExportRecord.read(self.folder)
        inp = self.record.input if isinstance(self.record.input, dict) else {}
        norm = inp.get("normalization")
        self.resize = inp.get("resize")
        if (
            not isinstance(self.resize, dict)
            or not isinstance(norm, dict)
            or not {"mean", "std"} <= set(norm)
        ):
            raise ExportError(
                f"{record_path}: field 'input.resize' or 'input.normalization' missing (exported "
                "by an older slimda-nas); export the model again"
            )
        self.mean, self.std = norm["mean"], norm["std"]
        _check_input(record_path, inp)
        classes = self.record.classes
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise ExportError(
                f"{record_path}: field 'classes': expected a list of class names, got "
                f"{classes!r}; export the model again"
            )
        self.classes = classes
        self.format, self._run = self._load()

    def _load(self) -> tuple[str, Runner]:
        for name in _RUNNABLE:
            fmt = FORMATS[name]
            path = self.folder / fmt.file
            if path.is_file():
                try:
                    return name, fmt.load(path)
                except Exception as e:  # each runtime raises its own types for a damaged file
                    raise ExportError(
                        f"{path}: damaged or unreadable {name} model ({type(e).__name__}); "
                        "export the model again"
                    ) from None
        raise ExportError(
            f"{self.folder}: no model file predict can run (expected one of "
            f"{', '.join(FORMATS[n].file for n in _RUNNABLE)}; a state_dict alone needs its "
            "architecture: export with --format torchscript or onnx)"
        )

    def preprocess(self, path: str | Path) -> Tensor:
        """(3, S, S) float input of one image file; a file PIL cannot read is a DataError."""
        from PIL import Image

        from slimda_nas.data._decode import read_resized
        from slimda_nas.data.digits import to_3x32
        from slimda_nas.data.transforms import center_crop, normalise

        rule = self.resize.get("rule")
        try:
            if rule == "shorter_side_then_center_crop":
                img = center_crop(
                    torch.from_numpy(read_resized(path, int(self.resize["shorter_side"]))),
                    int(self.resize["crop"]),
                )
            elif rule == "resize" and list(self.resize.get("size", [])) == [32, 32]:
                img = to_3x32(read_resized(path, None).transpose(1, 2, 0)[None])[0]
            else:
                raise ExportError(f"{self.folder / MODEL_FILE}: unknown input.resize {rule!r}")
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:  # PIL's
            reason = " ".join(str(e).split()) or type(e).__name__
            raise DataError(f"{path}: cannot read the image ({reason})") from None
        x = normalise(img.unsqueeze(0), self.mean, self.std)
        shrink = self.resize.get("shrink_to")  # a configuration below the stored size
        return resize_input(x, int(shrink["size"][0]))[0] if shrink else x[0]

    @torch.no_grad()
    def predict(
        self,
        images: Sequence[str | Path],
        batch_size: int = 32,
        skippable: Collection[Path] = (),
    ) -> list[Prediction]:
        """Class and confidence of each image, in order (every file is read before any runs).
        An unreadable image is an error, unless it is in ``skippable`` (files found in a
        folder, as training leaves them out): then it is left out with one note."""
        inputs, kept, skipped = [], [], []
        for path in images:
            try:
                inputs.append(self.preprocess(path))
                kept.append(path)
            except DataError:
                if Path(path) not in skippable:
                    raise
                skipped.append(path)
        if skipped:
            if not kept:
                raise DataError(f"no readable images: all {len(skipped)} were unreadable")
            warnings.warn(
                Notice(f"skipped {len(skipped)} unreadable images (first: {skipped[0]})"),
                stacklevel=2,
            )
        images = kept
        out: list[Prediction] = []
        for start in range(0, len(inputs), batch_size):
            logits = self._run(torch.stack(inputs[start : start + batch_size]))
            probs = torch.softmax(torch.as_tensor(np.asarray(logits)).float(), dim=1)
            conf, idx = probs.max(dim=1)
            for k, (c, i) in enumerate(zip(conf.tolist(), idx.tolist(), strict=True)):
                label = self.classes[i] if i < len(self.classes) else str(i)
                out.append(Prediction(str(images[start + k]), label, i, c))
        return out


def _check_input(record_path: Path, inp: dict) -> None:
    """The record's preprocessing numbers, each named in one line where it cannot work (a
    zero std divides by zero, a size below 1 crops nothing)."""

    def bad(field: str, expected: str, got: object) -> ExportError:
        return ExportError(
            f"{record_path}: field 'input.{field}': expected {expected}, got {got!r}; export "
            "the model again"
        )

    def positive(value: object) -> bool:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return number and math.isfinite(value) and value > 0  # JSON allows Infinity

    norm, resize = inp["normalization"], inp["resize"]
    shrink = resize.get("shrink_to")
    if shrink is not None and not (
        isinstance(shrink, dict) and isinstance(shrink.get("size"), list)
    ):
        raise bad("resize.shrink_to", "a mapping with 'size': [pixels, pixels]", shrink)
    if shrink is not None and len(shrink["size"]) != 2:
        raise bad("resize.shrink_to.size", "2 numbers of pixels", shrink["size"])
    for name in ("mean", "std"):
        values = norm[name]
        numbers = isinstance(values, list) and len(values) in (1, 3)
        if not numbers or not all(isinstance(v, (int, float)) for v in values):
            raise bad(f"normalization.{name}", "1 or 3 numbers", values)
    if not all(positive(v) for v in norm["std"]):
        raise bad("normalization.std", "numbers above 0", norm["std"])
    sizes = {k: resize[k] for k in ("shorter_side", "crop") if k in resize}
    for key, holder in (("size", resize), ("shrink_to.size", shrink)):
        given = holder.get("size") if isinstance(holder, dict) else None
        if given is not None and not isinstance(given, list):
            raise bad(f"resize.{key}", "a list of pixels", given)
        sizes.update({f"{key}[{i}]": v for i, v in enumerate(given or [])})
    for key, value in sizes.items():
        if not positive(value) or value != int(value):
            raise bad(f"resize.{key}", "a positive whole number of pixels", value)
    if "size" in inp and not (positive(inp["size"]) and inp["size"] == int(inp["size"])):
        raise bad("size", "a positive whole number of pixels", inp["size"])
    if "crop" in sizes and "shorter_side" in sizes and sizes["crop"] > sizes["shorter_side"]:
        raise bad("resize.crop", f"at most shorter_side ({sizes['shorter_side']})", sizes["crop"])
    # what the rule makes must be what the model takes
    shape = inp.get("shape")
    made = shrink["size"][0] if shrink else sizes.get("crop", sizes.get("size[0]"))
    if isinstance(shape, list) and len(shape) == 4 and made is not None and made != shape[-1]:
        raise bad("resize", f"a rule giving {shape[-1]} pixels (input.shape)", made)


def list_images(paths: Sequence[str | Path]) -> list[Path]:
    """Image files, with folders expanded (recursively, sorted); a missing path is an error."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and f.suffix.lower() in IMAGE_EXTENSIONS
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
        elif p.is_file():
            found.append(p)
        else:
            raise DataError(f"{p}: no such image file or folder")
    if not found:
        raise DataError(
            f"{', '.join(map(str, paths))}: no images (expected files ending in "
            f"{', '.join(IMAGE_EXTENSIONS)})"
        )
    return found
