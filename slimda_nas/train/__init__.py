"""Training a model bank: run configs, the training loop, checkpoints, and loading a finished run."""

from slimda_nas.train.checkpoint import (
    ADAPTED,
    CHECKPOINT,
    TrainState,
    load_checkpoint,
    save_checkpoint,
)
from slimda_nas.train.config import (
    RUN_CONFIG,
    DistillationConfig,
    OptimizerConfig,
    RunConfig,
    config_from_dict,
    load_run_config,
    resolve_run_config,
)
from slimda_nas.train.defaults import BackboneDefaults, backbone_defaults
from slimda_nas.train.estimate import StepTiming, time_training_steps
from slimda_nas.train.loop import train_bank
from slimda_nas.train.new_run import NewRun, domain_text, new_run_config
from slimda_nas.train.run import DEFAULT_RUN, TrainedRun, default_run, is_finished, load_run
from slimda_nas.train.summary import TrainResult, TrainSummary

__all__ = [
    "ADAPTED",
    "BackboneDefaults",
    "CHECKPOINT",
    "DEFAULT_RUN",
    "DistillationConfig",
    "NewRun",
    "OptimizerConfig",
    "RUN_CONFIG",
    "RunConfig",
    "StepTiming",
    "TrainResult",
    "TrainSummary",
    "TrainState",
    "TrainedRun",
    "backbone_defaults",
    "config_from_dict",
    "default_run",
    "domain_text",
    "is_finished",
    "load_checkpoint",
    "load_run",
    "load_run_config",
    "new_run_config",
    "resolve_run_config",
    "save_checkpoint",
    "time_training_steps",
    "train_bank",
]
