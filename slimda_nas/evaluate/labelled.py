"""``--target-labelled DIR``: a few labelled target images a team has, used only to REPORT the
accuracy of the models a search picked (by UPEM, without labels), never to pick them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from slimda_nas.data import ImageSet, eval_batches, load_labelled, parse_task
from slimda_nas.errors import DataError
from slimda_nas.evaluate.evaluator import Evaluator
from slimda_nas.train import TrainedRun

NOTE = "labelled target images used only to report accuracy; the picks were made without them"


@dataclass(frozen=True)
class LabelledTarget:
    folder: str
    images: ImageSet

    def __len__(self) -> int:
        return len(self.images)


def load_labelled_target(folder: str | Path, run: TrainedRun) -> LabelledTarget:
    """The folder's images in the bank's classes, prepared as the run's target images are."""
    digits = parse_task(run.task).source.is_digits
    try:
        images = load_labelled(folder, run.space.input_size, list(run.bank.classes), digits=digits)
    except DataError as e:
        raise DataError(f"--target-labelled: {e}") from e
    return LabelledTarget(str(folder), images)


def labelled_accuracy(
    evaluator: Evaluator, target: LabelledTarget, configs: Mapping[str, Mapping]
) -> dict:
    """A record: the folder, how many images the figures rest on, and each named
    configuration's top-1 accuracy on them (after the evaluator's BN re-estimation)."""
    batch = evaluator.settings.batch_size
    return {
        "folder": target.folder,
        "images": len(target),
        "note": NOTE,
        "accuracy": {
            label: evaluator.accuracy(config, eval_batches(target.images, batch, with_labels=True))
            for label, config in configs.items()
        },
    }
