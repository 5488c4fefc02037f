"""Run configs: the YAML file that says what to train, checked field by field."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimda_nas._check import check_fields, typed
from slimda_nas._shipped import is_bare_name, shipped_configs
from slimda_nas._yaml import read_yaml
from slimda_nas.cost.budget import parse_budget
from slimda_nas.errors import BudgetError, ConfigError, check_int
from slimda_nas.methods import HEADS, METHODS
from slimda_nas.space import load_space, resolve_space_path
from slimda_nas.train.checkpoint import CHECKPOINT
from slimda_nas.train.defaults import apply_defaults
from slimda_nas.train.distributed import DEVICE_EXPECTED, DEVICE_PATTERN
from slimda_nas.train.sandwich import RANDOM_MODELS, SHRINKING_ORDERS


@dataclass(frozen=True, kw_only=True)
class OptimizerConfig:
    """SGD with an inverse-decay schedule, lr = lr0 / (1 + gamma p)^power (SymNet's)."""

    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    backbone_lr_mult: float = 1.0  # 0.1 for pretrained backbones: heads learn 10x faster
    schedule: str = "inv"  # inv | constant | cosine
    gamma: float = 10.0
    power: float = 0.75


@dataclass(frozen=True, kw_only=True)
class DistillationConfig:
    """SEED settings (``slimda`` only)."""

    temperature: float = 0.5
    weight: float = 1.0
    confidence: str = "max"  # max | entropy
    ramp: bool = False  # weight x SymNet's lambda (0 -> 1): weak while the ensemble is poor


@dataclass(frozen=True, kw_only=True)
class WarmupConfig:
    """In-place distillation before adaptation (US-Nets): the largest model learns the source
    labels, every other sampled width learns the largest's predictions on source AND target
    images (no target label), so that small sub-networks of a pretrained backbone work before
    domain adaptation starts. Off (0 iterations) by default."""

    iterations: int = 0
    images: str = "both"  # source | target | both: what the widths are distilled on
    temperature: float = 1.0
    lr: float | None = None  # default: optimizer.lr (constant during the warm-up)


@dataclass(frozen=True, kw_only=True)
class ShrinkingConfig:
    """Progressive shrinking (once-for-all): training starts from the widest choices and opens
    smaller ones step by step, in ``stages`` over the first ``fraction`` of the iterations of
    every phase. Off (0 stages) by default. ``order`` (for spaces with elastic depth and
    resolution): ``together`` shrinks every unit at once, ``ofa`` keeps the resolution elastic
    from the start and opens depth, then width (train/sandwich.py)."""

    stages: int = 0
    fraction: float = 0.5
    order: str = "together"


@dataclass(frozen=True, kw_only=True)
class OrderingConfig:
    """Channel ordering by importance before narrow widths are first trained (once-for-all's
    ``l1_next``: L1 norm of the next layers' input weights; ``l1_out``: of the filters;
    ``bn_gamma``: |gamma| of the batch norms). Exact at full width. Off (null) by default."""

    criterion: str | None = None


@dataclass(frozen=True, kw_only=True)
class TeacherConfig:
    """The teacher stage, after adaptation: the adapted full-width model is frozen as a teacher,
    its outputs on fixed views of every source and target training image are cached, and every
    sampled width learns them (logits of every head, and dense: the stage outputs), with the
    source labels. A step costs only the students' passes. Off (0 iterations) by default."""

    iterations: int = 0
    models_per_step: int = 3  # the largest, the smallest and random ones (sandwich)
    temperature: float = 1.0
    logits: float = 1.0  # weight of the distillation of every head's logits
    features: float = 1.0  # weight of the dense (stage-output) distillation
    source_ce: float = 1.0  # weight of the cross-entropy on source labels
    # weight of the run's own method (its adaptation loss) on the largest model, which then
    # keeps adapting instead of learning its own cached outputs; 0: off
    adaptation: float = 0.0
    lr: float | None = None  # the stage's lr0 (default: optimizer.lr), on the inv schedule
    backbone_lr_mult: float | None = None  # default: optimizer.backbone_lr_mult


@dataclass(frozen=True, kw_only=True)
class AveragingConfig:
    """Tail weight averaging (SWA's running average, the learning rate left as it is): the
    weights after every ``every``-th of the last ``1 - start`` of the adaptation iterations join
    a uniform average, which is the trained bank. Off (start null) by default."""

    start: float | None = None  # fraction of the adaptation iterations before averaging starts
    every: int = 10


RUN_CONFIG = "run.yaml"  # a run folder's config, complete: `train --config RUN/run.yaml` resumes

NOT_TRAINED = (
    "out",
    "data_root",
    "device",
    "checkpoint_every",
    "log_every",
    "eval_every",
    "eval_images",
    "calibration_images",
)
"""Fields that say where files live and how often to log or measure, not what is trained: left
out of :meth:`RunConfig.training_hash` (a run resumes whatever they are)."""

STAGE_ONLY = ("teacher", "ordering", "shrinking", "smallest_budget", "random_models")
"""Fields that act only from the teacher stage on when adaptation trains the largest model
alone: left out of :meth:`RunConfig.adaptation_hash`."""


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    name: str
    task: str
    space: str
    method: str = "slimda"
    weights: str | None = None
    deploy_head: str | None = None
    iterations: int = 3000
    batch_size: int = 64
    models_per_step: int = 4
    sandwich: bool = True
    # how the random models of a step are drawn: units (each unit's choice uniformly) or macs
    # (a MACs target log-uniform over the range, then a model just under it; train/sandwich.py)
    random_models: str = "units"
    # the sandwich's smallest model: null, the space's narrowest; a budget ("1/64", "2M"), the
    # widest uniform model within it, for banks whose smallest device has that budget
    # (train/sandwich.py)
    smallest_budget: str | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    # null: on where the bank trains on a CPU (steps 1.35-1.64x faster there, BENCHMARKS.md
    # section 12), off on CUDA (3.7x slower with random widths on an H200, section 7)
    channels_last: bool | None = False
    compile: bool = False
    # joint: source and target in one batch through BatchNorm (SymNet's); separate: one forward
    # per domain, so each domain is normalised by its own batch statistics, as at deployment
    # (where BN is re-estimated on target images alone)
    domain_bn: str = "joint"
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    distillation: DistillationConfig = field(default_factory=DistillationConfig)
    warmup: WarmupConfig = field(default_factory=WarmupConfig)
    shrinking: ShrinkingConfig = field(default_factory=ShrinkingConfig)
    averaging: AveragingConfig = field(default_factory=AveragingConfig)
    ordering: OrderingConfig = field(default_factory=OrderingConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    checkpoint_every: int = 500
    log_every: int = 50
    eval_every: int = 1000
    eval_images: int = 2000
    calibration_images: int = 1000
    data_root: str | None = None
    out: str | None = None

    def __post_init__(self) -> None:
        check_fields(self)  # RunConfig(name=5) from Python: named here, not deep in training

    @property
    def total_iterations(self) -> int:
        """Warm-up, adaptation and the teacher stage: what a finished run's checkpoint has done."""
        return self.adaptation_end + self.teacher.iterations

    @property
    def adaptation_end(self) -> int:
        """The iteration count at the end of adaptation (where the teacher stage begins)."""
        return self.warmup.iterations + self.iterations

    @property
    def ordering_iteration(self) -> int:
        """Where channels are ordered: before the first step that trains a narrower model, i.e.
        the teacher stage's first when warm-up and adaptation train the largest model only."""
        largest_only = not self.warmup.iterations and self.models_per_step == 1
        return self.adaptation_end if largest_only and self.teacher.iterations else 0

    @property
    def run_dir(self) -> Path:
        return Path(self.out) if self.out else Path("runs") / self.name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def uses_channels_last(self, device_type: str) -> bool:
        """Whether tensors and weights are kept channels-last on a ``device_type`` device."""
        return device_type == "cpu" if self.channels_last is None else self.channels_last

    def training_hash(self) -> str:
        """Identity of what is trained: every field except where files live and how often we log."""
        d = self.to_dict()
        for key in NOT_TRAINED:
            d.pop(key)
        # null picks the memory layout by device; the function trained is the same, and runs
        # started before null existed (false) keep their identity
        if d["channels_last"] is None:
            d["channels_last"] = False
        # a stage that is off trains nothing, whatever its other fields say (a config may set
        # them for when it is switched on, or inherit them from the backbone's defaults)
        if not self.teacher.iterations:
            d["teacher"] = dataclasses.asdict(TeacherConfig())
        _drop_later_defaults(d)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def adaptation_hash(self) -> str | None:
        """Identity of a staged run's adaptation, i.e. of its checkpoint where the teacher stage
        begins: every trained field except those that act only from there on (``STAGE_ONLY``:
        adaptation trains the largest model alone, so the sandwich's other models, the channel
        order and the stage do not shape it). Runs with equal hashes hold the same weights,
        optimizer and data streams at that point. None where adaptation trains narrower
        models too (then every field shapes it)."""
        largest_only = self.ordering_iteration == self.adaptation_end and self.sandwich
        if not self.teacher.iterations or not largest_only:  # without the sandwich, m = 1 is
            return None  # a random model, which shrinking and random_models choose
        d = self.to_dict()
        # a run's name trains nothing; the space is compared by content where a run adopts
        # (the checkpoint's space hash), not by the path naming it (own data: RUN/space.yaml)
        for key in ("name", "space", *NOT_TRAINED, *STAGE_ONLY):
            d.pop(key)
        _drop_later_defaults(d)
        blob = json.dumps({"adaptation": d}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def replace(self, **changes: Any) -> RunConfig:
        """A checked copy with ``changes``; nested sections may be given as partial mappings."""
        raw = self.to_dict()
        for key, value in changes.items():
            raw[key] = (
                {**raw[key], **value}
                if isinstance(value, dict) and isinstance(raw.get(key), dict)
                else value
            )
        return _build(raw, "<overrides>")


# A field added to RunConfig goes here with its default (off): see _drop_later_defaults.
_ADDED_LATER = {
    "warmup": dataclasses.asdict(WarmupConfig()),
    "shrinking": dataclasses.asdict(ShrinkingConfig()),
    "averaging": dataclasses.asdict(AveragingConfig()),
    "ordering": dataclasses.asdict(OrderingConfig()),
    "teacher": dataclasses.asdict(TeacherConfig()),
    "distillation.ramp": False,
    "domain_bn": "joint",
    "shrinking.order": "together",
    "random_models": "units",
    "teacher.adaptation": 0.0,
    "smallest_budget": None,
}


def _drop_later_defaults(d: dict) -> None:
    """Leave out the fields added later where they hold their defaults (off), so that configs
    written before they existed keep their identity (and their runs can be resumed)."""
    for key, default in _ADDED_LATER.items():
        *parents, leaf = key.split(".")
        holder = d
        for parent in parents:
            holder = holder.get(parent, {})  # a section already left out whole
        if leaf in holder and holder[leaf] == default:
            holder.pop(leaf)


_CHOICES = {
    "method": tuple(METHODS),
    "precision": ("fp32", "bf16"),
    "domain_bn": ("joint", "separate"),
    "deploy_head": (None, *HEADS),
    "optimizer.schedule": ("inv", "constant", "cosine"),
    "distillation.confidence": ("max", "entropy"),
    "warmup.images": ("source", "target", "both"),
    "shrinking.order": SHRINKING_ORDERS,
    "random_models": RANDOM_MODELS,
    "ordering.criterion": (None, "l1_next", "l1_out", "bn_gamma"),
}


def resolve_config_path(value: str | Path) -> Path:
    """A run config given as a path, or as a shipped name like ``usps_mnist``."""
    p = Path(value)
    if p.is_file() or not is_bare_name(value):
        return p
    shipped = shipped_configs()
    if str(value) not in shipped:
        raise ConfigError(
            f"--config {value}: no such file, and not a shipped config "
            f"(shipped: {', '.join(shipped)})"
        )
    return shipped[str(value)]


@typed
def load_run_config(path: str | Path, **overrides: Any) -> RunConfig:
    """Read and check a run config (a YAML path or a shipped name like ``usps_mnist``);
    ``overrides`` (from the command line) win over the file, and the fields both leave out take
    the defaults of the space's backbone (:mod:`slimda_nas.train.defaults`)."""
    path = resolve_config_path(path)
    raw = read_yaml(path, ConfigError)
    if raw is None:
        raise ConfigError(f"{path}: file is empty (expected a run config mapping)")
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: expected a mapping of fields at the top level, got {type(raw).__name__}"
        )
    raw = dict(raw)
    for key, value in overrides.items():
        if value is not None:
            raw[key] = value
    raw.setdefault("name", path.stem)
    return resolve_run_config(
        raw, str(path), relative_to=path.parent, defaults=not _written_by_training(path)
    )


def resolve_run_config(
    raw: dict[str, Any],
    source: str,
    *,
    relative_to: Path | None = None,
    backbone: str | None = None,
    defaults: bool = True,
) -> RunConfig:
    """A checked config from ``raw`` fields, the one path shared by config files and the
    command line: the space is resolved (a path relative to ``relative_to``, or a shipped name)
    and must exist, unless ``backbone`` names the backbone of a space not written yet; with
    ``defaults``, the fields ``raw`` leaves out take the backbone's row of the defaults table."""
    raw = dict(raw)
    space = raw.get("space")
    if backbone is None and isinstance(space, str) and space.strip():
        path = resolve_space_path(space, relative_to)
        if not path.is_file():
            raise ConfigError(
                f"{source}: field 'space': {space!r} not found (a YAML path or a shipped name "
                "like digits_cnn)"
            )
        raw["space"] = str(path)
        if defaults:
            backbone = load_space(path).backbone
    if defaults and backbone is not None:
        raw = apply_defaults(raw, backbone)
    return _build(raw, source)


def _written_by_training(path: Path) -> bool:
    """A run folder's ``run.yaml`` (beside its checkpoint) lists every field the run was
    trained with; a field it lacks was added to RunConfig later and takes its off value, never a
    backbone default, so that the run keeps its training hash."""
    return path.name == RUN_CONFIG and (path.parent / CHECKPOINT).is_file()


def config_from_dict(raw: dict, source: str = "<run config>") -> RunConfig:
    """A stored config (a checkpoint's) as written: no backbone defaults are filled in."""
    return _build(dict(raw), source)


def _build(raw: dict, src: str) -> RunConfig:
    nested = {
        "optimizer": OptimizerConfig,
        "distillation": DistillationConfig,
        "warmup": WarmupConfig,
        "shrinking": ShrinkingConfig,
        "averaging": AveragingConfig,
        "ordering": OrderingConfig,
        "teacher": TeacherConfig,
    }
    kwargs: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    for key, value in raw.items():
        if key not in fields:
            raise ConfigError(
                f"{src}: unknown field {key!r} (expected one of: {', '.join(fields)})"
            )
        if key in nested:
            if value is None:
                continue
            if isinstance(value, tuple(nested.values())):
                value = dataclasses.asdict(value)
            if not isinstance(value, dict):
                raise ConfigError(f"{src}: field {key!r}: expected a mapping, got {value!r}")
            sub_fields = {f.name: f for f in dataclasses.fields(nested[key])}
            for sub in value:
                if sub not in sub_fields:
                    raise ConfigError(
                        f"{src}: field '{key}.{sub}': unknown (expected one of: {', '.join(sub_fields)})"
                    )
            sub_kwargs = {
                k: _coerce(f"{key}.{k}", v, sub_fields[k].type, src) for k, v in value.items()
            }
            kwargs[key] = nested[key](**sub_kwargs)
        else:
            if key == "smallest_budget" and type(value) in (int, float):
                value = str(value)  # YAML reads 0.25 as a number; a budget is text
            kwargs[key] = _coerce(key, value, fields[key].type, src)
    for required in ("name", "task", "space"):
        if required not in kwargs:
            raise ConfigError(f"{src}: field {required!r}: missing")
    return _check(RunConfig(**kwargs), src)


def _coerce(name: str, value: Any, annotation: str, src: str) -> Any:
    optional = "None" in annotation
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{src}: field {name!r}: expected a value, got null")
    base = annotation.replace(" | None", "")
    if base == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{src}: field {name!r}: expected true or false, got {value!r}")
    elif base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{src}: field {name!r}: expected an integer, got {value!r}")
    elif base == "float":
        if isinstance(value, str):
            try:
                value = float(value)  # YAML reads 1e-4 as a string
            except ValueError:
                raise ConfigError(
                    f"{src}: field {name!r}: expected a number, got {value!r}"
                ) from None
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise ConfigError(f"{src}: field {name!r}: expected a finite number, got {value!r}")
        value = float(value)
    elif base == "str":
        if not isinstance(value, str) or not value.strip() or "\0" in value:
            raise ConfigError(
                f"{src}: field {name!r}: expected a non-empty string without NUL, got {value!r}"
            )
    return value


#: Sizes a config may set, checked before anything is allocated from them (a batch of 10^12
#: images would grow memory without bound; the limits are far above any real run).
INT_RANGES = {
    "iterations": (1, 10**8),
    "batch_size": (1, 16_384),
    "models_per_step": (1, 64),
    "checkpoint_every": (1, 10**8),
    "log_every": (1, 10**8),
    "eval_every": (0, 10**8),
    "calibration_images": (1, 10**6),
    "eval_images": (1, 10**6),
    "warmup.iterations": (0, 10**8),
    "shrinking.stages": (0, 1000),
    "averaging.every": (1, 10**8),
    "teacher.iterations": (0, 10**8),
    "teacher.models_per_step": (1, 64),
}
#: Upper limits of numbers whose lower limit is checked below: far past any real run, and
#: before the arithmetic of training overflows (``optimizer.lr: 1e308``).
FLOAT_LIMITS = {
    "optimizer.lr": 100.0,
    "warmup.lr": 100.0,
    "optimizer.momentum": 1.0,
    "optimizer.weight_decay": 1.0,
    "optimizer.backbone_lr_mult": 1000.0,
    "optimizer.gamma": 1e6,
    "optimizer.power": 100.0,
    "distillation.temperature": 1000.0,
    "distillation.weight": 1000.0,
    "warmup.temperature": 1000.0,
    "teacher.lr": 100.0,
    "teacher.backbone_lr_mult": 1000.0,
    "teacher.temperature": 1000.0,
    "teacher.logits": 1000.0,
    "teacher.features": 1000.0,
    "teacher.source_ce": 1000.0,
    "teacher.adaptation": 1000.0,
}


def _field(cfg: RunConfig, name: str) -> Any:
    for part in name.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _check(cfg: RunConfig, src: str) -> RunConfig:
    def bad(name: str, expected: str, got: Any) -> ConfigError:
        return ConfigError(f"{src}: field {name!r}: expected {expected}, got {got!r}")

    for name, choices in _CHOICES.items():
        obj, attr = (
            (cfg, name)
            if "." not in name
            else (getattr(cfg, name.split(".")[0]), name.split(".")[1])
        )
        if getattr(obj, attr) not in choices:
            raise bad(
                name, "one of " + ", ".join(str(c) for c in choices if c), getattr(obj, attr)
            )
    for name, (low, high) in INT_RANGES.items():
        check_int(f"{src}: field {name!r}", _field(cfg, name), low, high, ConfigError)
    w, sh = cfg.warmup, cfg.shrinking
    if w.temperature <= 0:
        raise bad("warmup.temperature", "a number above 0", w.temperature)
    if w.lr is not None and w.lr <= 0:
        raise bad("warmup.lr", "a number above 0 (or null: optimizer.lr)", w.lr)
    if not 0 < sh.fraction <= 1:
        raise bad("shrinking.fraction", "a fraction in (0, 1]", sh.fraction)
    t = cfg.teacher
    if t.temperature <= 0:
        raise bad("teacher.temperature", "a number above 0", t.temperature)
    for name in ("logits", "features", "source_ce", "adaptation"):
        if getattr(t, name) < 0:
            raise bad(f"teacher.{name}", "a weight at least 0", getattr(t, name))
    if t.lr is not None and t.lr <= 0:
        raise bad("teacher.lr", "a number above 0 (or null: optimizer.lr)", t.lr)
    if t.backbone_lr_mult is not None and t.backbone_lr_mult < 0:
        raise bad(
            "teacher.backbone_lr_mult",
            "a number at least 0 (or null: optimizer.backbone_lr_mult)",
            t.backbone_lr_mult,
        )
    av = cfg.averaging
    if av.start is not None and not 0 <= av.start < 1:
        raise bad("averaging.start", "a fraction in [0, 1) (or null: off)", av.start)
    for name, high in FLOAT_LIMITS.items():
        value = _field(cfg, name)
        if value is not None and value > high:
            raise bad(name, f"a number at most {high:g}", value)
    if cfg.smallest_budget is not None:
        try:
            parse_budget(cfg.smallest_budget)
        except BudgetError as e:
            raise ConfigError(f"{src}: field 'smallest_budget': {e}") from None
    if not 0 <= cfg.seed < 2**32:
        raise bad("seed", "an integer from 0 to 2**32 - 1", cfg.seed)
    if not DEVICE_PATTERN.fullmatch(cfg.device):
        raise bad("device", DEVICE_EXPECTED, cfg.device)
    o, d = cfg.optimizer, cfg.distillation
    for name, value in (("optimizer.lr", o.lr), ("distillation.temperature", d.temperature)):
        if value <= 0:
            raise bad(name, "a number above 0", value)
    for name, value in (
        ("optimizer.momentum", o.momentum),
        ("optimizer.weight_decay", o.weight_decay),
        ("optimizer.backbone_lr_mult", o.backbone_lr_mult),
        ("distillation.weight", d.weight),
        ("optimizer.gamma", o.gamma),
        ("optimizer.power", o.power),
    ):
        if value < 0:
            raise bad(name, "a number at least 0", value)
    if "/" in cfg.name or cfg.name.startswith("."):
        raise bad("name", "a folder name without '/'", cfg.name)
    return cfg
