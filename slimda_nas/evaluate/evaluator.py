"""Score candidate sub-networks of a trained bank: BN re-estimation, then UPEM against the anchor.

The two fixed subsets of unlabelled target TRAIN images (calibration, scoring) are drawn once,
transformed once and kept as tensors on the device, so a candidate costs one calibration pass
and one scoring pass. The anchor's outputs are cached on disk per (checkpoint, subsets, head).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from slimda_nas._check import check_fields
from slimda_nas._io import atomic_write
from slimda_nas.cost.macs import CostModel
from slimda_nas.errors import ConfigError, Notice, RunError
from slimda_nas.evaluate.scores import DEFAULT_METRIC, SCORES, compute_scores
from slimda_nas.evaluate.scoring_record import ScoringRecord, Subsets
from slimda_nas.slim.bn_recal import preserved_bn_stats, recalibrate_bn
from slimda_nas.train.run import TrainedRun

_CACHE_LIMIT_BYTES = 512 * 2**20  # keep transformed test images in memory below this size
ENSEMBLE_RATIOS = (0.875, 0.75, 0.625)
"""Uniform widths whose mean prediction, with the anchor's, is the ensemble reference."""


@dataclass(frozen=True, kw_only=True)
class EvalSettings:
    """How candidates are scored; recorded with every score."""

    calibration_images: int = 1000
    scoring_images: int = 4000  # 1,000 ranks same-budget models measurably worse (BENCHMARKS.md)
    subset_seed: int = 0
    batch_size: int = 500
    head: str | None = None  # default: the bank's deployed head
    metric: str = DEFAULT_METRIC  # the objective; every metric is reported
    recalibrate_bn: bool = True
    anchor: Mapping[str, float | int] | None = None  # default: the largest configuration

    def __post_init__(self) -> None:
        check_fields(self)
        if self.metric not in SCORES:
            raise ConfigError(
                f"--metric: expected one of {', '.join(SCORES)}, got {self.metric!r}"
            )
        # BN re-estimation needs two images in every batch to have a batch variance
        two = 2 if self.recalibrate_bn else 1
        for name, low, high in (
            ("calibration_images", two, 10**6),
            ("scoring_images", 1, 10**6),
            ("batch_size", two, 16_384),
            ("subset_seed", 0, 2**32 - 1),  # numpy's seeds
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                why = " (BN re-estimation needs 2 images per batch)" if low == 2 else ""
                raise ConfigError(
                    f"--{name.replace('_', '-')}: expected an integer of at least {low} and at "
                    f"most {high:,}{why}, got {value!r}"
                )

    @classmethod
    def from_record(cls, record: Mapping | ScoringRecord) -> EvalSettings:
        """The settings that reproduce a recorded :meth:`Evaluator.record` (e.g. for exports)."""
        r = record if isinstance(record, ScoringRecord) else ScoringRecord.from_dict(record)
        d, sub = cls(), r.subsets
        return cls(
            calibration_images=d.calibration_images
            if sub.calibration is None
            else sub.calibration,
            scoring_images=d.scoring_images if sub.scoring is None else sub.scoring,
            subset_seed=d.subset_seed if sub.seed is None else sub.seed,
            batch_size=d.batch_size if sub.batch_size is None else sub.batch_size,
            head=r.head,
            metric=r.metric,
            recalibrate_bn=r.recalibrate_bn,
            anchor=r.anchor,
        )


@dataclass(kw_only=True)
class CandidateScore:
    config: dict
    macs: int
    params: int
    upem: dict[str, float]
    seconds: float
    metric: str = DEFAULT_METRIC
    accuracy: float | None = None  # ground truth, for reports only

    @property
    def value(self) -> float:
        """The UPEM objective (smaller is better)."""
        return self.upem[self.metric]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Evaluator:
    """Scores configurations of ``run``'s bank. Build once, call :meth:`score` many times."""

    run: TrainedRun
    settings: EvalSettings = field(default_factory=EvalSettings)
    cache: bool = True

    def __post_init__(self) -> None:
        from slimda_nas.data import fixed_subset

        s = self.settings
        self.bank = self.run.bank
        self.head = s.head or self.bank.deploy_head
        if self.head not in self.bank.model.head_names:
            raise ConfigError(
                f"--head: expected one of {', '.join(self.bank.model.head_names)}, got {self.head!r}"
            )
        self.anchor_config = self.run.space.check_config(
            s.anchor or self.run.space.largest(), origin="anchor"
        )
        data = self.run.data().target_train  # unlabelled view: reading labels here would raise
        index = fixed_subset(data, s.calibration_images + s.scoring_images, seed=s.subset_seed)
        if len(index) < 3:
            raise ConfigError(f"{data.name}: too few target images to score ({len(index)})")
        n_cal = max(2, min(s.calibration_images, len(index) // 2))
        device = self.run.device
        self.calibration = [
            data.eval_batch(part).to(device) for part in _even_split(index[:n_cal], s.batch_size)
        ]
        self.scoring = [
            data.eval_batch(part).to(device) for part in _even_split(index[n_cal:], s.batch_size)
        ]
        self.subsets = Subsets(
            calibration=n_cal,
            scoring=len(index) - n_cal,
            seed=s.subset_seed,
            split=data.name,
            batch_size=s.batch_size,
        )
        self.cost = CostModel(self.bank, self.head)
        self.anchor_macs = self.cost.macs(self.anchor_config)  # what budget fractions are of
        self.heads = self._scored_heads()
        self.ensemble_configs = self._ensemble_configs()
        self.references = self._references()
        self.anchor_log_p = self.references["anchor"][self.head]
        if not torch.isfinite(self.anchor_log_p).all():
            raise RunError(
                f"{self.run.run_dir}: the anchor's outputs are not finite (NaN or infinite "
                f"weights in checkpoint {self.run.checkpoint_hash}?); UPEM cannot be measured "
                "against it; re-train or restore the checkpoint"
            )
        self._test: list | None = None

    # -- scoring -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def calibrated(self, config: Mapping) -> Iterator[torch.nn.Module]:
        """The bank's model at ``config``, BN statistics re-estimated as scoring does, in eval
        mode; widths, statistics and mode are restored afterwards."""
        model = self.bank.model
        was_training = model.training
        with self.bank.use(config), preserved_bn_stats(model):
            if self.settings.recalibrate_bn:
                recalibrate_bn(model, self.calibration, forward=model.forward_features)
            model.eval()
            try:
                yield model
            finally:
                model.train(was_training)

    @torch.no_grad()
    def outputs(
        self, config: Mapping, batches: Iterable[torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """Log-probabilities of every scored head at ``config`` after BN re-estimation, from one
        forward pass per batch (bank left unchanged)."""
        with self.calibrated(config) as model:
            parts = [model(x, heads=list(self.heads)) for x in (batches or self.scoring)]
        return {
            h: F.log_softmax(torch.cat([p[h] for p in parts]).double(), dim=1).float()
            for h in self.heads
        }

    @torch.no_grad()
    def logits(
        self, config: Mapping, batches: Iterable[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Deployed-head logits at ``config`` after BN re-estimation (bank left unchanged)."""
        with self.calibrated(config) as model:
            out = torch.cat(
                [model(x, heads=[self.head])[self.head] for x in (batches or self.scoring)]
            )
        return out.float()

    def label_free_scores(
        self, log_q: Mapping[str, torch.Tensor], images: int | None = None
    ) -> dict[str, float]:
        """Every registered score of a candidate's outputs (the first ``images`` only)."""
        return compute_scores(log_q, self.references, self.head, images=images)

    def score(self, config: Mapping) -> CandidateScore:
        """MACs, parameters and every label-free score of one configuration."""
        config = self.run.space.check_config(config)
        t0 = time.perf_counter()
        upem = self.label_free_scores(self.outputs(config))
        if not math.isfinite(upem[self.settings.metric]):
            warnings.warn(
                Notice(
                    f"configuration {config}: its outputs are not finite (UPEM "
                    f"{upem[self.settings.metric]}); scored as the worst possible"
                ),
                stacklevel=2,
            )
        return CandidateScore(
            config=dict(config),
            macs=self.cost.macs(config),
            params=self.cost.params(config),
            upem=upem,
            seconds=time.perf_counter() - t0,
            metric=self.settings.metric,
        )

    def score_many(self, configs: Sequence[Mapping]) -> list[CandidateScore]:
        return [self.score(c) for c in configs]

    # -- ground truth --------------------------------------------------------------------------
    def accuracy(
        self,
        config: Mapping,
        labelled: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> float:
        """Top-1 accuracy on the labelled target test split (or the ``labelled`` batches), after
        the same BN re-estimation.

        For reports, exports and ranking checks only: the search never calls it.
        """
        labels: list[torch.Tensor] = []
        device = self.run.device

        def images():
            for x, y in self._test_batches() if labelled is None else labelled:
                labels.append(y)
                yield x.to(device)

        predicted = self.logits(self.run.space.check_config(config), images()).argmax(1).cpu()
        return float((predicted == torch.cat(labels)).float().mean())

    def correct(self, config: Mapping) -> torch.Tensor:
        """Per test image, whether the deployed head at ``config`` is right (a bool tensor over
        the labelled target test split, in its order). For ranking checks only."""
        labels: list[torch.Tensor] = []
        device = self.run.device

        def images():
            for x, y in self._test_batches():
                labels.append(y)
                yield x.to(device)

        predicted = self.logits(self.run.space.check_config(config), images()).argmax(1).cpu()
        return predicted == torch.cat(labels)

    def _test_batches(self) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        from slimda_nas.data import eval_batches

        device = self.run.device
        if self._test is None:
            test = self.run.data().target_test
            batches = (
                (x.to(device), y)
                for x, y in eval_batches(test, self.settings.batch_size, with_labels=True)
            )
            if len(test) * self.calibration[0][0].numel() * 4 > _CACHE_LIMIT_BYTES:
                return batches  # too big to keep: transformed again each time
            self._test = list(batches)
        return self._test

    # -- references: the anchor and the ensemble, cached -----------------------------------------
    def _scored_heads(self) -> tuple[str, ...]:
        """The heads scores are computed on: the deployed (or chosen) head first, then the
        other heads the method trained."""
        from slimda_nas.methods import METHODS

        method = METHODS.get(self.run.method)
        trained = method.trained_heads if method else self.bank.model.head_names
        others = [h for h in trained if h != self.head and h in self.bank.model.head_names]
        return (self.head, *others)

    def _ensemble_configs(self) -> list[dict]:
        """Wide configurations whose mean prediction is the ensemble reference: the anchor and
        the uniform widths below it (distinct ones)."""
        space = self.run.space
        out, seen = [self.anchor_config], {space.to_indices(self.anchor_config)}
        for ratio in ENSEMBLE_RATIOS:
            c = space.uniform(ratio)
            if space.to_indices(c) not in seen:
                seen.add(space.to_indices(c))
                out.append(c)
        return out

    def cache_key(self) -> dict:
        s = self.settings
        return {
            "checkpoint": self.run.checkpoint_hash,
            "head": self.head,
            "heads": list(self.heads),
            "anchor": self.anchor_config,
            "ensemble": self.ensemble_configs,
            "subsets": self.subsets.to_dict(),
            "recalibrate_bn": s.recalibrate_bn,
            "task": self.run.task,
        }

    def _references(self) -> dict[str, dict[str, torch.Tensor]]:
        """Log-probabilities per head of the anchor and of the ensemble (the log of the mean
        of its members' probabilities), computed once per checkpoint and subsets, cached."""
        key = self.cache_key()
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        path = self.run.run_dir / "cache" / f"references-{digest}.pt"
        device = self.run.device
        if self.cache and path.is_file():
            try:
                stored = torch.load(path, map_location="cpu", weights_only=True)
                refs = stored["references"]
                if stored.get("key") == key and all(
                    len(refs[r][h]) == self.subsets.scoring
                    for r in ("anchor", "ensemble")
                    for h in self.heads
                ):
                    return {r: {h: t.to(device) for h, t in v.items()} for r, v in refs.items()}
            except Exception:  # a damaged cache is recomputed, never trusted
                pass
        anchor = self.outputs(self.anchor_config)
        members = [anchor] + [self.outputs(c) for c in self.ensemble_configs[1:]]
        ensemble = {
            h: torch.log(torch.stack([m[h].double().exp() for m in members]).mean(0)).float()
            for h in self.heads
        }
        refs = {"anchor": anchor, "ensemble": ensemble}
        if self.cache:
            blob = {
                "key": key,
                "references": {r: {h: t.cpu() for h, t in v.items()} for r, v in refs.items()},
            }
            try:
                atomic_write(path, lambda f: torch.save(blob, f))
            except OSError:
                pass  # read-only run folder: scores are still right, only slower next time
        return refs

    def settings_hash(self) -> str:
        """Short identity of :meth:`record` (names studies and score caches)."""
        return hashlib.sha256(json.dumps(self.record(), sort_keys=True).encode()).hexdigest()[:6]

    def scoring_record(self) -> ScoringRecord:
        """Settings to store with every score (reproducibility)."""
        return ScoringRecord(
            head=self.head,
            metric=self.settings.metric,
            anchor=self.anchor_config,
            ensemble_ratios=ENSEMBLE_RATIOS,
            subsets=self.subsets,
            recalibrate_bn=self.settings.recalibrate_bn,
            checkpoint=self.run.checkpoint_hash,
        )

    def record(self) -> dict:
        """:meth:`scoring_record` as stored (its hash names studies and score caches)."""
        return self.scoring_record().to_dict()


def _even_split(index: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, ...]:
    """Batches of near-equal size (never a lone image, which batch norm cannot normalise:
    3 images in batches of 2 are one batch of 3)."""
    parts = -(-len(index) // batch_size)
    if batch_size > 1:
        parts = min(parts, len(index) // 2)
    return torch.tensor_split(index, max(1, parts))
