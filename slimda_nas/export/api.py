"""``export_model``: cut the chosen sub-network out of the bank (after the same BN re-estimation
the search scored it with), write it as a standalone model, verify the written file, and record
everything a deployment needs in ``model.json``."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimda_nas._check import typed
from slimda_nas._io import write_yaml
from slimda_nas._versions import versions
from slimda_nas.deploy.latency import LatencyRecord, latency_record
from slimda_nas.errors import RunError, UserError
from slimda_nas.evaluate.evaluator import EvalSettings, Evaluator
from slimda_nas.evaluate.ground_truth import ground_truth, has_labels
from slimda_nas.evaluate.labelled import (
    LabelledTarget,
    labelled_accuracy,
    load_labelled_target,
)
from slimda_nas.export import select
from slimda_nas.export.formats import FORMATS, ExportError, parse_formats, state_dict_loader
from slimda_nas.export.model_record import ExportRecord
from slimda_nas.export.staging import check_target, staging
from slimda_nas.export.verify import (
    accuracy_check,
    at_resolution,
    failures,
    full_fp32,
    limited,
    logits_check,
    macs_check,
    upem_check,
)
from slimda_nas.search.record import RESULTS_FILE, ResultsFile
from slimda_nas.search.storage import describe, open_run_storage
from slimda_nas.train.run import TrainedRun, load_run

TOLERANCE = 1e-4  # of the largest logit (at least 1)


@dataclass(kw_only=True)
class ExportResult:
    out: Path
    label: str
    files: dict[str, Path]
    record: ExportRecord  # model.json
    seconds: dict[str, float] = field(default_factory=dict)  # per format: write + verify


@typed
def export_model(
    run: str | Path | TrainedRun | Evaluator,
    *,
    budget: str | None = None,
    sampler: str | None = None,
    study: str | None = None,
    trial: int | None = None,
    config_file: str | Path | None = None,
    largest: bool = False,
    formats: str | list[str] = "torchscript",
    out: str | Path | None = None,
    settings: EvalSettings | None = None,
    scoring: Mapping[str, Any] | None = None,
    storage: str | None = None,
    tolerance: float = TOLERANCE,
    latency: bool = True,
    device: str = "auto",
    data_root: str | None = None,
    target_labelled: str | Path | None = None,
) -> ExportResult:
    """Export one configuration of a run's bank; see ``docs/export.md``.

    Pick it with exactly one of ``budget`` (the chosen model in ``search/results.json``, best UPEM
    over samplers or of ``sampler``), ``study`` + ``trial``, ``config_file`` or ``largest``.
    Candidates are scored with the settings the search recorded, with ``scoring`` (fields of
    :class:`EvalSettings`) changed, unless ``settings`` says otherwise or ``run`` is an
    :class:`Evaluator` already built. What can fail without the images fails before they are
    read. A failed verification raises :class:`ExportError` and leaves nothing behind.
    ``target_labelled``: a folder of labelled target images; the model's accuracy on them is
    recorded (``model.json``'s ``target_labelled``), it plays no part in the choice.
    """
    fmts = parse_formats(formats if isinstance(formats, str) else ",".join(formats))
    _check_tolerance(tolerance)
    evaluator, run = _split(run, device, data_root)
    chosen = choose(
        run,
        budget=budget,
        sampler=sampler,
        study=study,
        trial=trial,
        config_file=config_file,
        largest=largest,
        storage=storage,
        metric=(evaluator.settings.metric if evaluator else (scoring or {}).get("metric")),
    )
    _check_same_bank(chosen, run)
    target = Path(out) if out is not None else run.run_dir / "export" / chosen.label
    check_target(target)
    labelled = _labelled(target_labelled, run)
    evaluator = evaluator or Evaluator(run, settings or _settings(chosen, run.run_dir, scoring))
    return write_export(evaluator, chosen, fmts, target, tolerance, latency, labelled)


@typed
def export_pareto(
    run: str | Path | TrainedRun | Evaluator,
    *,
    formats: str | list[str] = "torchscript",
    out: str | Path | None = None,
    settings: EvalSettings | None = None,
    scoring: Mapping[str, Any] | None = None,
    storage: str | None = None,
    tolerance: float = TOLERANCE,
    latency: bool = True,
    device: str = "auto",
    data_root: str | None = None,
    target_labelled: str | Path | None = None,
) -> list[ExportResult]:
    """Export every configuration on the run's MACs/UPEM Pareto front into ``out/<label>/``."""
    fmts = parse_formats(formats if isinstance(formats, str) else ",".join(formats))
    _check_tolerance(tolerance)
    evaluator, run = _split(run, device, data_root)
    picks = select.pareto(run.run_dir, run.space, run.checkpoint_hash, storage)
    labelled = _labelled(target_labelled, run)
    evaluator = evaluator or Evaluator(run, settings or _settings(picks[0], run.run_dir, scoring))
    base = Path(out) if out is not None else run.run_dir / "export"
    return [
        write_export(evaluator, p, fmts, base / p.label, tolerance, latency, labelled)
        for p in picks
    ]


def _labelled(folder: str | Path | None, run: TrainedRun) -> LabelledTarget | None:
    return None if folder is None else load_labelled_target(folder, run)


def _check_same_bank(chosen: select.Selection, run: TrainedRun) -> None:
    """A pick made on another checkpoint of the same space would export a model the search
    never scored (the report refuses the same data)."""
    if chosen.checkpoint is not None and chosen.checkpoint != run.checkpoint_hash:
        raise ExportError(
            f"{chosen.label}: the search picked it on another bank (checkpoint "
            f"{chosen.checkpoint}); {run.run_dir}'s checkpoint is {run.checkpoint_hash}: "
            f"search again on this bank first"
        )


def _check_tolerance(tolerance: float) -> None:
    if not tolerance > 0:
        raise ExportError(f"--tolerance: expected a positive number, got {tolerance}")


def _split(run, device: str, data_root: str | None) -> tuple[Evaluator | None, TrainedRun]:
    if isinstance(run, Evaluator):
        return run, run.run
    return None, load_run(run, device=device, data_root=data_root)


def choose(
    run: TrainedRun,
    *,
    budget=None,
    sampler=None,
    study=None,
    trial=None,
    config_file=None,
    largest=False,
    storage=None,
    metric=None,
) -> select.Selection:
    """The configuration the arguments name (exactly one way of naming it)."""
    given = [
        n
        for n, v in (
            ("budget", budget),
            ("trial", trial),
            ("config_file", config_file),
            ("largest", largest or None),
        )
        if v is not None
    ]
    if len(given) != 1:
        raise ExportError(
            "export: name the configuration in exactly one way: --budget, --trial with --study, "
            f"--config-file, --largest or --pareto (got {', '.join(given) or 'none'})"
        )
    if sampler is not None and budget is None:
        raise ExportError("--sampler: only with --budget")
    if study is not None and trial is None:
        raise ExportError("--study: only with --trial N")
    if budget is not None:
        return select.by_budget(run.run_dir, budget, sampler, metric)
    if trial is not None:
        if not study:
            raise ExportError("--trial: needs --study NAME (see the studies table of the report)")
        return select.by_trial(
            open_run_storage(storage, run.run_dir),
            study,
            int(trial),
            describe(storage, run.run_dir),
            run.space,
        )
    if config_file is not None:
        return select.from_file(Path(config_file), run.space)
    return select.largest(run.space)


def _settings(
    chosen: select.Selection, run_dir: Path, scoring: Mapping[str, Any] | None
) -> EvalSettings:
    """The settings the search scored ``chosen`` with (else those of results.json), changed by
    ``scoring``."""
    record = chosen.settings
    if record is None:
        results = ResultsFile.read(run_dir)
        record = results.settings if results is not None else {}
    try:
        recorded = EvalSettings.from_record(record or {})
    except UserError as e:  # an edited or damaged record: name the file it came from
        raise RunError(f"{Path(run_dir) / RESULTS_FILE}: the search's settings: {e}") from None
    return dataclasses.replace(recorded, **dict(scoring or {}))


@torch.no_grad()
def calibrated_plain(evaluator: Evaluator, config: dict) -> nn.Module:
    """The materialized sub-network with BN statistics re-estimated exactly as the search did
    (on the bank, over the evaluator's calibration batches), on the CPU, in eval mode."""
    with evaluator.calibrated(config):
        plain = evaluator.bank.materialize(config, evaluator.head)
    return plain.cpu().eval()


def write_export(
    evaluator: Evaluator,
    chosen: select.Selection,
    formats: list[str],
    out: Path,
    tolerance: float = TOLERANCE,
    latency: bool = True,
    labelled: LabelledTarget | None = None,
) -> ExportResult:
    """Write, verify and record ``chosen`` in ``formats`` into ``out`` (atomically); with
    ``latency``, its batch-1 latency on this machine beside the full-width model's; with
    ``labelled``, its accuracy on those labelled target images (reported only)."""
    config = evaluator.run.space.check_config(chosen.config, origin=chosen.label)
    # UPEM as the search computed it (default numerics); the exported model and the logits it
    # is compared with in true fp32 (see full_fp32)
    upem = evaluator.label_free_scores(evaluator.outputs(config))
    subject = _Subject.of(evaluator, config)
    searched = chosen.point.macs if chosen.point is not None else None
    with staging(out) as tmp:
        checks = {FORMATS[name].file: subject.write(name, tmp, tolerance) for name in formats}
        verification = {
            "macs": macs_check(
                subject.plain, subject.shape, evaluator.cost.macs(config), searched
            ),
            "upem": upem_check(upem, chosen, evaluator),
            "files": checks,
        }
        problems = failures(verification)
        verification["passed"] = not problems
        record = _record(
            evaluator,
            chosen,
            config,
            subject.plain,
            upem,
            subject.bank_accuracy,
            evaluator.anchor_macs,
            verification,
            formats,
        )
        if latency:
            record = dataclasses.replace(record, latency=subject.latency().to_dict())
        if labelled is not None:
            accuracy = labelled_accuracy(evaluator, labelled, {chosen.label: config})
            record = dataclasses.replace(record, target_labelled=accuracy)
        write_yaml(tmp / "config.yaml", dict(config))
        record.write(tmp)
        if problems:
            raise ExportError(f"export {chosen.label}: verification failed: {'; '.join(problems)}")
    return ExportResult(
        out=out,
        label=chosen.label,
        files={name: out / FORMATS[name].file for name in formats},
        record=record,
        seconds={
            name: checks[FORMATS[name].file]["seconds"]["write_and_verify"] for name in formats
        },
    )


@dataclass(frozen=True)
class _Subject:
    """The exported sub-network and what each written format of it is checked against: the
    bank's logits on the scoring images and, where the target has labels, its accuracy."""

    evaluator: Evaluator
    config: dict
    plain: nn.Module
    shape: tuple[int, ...]  # the input at the configuration's resolution
    scoring: list[torch.Tensor]
    reference: torch.Tensor
    test_images: int  # labelled target test images (0: the target has no labels)
    bank_accuracy: float | None

    @classmethod
    def of(cls, evaluator: Evaluator, config: dict) -> _Subject:
        with full_fp32():
            plain = calibrated_plain(evaluator, config)
            reference = evaluator.logits(config).cpu()
        labels = has_labels(evaluator)
        return cls(
            evaluator=evaluator,
            config=config,
            plain=plain,
            shape=evaluator.run.space.input_shape_at(config),
            scoring=[x.cpu() for x in evaluator.scoring],
            reference=reference,
            test_images=len(evaluator.run.data().target_test) if labels else 0,
            bank_accuracy=ground_truth(evaluator, [config])[0] if labels else None,
        )

    def _test_batches(self, limit: int):
        from slimda_nas.data import eval_batches

        test = self.evaluator.run.data().target_test
        batches = eval_batches(test, self.evaluator.settings.batch_size, with_labels=True)
        return limited(batches, limit)

    def write(self, name: str, folder: Path, tolerance: float) -> dict[str, Any]:
        """Write format ``name`` into ``folder``, load it back as its runtime would, and check
        its logits (and accuracy) against the bank's sub-network."""
        fmt = FORMATS[name]
        t0 = time.perf_counter()
        path = folder / fmt.file
        fmt.save(self.plain, torch.zeros(2, *self.shape), path)
        t_save = time.perf_counter() - t0
        empty = state_dict_loader(lambda: _empty(self.evaluator, self.config))
        runner = at_resolution((fmt.load or empty)(path), self.shape[-1])
        limit = fmt.max_images()
        check: dict[str, Any] = {
            "format": name,
            "runtime": fmt.runtime(),
            "bytes": path.stat().st_size,
            "logits": logits_check(runner, self.scoring, self.reference, tolerance, limit),
        }
        if self.test_images:
            n = self.test_images if limit is None else min(limit, self.test_images)
            bank = self.bank_accuracy
            if n < self.test_images:
                with full_fp32():
                    bank = self.evaluator.accuracy(self.config, self._test_batches(n))
            check["accuracy"] = accuracy_check(runner, self._test_batches(n), bank, n)
        seconds = time.perf_counter() - t0
        check["seconds"] = {"write": round(t_save, 3), "write_and_verify": round(seconds, 3)}
        return check

    def latency(self) -> LatencyRecord:
        """Batch-1 latency of the model and of the full-width model on this machine."""
        ev, largest = self.evaluator, self.evaluator.run.space.largest()
        return latency_record(
            ev.run.run_dir,
            ev.run.checkpoint_hash,
            {
                "model": (self.config, lambda: self.plain),
                "full_width": (largest, lambda: calibrated_plain(ev, largest)),
            },
            ev.run.space.input_shape_at,
        )


def _empty(evaluator: Evaluator, config: dict) -> nn.Module:
    """The architecture at ``config`` to load a state_dict into (its weights are overwritten)."""
    return evaluator.bank.materialize(config, evaluator.head).cpu()


def _record(
    evaluator: Evaluator,
    chosen: select.Selection,
    config: dict,
    plain: nn.Module,
    upem: dict,
    accuracy: float | None,
    anchor_macs: int,
    verification: dict,
    formats: list[str],
) -> ExportRecord:
    run, space = evaluator.run, evaluator.run.space
    data = run.data()
    macs = verification["macs"]["thop"]
    searched = chosen.point.upem if chosen.point is not None else {}
    return ExportRecord(
        label=chosen.label,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        files={FORMATS[f].file: f for f in formats},
        input={
            "shape": [1, *space.input_shape_at(config)],
            "size": space.resolution(config),
            "batch": "dynamic (any size >= 1)",
            "dtype": "float32",
            "layout": "NCHW, RGB",
            "normalization": {
                "mean": list(data.mean),
                "std": list(data.std),
                "formula": "(pixel / 255 - mean) / std, per channel",
            },
            "preprocess": _preprocess(data, space.resolution(config)),
            "resize": _resize_rule(data, space.resolution(config)),
        },
        output={"logits": len(run.bank.classes), "head": evaluator.head},
        classes=list(run.bank.classes),
        config=dict(config),
        channels=space.unit_channels(config),
        macs=macs,
        params=verification["macs"]["params"],
        anchor_macs=anchor_macs,
        fraction_of_anchor=macs / anchor_macs,
        budget=chosen.budget.text if chosen.budget else None,
        budget_macs=chosen.budget.macs if chosen.budget else None,
        upem=upem,
        upem_search=searched or None,
        metric=evaluator.settings.metric,
        accuracy=accuracy,
        origin=chosen.origin,
        run={
            "run": str(run.run_dir),
            "task": run.task,
            "method": run.method,
            "checkpoint": run.checkpoint_hash,
            "space": {"name": space.name, "hash": space.hash},
            "backbone": space.backbone,
        },
        settings=evaluator.record(),
        verification=verification,
        versions=versions(),
    )


def _resize_rule(data, size: int) -> dict:
    """The resize rule as data, for ``slimda-nas predict`` (and any program) to follow; a
    configuration below the stored size adds ``shrink_to``: the normalised S x S input shrunk
    as the bank saw it (slim/elastic.py: resize_input)."""
    from slimda_nas.data.transforms import CropTransform, resize_size

    s = data.input_size
    if isinstance(data.target_test.transform, CropTransform):
        rule = {
            "rule": "shorter_side_then_center_crop",
            "shorter_side": resize_size(s),
            "crop": s,
            "interpolation": "bilinear (PIL, antialiased)",
        }
    else:
        rule = {"rule": "resize", "size": [s, s], "interpolation": "bilinear (antialiased)"}
    if size != s:
        rule["shrink_to"] = {
            "size": [size, size],
            "interpolation": "bilinear (torch interpolate, antialiased), after normalising",
        }
    return rule


def _preprocess(data, size: int) -> str:
    from slimda_nas.data.transforms import CropTransform, resize_size

    s = data.input_size
    # a lower resolution is the stored image shrunk, as the bank saw it (slim/elastic.py)
    shrink = "" if size == s else f", resize to {size}x{size} (bilinear, antialiased)"
    if isinstance(data.target_test.transform, CropTransform):
        return (
            f"resize the shorter side to {resize_size(s)} px (bilinear, antialiased), centre-crop "
            f"{s}x{s}{shrink}, then normalise"
        )
    return (
        f"{s}x{s} RGB (grey digits replicated to 3 channels, bilinear resize){shrink}, "
        "then normalise"
    )
