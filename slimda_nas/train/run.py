"""A finished training run, loaded from its folder: the bank plus what produced it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from slimda_nas._check import typed
from slimda_nas.bank import ModelBank
from slimda_nas.errors import CheckpointError, RunError
from slimda_nas.space import SearchSpace, space_from_dict
from slimda_nas.train.checkpoint import CHECKPOINT, file_hash, load_checkpoint
from slimda_nas.train.config import RUN_CONFIG, RunConfig, config_from_dict, load_run_config
from slimda_nas.train.distributed import resolve_device

if TYPE_CHECKING:
    from slimda_nas.data import TaskData

DEFAULT_RUN = Path("runs/usps_mnist")
"""Where ``slimda-nas search`` without ``--run`` keeps the embedded default bank."""
DEFAULT_CONFIG = "usps_mnist"
"""The shipped run config of the embedded default (USPS -> MNIST, digits CNN)."""


@dataclass(kw_only=True)
class TrainedRun:
    """What evaluation, search, reports and export need from ``runs/<name>``."""

    run_dir: Path
    config: RunConfig
    bank: ModelBank
    checkpoint_hash: str
    method: str
    task: str
    data_root: str | None = None
    _data: TaskData | None = field(default=None, repr=False)

    @property
    def space(self) -> SearchSpace:
        return self.bank.space

    @property
    def device(self) -> torch.device:
        return next(self.bank.model.parameters()).device

    def data(self) -> TaskData:
        """The task's images (decoded once per process)."""
        if self._data is None:
            from slimda_nas.data import load_task, resolve_data_root

            root = resolve_data_root(self.data_root or self.config.data_root)
            data = load_task(self.task, root, self.space.input_size)
            _check_classes(self, list(data.classes))
            self._data = data
        return self._data


def _check_classes(run: TrainedRun, found: list[str]) -> None:
    """The task's classes must be the bank's, in its order: a 3-class bank scored on a
    10-class target gives a number that means nothing."""
    trained = list(run.bank.classes)
    if trained and trained != found:
        what = (
            f"{len(trained)} classes, the task's data {len(found)}"
            if len(trained) != len(found)
            else "other class names or another order than the task's data"
        )
        raise CheckpointError(
            f"{run.run_dir / CHECKPOINT}: its bank has {what} ({run.task}); use the data it "
            "was trained on (--data-root) or re-train"
        )


@typed
def load_run(
    run_dir: str | Path | TrainedRun, device: str = "auto", data_root: str | None = None
) -> TrainedRun:
    """Load a finished run; every problem is a one-line :class:`RunError` or CheckpointError."""
    if isinstance(run_dir, TrainedRun):
        return run_dir
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(
            f"{run_dir}: is a file, expected a run folder (written by `slimda-nas train`)"
        )
    if not run_dir.is_dir():
        raise RunError(
            f"{run_dir}: no such run folder (train one with `slimda-nas train --config ...`)"
        )
    ckpt = run_dir / CHECKPOINT
    if ckpt.exists() and not ckpt.is_file():
        raise RunError(f"{ckpt}: is a folder, expected the bank's checkpoint file")
    if not ckpt.is_file():
        raise RunError(f"{run_dir}: no {CHECKPOINT} (training has not written one yet)")
    state = load_checkpoint(ckpt)
    config = config_from_dict(state.config, source=str(ckpt))
    if state.iteration < config.total_iterations:
        raise RunError(
            f"{ckpt}: training stopped at iteration {state.iteration} of "
            f"{config.total_iterations}; "
            f"finish it with `slimda-nas train --config {run_dir / RUN_CONFIG}`"
        )
    # as trained, even if the file changed since
    space = space_from_dict(state.space, source=f"{ckpt} (its stored search space)")
    if space.hash != state.space_hash:
        raise RunError(f"{ckpt}: the stored search space does not match its hash")
    bank = ModelBank.build(
        space,
        len(state.classes),
        heads=tuple(state.heads),
        classes=state.classes,
        deploy_head=state.deploy_head,
    )
    try:
        bank.model.load_state_dict(state.model)
    except RuntimeError as e:  # a missing, unexpected or wrong-shaped weight
        raise CheckpointError(
            f"{ckpt}: its weights do not fit the bank it describes "
            f"({str(e).strip().splitlines()[-1].strip()[:160]}); restore the file or re-train"
        ) from None
    bank.model.to(resolve_device(device)).eval()
    return TrainedRun(
        run_dir=run_dir,
        config=config,
        bank=bank,
        checkpoint_hash=file_hash(ckpt),
        method=state.method,
        task=state.task,
        data_root=data_root,
    )


def is_finished(run_dir: str | Path) -> bool:
    """``run_dir`` holds a checkpoint whose training reached its last iteration."""
    ckpt = Path(run_dir) / CHECKPOINT
    if not ckpt.is_file():
        return False
    state = load_checkpoint(ckpt)
    return state.iteration >= config_from_dict(state.config, str(ckpt)).total_iterations


@typed
def default_run(
    *,
    data_root: str | None = None,
    on_train: Callable[[RunConfig], None] | None = None,
) -> Path:
    """The embedded default bank (``runs/usps_mnist``), trained from the shipped config first
    when it is not there or not finished (``on_train`` is told before training starts)."""
    from slimda_nas.train.loop import train_bank

    if is_finished(DEFAULT_RUN):
        return DEFAULT_RUN
    cfg = load_run_config(DEFAULT_CONFIG, out=str(DEFAULT_RUN), data_root=data_root)
    if on_train is not None:
        on_train(cfg)
    train_bank(cfg)
    return DEFAULT_RUN
