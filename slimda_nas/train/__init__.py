"""Training a model bank: run configs, the training loop, checkpoints, and loading a finished run."""

from slimda_nas.train.checkpoint import CHECKPOINT, TrainState, load_checkpoint, save_checkpoint
from slimda_nas.train.config import (
    DistillationConfig,
    OptimizerConfig,
    RunConfig,
    config_from_dict,
    load_run_config,
)
from slimda_nas.train.loop import TrainResult, train_bank
from slimda_nas.train.run import DEFAULT_RUN, TrainedRun, default_run, is_finished, load_run

__all__ = [
    "CHECKPOINT",
    "DEFAULT_RUN",
    "DistillationConfig",
    "OptimizerConfig",
    "RunConfig",
    "TrainResult",
    "TrainState",
    "TrainedRun",
    "config_from_dict",
    "default_run",
    "is_finished",
    "load_checkpoint",
    "load_run",
    "load_run_config",
    "save_checkpoint",
    "train_bank",
]
