"""What one training process holds (:class:`Session`), how it is set up from a run config,
restored from the run folder's checkpoint and saved to it: the training loop's state, apart
from the loop itself (train/loop.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimda_nas._io import write_yaml
from slimda_nas.bank import ModelBank
from slimda_nas.cost.macs import CostModel
from slimda_nas.errors import CheckpointError, ConfigError, UserError
from slimda_nas.methods import HEADS, Method, build_method
from slimda_nas.methods.inplace import InplaceDistillation
from slimda_nas.space import Config, SearchSpace, load_space
from slimda_nas.train import distributed as D
from slimda_nas.train.averaging import WeightAverage
from slimda_nas.train.checkpoint import (
    ADAPTED,
    CHECKPOINT,
    TrainState,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from slimda_nas.train.config import NOT_TRAINED, RUN_CONFIG, STAGE_ONLY, RunConfig
from slimda_nas.train.metrics import METRICS, MetricsLog
from slimda_nas.train.optim import build_optimizer
from slimda_nas.train.sandwich import sandwich_floor
from slimda_nas.train.step import BankStep
from slimda_nas.train.teacher import CACHE, VIEWS, TeacherCache, TeacherStep


@dataclass
class Session:
    """Everything one training process holds."""

    cfg: RunConfig
    device: torch.device
    dist: D.DistInfo
    space: SearchSpace
    data: Any  # TaskData
    method: Method
    bank: ModelBank
    optimizer: torch.optim.Optimizer
    src: Any  # InfiniteLoader
    tgt: Any | None
    warmup: Method | None = None  # in-place distillation before adaptation
    step: nn.Module | None = None
    # the teacher stage: (source, target) streams of view indices, its step and cached targets
    views: tuple[Any, Any] | None = None
    teacher_step: nn.Module | None = None
    teacher_cache: TeacherCache | None = None
    metrics: MetricsLog | None = None
    macs_of: Callable[[list[int]], int] | None = None  # random models drawn by MACs
    floor: tuple[int, ...] | None = None  # unit indices of the sandwich's smallest model
    average: WeightAverage = field(default_factory=WeightAverage)

    @property
    def model(self) -> nn.Module:
        return self.bank.model

    @property
    def ckpt_path(self) -> Path:
        return self.cfg.run_dir / CHECKPOINT

    def smallest(self) -> Config:
        """The sandwich's smallest model once every choice is open (``smallest_budget``)."""
        return self.space.smallest() if self.floor is None else self.space.from_indices(self.floor)

    @property
    def labelled(self) -> bool:
        """The target has labels to report accuracy with (an unlabelled folder has none)."""
        return self.data.target_test.labelled


# -- set-up ---------------------------------------------------------------------------------------
def training_bank(
    cfg: RunConfig,
    space: SearchSpace,
    method: Method,
    num_classes: int,
    device: torch.device,
    **bank_options: Any,
) -> ModelBank:
    """The bank as training holds it: on ``device``, the heads ``method`` does not train frozen,
    channels-last where the config says (the training run and its time estimate share this)."""
    bank = ModelBank.build(space, num_classes, heads=HEADS, **bank_options)
    model = bank.model.to(device)
    for h in HEADS:
        if h not in method.trained_heads:
            getattr(model, h).requires_grad_(False)
    if cfg.uses_channels_last(device.type):
        model.to(memory_format=torch.channels_last)
    return bank


def sandwich_costs(
    cfg: RunConfig, bank: ModelBank
) -> tuple[Callable[[list[int]], int] | None, tuple[int, ...] | None]:
    """What the sandwich reads MACs for, from one cost model: MACs of unit indices where a step's
    random models are drawn by MACs, and the smallest model's floor where ``smallest_budget``
    sets one (None for each that is off)."""
    macs = cfg.random_models == "macs"
    if not macs and cfg.smallest_budget is None:
        return None, None
    cost = CostModel(bank)  # traced forwards: built once, only where something needs it
    floor = None
    if cfg.smallest_budget is not None:
        floor = sandwich_floor(bank.space, cost, cfg.smallest_budget)
    return (cost.macs_of_indices if macs else None), floor


def setup(cfg: RunConfig) -> Session:
    """Device, data, method, bank, optimizer and data streams (nothing written yet)."""
    from slimda_nas.data import InfiniteLoader, load_task, resolve_data_root

    device = D.resolve_device(cfg.device)
    dist = D.init_distributed(device)
    space = load_space(cfg.space)
    data = load_task(cfg.task, resolve_data_root(cfg.data_root), space.input_size)
    channels = data.source_train.eval_batch(torch.tensor([0])).shape[1]
    if channels != space.input_channels:
        raise ConfigError(
            f"{cfg.space}: field 'input.channels': {space.input_channels}, but task {cfg.task} gives {channels}"
        )
    method = build_method(cfg.method, **vars(cfg.distillation))
    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    bank = training_bank(
        cfg,
        space,
        method,
        len(data.classes),
        device,
        weights=cfg.weights,
        classes=data.classes,
        deploy_head=cfg.deploy_head or method.default_deploy_head,
    )
    model = bank.model
    seed = cfg.seed * 1000 + 2 * dist.rank
    src = InfiniteLoader(data.source_train, cfg.batch_size, seed=seed)
    warmup = None
    if cfg.warmup.iterations:
        warmup = InplaceDistillation(cfg.warmup.images, cfg.warmup.temperature)
    tgt = None
    if method.uses_target or (warmup is not None and warmup.uses_target):
        tgt = InfiniteLoader(data.target_train, cfg.batch_size, seed=seed + 1, with_labels=False)
    s = Session(
        cfg, device, dist, space, data, method, bank, build_optimizer(model, cfg), src, tgt, warmup
    )
    s.macs_of, s.floor = sandwich_costs(cfg, bank)
    if cfg.teacher.iterations:
        from slimda_nas.data import IndexStream

        s.views = tuple(
            IndexStream(len(images) * VIEWS, seed + 2 + k, f"{images.name}/views")
            for k, images in enumerate((data.source_train, data.target_train))
        )
    return s


def restore(s: Session, resume: bool | None) -> int:
    """Load the run folder's checkpoint into the session; the iteration to continue from."""
    path, cfg = s.ckpt_path, s.cfg
    if not path.exists():
        if resume:
            raise CheckpointError(f"{path}: no checkpoint to resume from")
        return 0
    if resume is False:
        raise CheckpointError(
            f"{cfg.run_dir}: already holds a trained run; choose another name or resume it"
        )
    state = _resumable(path, s)
    if state.config_hash != cfg.training_hash() and not _same_but_space_path(s, state):
        raise CheckpointError(
            f"{path}: was trained with a different config ({_diff(state.config, cfg.to_dict())}); "
            "use another run name"
        )
    return _load(s, state, path)


def adopt(s: Session, path: Path) -> int:
    """Start a new run from another run's adapted checkpoint (``path``: the adapted.pt that
    :func:`check_adapted_from` names), as if this run had trained the adaptation itself: the
    iteration to continue from. Refused unless the two configs adapt alike
    (``RunConfig.adaptation_hash``)."""
    cfg, mine = s.cfg, s.cfg.adaptation_hash()
    state = _resumable(path, s)  # also refuses another search space (by its content)
    if state.adaptation_hash is None:
        raise CheckpointError(f"{path}: holds no adaptation hash; not an adapted.pt")
    if state.adaptation_hash != mine or state.iteration != cfg.adaptation_end:
        differs = _diff(state.config, cfg.to_dict(), skip=("name", "space", *STAGE_ONLY))
        raise CheckpointError(
            f"{path}: not the adaptation this config trains ({differs}; iteration "
            f"{state.iteration}, expected {cfg.adaptation_end}); train it without --adapted-from"
        )
    return _load(s, state, path)


def check_adapted_from(cfg: RunConfig, source: Path) -> Path:
    """The adapted.pt that ``--adapted-from SOURCE`` names for ``cfg``, checked as far as it
    can be without loading it (a dry run asks this too)."""
    if cfg.adaptation_hash() is None:
        raise CheckpointError(
            f"{cfg.name}: adapts more than the largest model (or has no teacher stage), so "
            "no other run's adaptation is its own; train it without --adapted-from"
        )
    path = source / ADAPTED if source.is_dir() else source
    if not path.is_file():
        raise CheckpointError(
            f"{source}: no {ADAPTED} there (a staged run writes it where its teacher stage "
            "begins); give that run's folder or its adapted.pt"
        )
    return path


def _resumable(path: Path, s: Session) -> TrainState:
    state = load_checkpoint(path, space_hash=s.space.hash, backbone=s.space.backbone)
    missing = state.resumable
    if missing:
        raise CheckpointError(
            f"{path}: holds no training state to resume ({', '.join(missing)} missing; "
            "an older or exported checkpoint); use another run name to train afresh"
        )
    return state


def _load(s: Session, state: TrainState, path: Path) -> int:
    """Weights, optimizer, data streams and RNG of ``state`` into the session."""
    try:
        s.model.load_state_dict(state.model)
        s.optimizer.load_state_dict(state.optimizer)
    except (RuntimeError, ValueError, KeyError) as e:
        raise CheckpointError(
            f"{path}: its weights do not fit this bank ({str(e).strip().splitlines()[0][:160]}); "
            "restore the file or use another run name"
        ) from None
    if not isinstance(state.ranks, list) or len(state.ranks) != s.dist.world_size:
        written = len(state.ranks) if isinstance(state.ranks, list) else "?"
        raise CheckpointError(
            f"{path}: written by {written} process(es); resume with the same number "
            f"(now {s.dist.world_size}) so every data stream continues where it stopped"
        )
    try:
        _load_streams(s, state, state.ranks[s.dist.rank])
    except UserError as e:  # a stream's own check: name the file it came from
        raise CheckpointError(f"{path}: {e}") from None
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
        reason = (str(e).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(
            f"{path}: damaged training state ({type(e).__name__}: {reason}); restore the file "
            "or use another run name"
        ) from None
    return state.iteration


def _load_streams(s: Session, state: TrainState, mine: dict) -> None:
    """This process's data streams and RNG, and the weight average, from ``state``."""
    s.src.load_state_dict(mine["loaders"]["source"])
    if s.tgt is not None:
        s.tgt.load_state_dict(mine["loaders"]["target"])
    if s.views is not None and mine["loaders"].get("views"):
        for stream, saved in zip(s.views, mine["loaders"]["views"], strict=True):
            stream.load_state_dict(saved)
    restore_rng(mine["rng"])
    if state.average is not None:
        s.average = WeightAverage.from_state_dict(state.average, s.device)


def _same_but_space_path(s: Session, state: TrainState) -> bool:
    """The same config given from another folder: the space file is named by another path,
    but its content is the one trained (a space is its content, not where it lies)."""
    trained_path = state.config.get("space")
    if state.space_hash != s.space.hash or not isinstance(trained_path, str):
        return False
    return dataclasses.replace(s.cfg, space=trained_path).training_hash() == state.config_hash


def prepare(s: Session, start: int) -> None:
    """The step module (DDP, compiled), the metrics log and ``run.yaml``."""
    step = BankStep(
        s.model,
        s.method,
        s.cfg.uses_channels_last(s.device.type),
        warmup=s.warmup,
        separate_domains=s.cfg.domain_bn == "separate",
    )
    if s.dist.enabled:
        ddp_kwargs = {"device_ids": [s.device.index]} if s.device.type == "cuda" else {}
        step = nn.parallel.DistributedDataParallel(step, **ddp_kwargs)
    if s.cfg.compile:
        step = torch.compile(step)
    s.step = step
    if s.views is not None:
        s.teacher_step = TeacherStep(
            s.model,
            s.cfg.teacher,
            s.cfg.uses_channels_last(s.device.type),
            s.cfg.domain_bn == "separate",
            s.method,
        )
        if start > s.cfg.adaptation_end:  # resumed inside the stage: the targets it began with
            s.teacher_cache = TeacherCache.load(s.cfg.run_dir / CACHE, s.cfg.training_hash())
    s.cfg.run_dir.mkdir(parents=True, exist_ok=True)
    if s.dist.is_main:
        s.metrics = MetricsLog(s.cfg.run_dir / METRICS, resume_iteration=start)
        write_yaml(s.cfg.run_dir / RUN_CONFIG, s.cfg.to_dict())


# -- saving ---------------------------------------------------------------------------------------
def save(s: Session, iteration: int) -> None:
    D.sync_buffers(s.dist, s.model)  # BN statistics: rank 0's, as DDP does at each forward
    # Each rank has its own data streams and RNG: keep all of them, resume each its own.
    local = {
        "rng": capture_rng(),
        "loaders": {
            "source": s.src.state_dict(),
            "target": s.tgt.state_dict() if s.tgt else None,
            **({"views": [v.state_dict() for v in s.views]} if s.views else {}),
        },
    }
    ranks = [local]
    if s.dist.enabled:
        ranks = [None] * s.dist.world_size
        torch.distributed.all_gather_object(ranks, local)
    if s.dist.is_main:
        cfg, space = s.cfg, s.space
        state = TrainState(
            model=s.model.state_dict(),
            optimizer=s.optimizer.state_dict(),
            ranks=ranks,
            iteration=iteration,
            config=cfg.to_dict(),
            config_hash=cfg.training_hash(),
            space_hash=space.hash,
            space_name=space.name,
            space=space.to_dict(),
            backbone=space.backbone,
            classes=list(s.data.classes),
            task=str(s.data.task),
            method=cfg.method,
            deploy_head=s.bank.deploy_head,
            heads=list(HEADS),
            world_size=s.dist.world_size,
            average=(
                s.average.state_dict()
                if s.average.count and iteration < cfg.adaptation_end
                else None
            ),
            adaptation_hash=cfg.adaptation_hash(),
        )
        if iteration == cfg.adaptation_end and state.adaptation_hash:
            # first: a kill before the checkpoint redoes the last steps and writes it again
            save_checkpoint(cfg.run_dir / ADAPTED, state)
        save_checkpoint(s.ckpt_path, state)
    D.barrier(s.dist)


def _diff(old: dict, new: dict, skip: tuple[str, ...] = ()) -> str:
    for key in new:
        if key in NOT_TRAINED or key in skip:
            continue
        if old.get(key) != new.get(key):
            return f"field {key!r}: {old.get(key)!r} there, {new.get(key)!r} now"
    return "see run.yaml"
