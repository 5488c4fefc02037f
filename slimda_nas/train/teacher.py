"""The teacher stage (after adaptation): every width learns a frozen full-width teacher whose
outputs are cached, so a step costs only the students' passes.

The teacher is the bank's largest model where the stage begins (after channel ordering). Its
outputs are computed once on fixed *views* of every source and target training image (the
evaluation crop and its mirror), each domain with its own re-estimated batch-norm statistics
(domain-specific BN, as at deployment where BN is re-estimated on target images), and kept in
the run folder (``teacher_cache.pt``) so a resumed run reads the very same targets. Students
learn every head's logits (softened by a temperature), the stage outputs (dense distillation:
their first channels against the teacher's, average-pooled to at most 7x7) and the source
labels. No target label is read. With ``adaptation`` above 0 the largest model keeps
adapting (the run's method on it, as in the adaptation phase) while the narrower ones learn
the cache.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slimda_nas._io import atomic_write
from slimda_nas.bank import ModelBank
from slimda_nas.errors import CheckpointError
from slimda_nas.methods import Method
from slimda_nas.slim.bn_recal import preserved_bn_stats, recalibrate_bn
from slimda_nas.slim.elastic import Setting, apply_setting
from slimda_nas.train.config import RunConfig, TeacherConfig
from slimda_nas.train.step import domain_batches

CACHE = "teacher_cache.pt"
VIEWS = 2  # the evaluation crop and its mirror
HINT_SIZE = 7  # stage outputs are compared average-pooled to at most this size
_FORMAT = "slimda-nas/teacher-cache/1"
_DOMAINS = ("source", "target")


def view_batch(images, items: Tensor) -> Tensor:
    """Network inputs of view ``items`` (image ``item // VIEWS``, mirrored when odd)."""
    x = images.eval_batch(items // VIEWS)
    mirrored = (items % VIEWS) == 1
    if bool(mirrored.any()):
        x[mirrored] = x[mirrored].flip(-1)
    return x


def _pool(t: Tensor, size: tuple[int, int] | None = None) -> Tensor:
    if t.dim() != 4:
        return t
    if size is None:
        size = (min(t.shape[-2], HINT_SIZE), min(t.shape[-1], HINT_SIZE))
    return t if tuple(t.shape[-2:]) == tuple(size) else F.adaptive_avg_pool2d(t, size)


@contextlib.contextmanager
def stage_outputs(model: nn.Module, names: Sequence[str]) -> Iterator[list[Tensor]]:
    """Collect the pooled outputs of the modules ``names`` during the forwards in the block."""
    modules = dict(model.named_modules())
    out: list[Tensor] = []
    handles = [
        modules[n].register_forward_hook(lambda m, i, o: out.append(_pool(o))) for n in names
    ]
    try:
        yield out
    finally:
        for h in handles:
            h.remove()


@dataclass
class TeacherCache:
    """The teacher's outputs per domain: ``logits`` (views, heads, classes) float32 and
    ``hints`` (one (views, C, h, w) float16 tensor per stage output)."""

    logits: dict[str, Tensor]
    hints: dict[str, list[Tensor]]
    config_hash: str

    def targets(
        self, domain: str, items: Tensor, device: torch.device
    ) -> tuple[Tensor, list[Tensor]]:
        return (
            self.logits[domain][items].to(device),
            [h[items].to(device, torch.float32) for h in self.hints[domain]],
        )

    def save(self, path: Path) -> None:
        blob = {
            "format": _FORMAT,
            "config_hash": self.config_hash,
            "logits": self.logits,
            "hints": self.hints,
        }
        atomic_write(path, lambda f: torch.save(blob, f))

    @classmethod
    def load(cls, path: Path, config_hash: str) -> TeacherCache:
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for a damaged file
            raise CheckpointError(
                f"{path}: unreadable teacher cache ({type(e).__name__}); delete the run folder's "
                "checkpoint.pt and this file to train again"
            ) from None
        if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
            raise CheckpointError(f"{path}: not a slimda-nas teacher cache")
        if raw.get("config_hash") != config_hash:
            raise CheckpointError(f"{path}: belongs to another run config (training hash)")
        return cls(raw["logits"], raw["hints"], config_hash)


@torch.no_grad()
def build_cache(
    bank: ModelBank,
    data,
    *,
    calibration_images: int,
    seed: int,
    config_hash: str,
    channels_last: bool = False,
    batch_size: int = 64,
) -> TeacherCache:
    """Run the largest model over every view of both domains' training images."""
    from slimda_nas.data import eval_batches, fixed_subset

    model = bank.model
    device = next(model.parameters()).device
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    logits: dict[str, Tensor] = {}
    hints: dict[str, list[Tensor]] = {}
    was_training = model.training
    with bank.use(bank.space.largest()), preserved_bn_stats(model):
        for domain, images in zip(_DOMAINS, (data.source_train, data.target_train), strict=True):
            calib = fixed_subset(images, calibration_images, seed)
            recalibrate_bn(
                model,
                (x.to(device, memory_format=fmt) for x in eval_batches(images, batch_size, calib)),
                forward=model.forward_features,
            )
            model.eval()
            items = torch.arange(len(images) * VIEWS)
            chunks, hint_chunks = [], []
            for start in range(0, len(items), batch_size):
                x = view_batch(images, items[start : start + batch_size])
                head_logits, out = teacher_outputs(model, x.to(device, memory_format=fmt))
                chunks.append(head_logits.float().cpu())
                hint_chunks.append([t.half().cpu().contiguous() for t in out])
            logits[domain] = torch.cat(chunks)
            hints[domain] = [torch.cat(parts) for parts in zip(*hint_chunks, strict=True)]
    model.train(was_training)
    return TeacherCache(logits, hints, config_hash)


def teacher_outputs(model: nn.Module, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """The model's logits of every head, (N, heads, K), and its pooled stage outputs on ``x``:
    what the cache holds for each view."""
    with stage_outputs(model, model.stage_outputs()) as out:
        heads = model(x, heads=model.head_names)
    return torch.stack([heads[h] for h in model.head_names], 1), list(out)


def freeze_teacher(bank: ModelBank, data, cfg: RunConfig, save: bool) -> TeacherCache:
    """The teacher's outputs where its stage begins, written to the run folder if ``save``."""
    cache = build_cache(
        bank,
        data,
        calibration_images=cfg.calibration_images,
        seed=cfg.seed,
        config_hash=cfg.training_hash(),
        channels_last=cfg.uses_channels_last(next(bank.model.parameters()).device.type),
    )
    if save:
        cache.save(cfg.run_dir / CACHE)
    bank.model.train()
    return cache


def next_views(streams, data, cache: TeacherCache, batch_size: int, device: torch.device):
    """The next source and target views with the teacher's targets: TeacherStep's inputs."""
    src, tgt = streams
    items_src, items_tgt = src.take(batch_size), tgt.take(batch_size)
    y_src = data.source_train.labels[items_src // VIEWS]
    return (
        view_batch(data.source_train, items_src).to(device),
        y_src.to(device),
        cache.targets("source", items_src, device),
        view_batch(data.target_train, items_tgt).to(device),
        cache.targets("target", items_tgt, device),
    )


class TeacherStep(nn.Module):
    """One step of the teacher stage over the sampled widths; returns (loss, detached terms).
    The first width is the largest model (the sandwich samples it first): with
    ``options.adaptation`` it learns ``method``'s loss instead of the cache."""

    def __init__(
        self,
        model: nn.Module,
        options: TeacherConfig,
        channels_last: bool = False,
        separate_domains: bool = True,
        method: Method | None = None,
    ) -> None:
        super().__init__()
        if options.adaptation and method is None:
            raise ValueError("teacher.adaptation needs the run's method")
        self.model = model
        self.options = options
        self.channels_last = channels_last
        self.separate_domains = separate_domains
        self.method = method

    def forward(
        self,
        x_src: Tensor,
        y_src: Tensor,
        teacher_src: tuple[Tensor, list[Tensor]],
        x_tgt: Tensor,
        teacher_tgt: tuple[Tensor, list[Tensor]],
        widths: Sequence[Setting | dict[str, int]],
    ) -> tuple[Tensor, dict[str, Tensor]]:
        o, model = self.options, self.model
        n_src = len(x_src)
        batches = domain_batches(x_src, x_tgt, self.separate_domains, self.channels_last)
        t_logits = torch.cat([teacher_src[0], teacher_tgt[0]])
        t_hints = [torch.cat(pair) for pair in zip(teacher_src[1], teacher_tgt[1], strict=True)]
        kd = feat = ce = x_src.new_zeros(())
        adapted: dict[str, Tensor] = {}
        for i, w in enumerate(widths):
            # a configuration's setting (or its layer widths alone); stage_outputs() then
            # names each stage's last block that runs at the sampled depth
            apply_setting(model, w if isinstance(w, Setting) else Setting(widths=w))
            if i == 0 and o.adaptation:
                adapted = self._adaptation_terms(batches, y_src, n_src)
                continue
            with stage_outputs(model, model.stage_outputs()) as out:
                feats = torch.cat([model.forward_features(x) for x in batches])
            # separate forwards give every stage output of the source, then of the target
            half = len(out) // len(batches)
            hints = (
                out if len(batches) == 1 else [torch.cat(p) for p in zip(out[:half], out[half:])]
            )
            logits = torch.stack([getattr(model, h)(feats) for h in model.head_names], 1)
            if o.logits:
                kd = kd + _soft_kl(logits, t_logits, o.temperature)
            if o.features and hints:
                feat = feat + sum(_relative_mse(s, t) for s, t in zip(hints, t_hints)) / len(hints)
            if o.source_ce:
                src = logits[:n_src]
                ce = ce + sum(F.cross_entropy(src[:, i], y_src) for i in range(src.shape[1]))
        apply_setting(model, Setting())
        terms = {
            "teacher_kd": o.logits * kd,
            "teacher_features": o.features * feat,
            "teacher_ce": o.source_ce * ce,
            **{f"largest_{k}": o.adaptation * v for k, v in adapted.items()},
        }
        total = sum(terms.values())
        return total, {k: v.detach() for k, v in terms.items()}

    def _adaptation_terms(self, batches: list[Tensor], y_src: Tensor, n_src: int) -> dict:
        """The method's loss on the model as set (the adaptation phase's step with m = 1, its
        ramps at their end: adaptation is over)."""
        feats = torch.cat([self.model.forward_features(x) for x in batches])
        terms, state = self.method.model_terms(
            self.model, feats[:n_src], feats[n_src:], y_src, 1.0
        )
        return {**terms, **self.method.ensemble_terms(self.model, [state], 1.0)}


def _soft_kl(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """KL(teacher || student) of softened predictions, summed over heads, mean over images."""
    t = temperature
    s = F.log_softmax(student.flatten(0, 1) / t, dim=-1)
    p = F.softmax(teacher.flatten(0, 1) / t, dim=-1)
    return F.kl_div(s, p, reduction="sum") / len(student) * t * t


def _relative_mse(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean squared error of the student's channels against the teacher's first ones, relative
    to the teacher's mean square (so every stage weighs alike)."""
    target = teacher[:, : student.shape[1]]
    student = _pool(student, tuple(target.shape[-2:])) if student.dim() == 4 else student
    return (student - target).pow(2).mean() / target.pow(2).mean().clamp_min(1e-6)
