"""``export_model``: cut the chosen sub-network out of the bank (after the same BN re-estimation
the search scored it with), write it as a standalone model, verify the written file, and record
everything a deployment needs in ``model.json``."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimda_nas._io import write_json, write_yaml
from slimda_nas.evaluate.evaluator import EvalSettings, Evaluator
from slimda_nas.evaluate.ground_truth import ground_truth, has_labels
from slimda_nas.evaluate.latency import latency_record
from slimda_nas.export import select
from slimda_nas.export.formats import FORMATS, ExportError, parse_formats, state_dict_loader
from slimda_nas.export.model_record import MODEL_FILE, build_record
from slimda_nas.export.staging import check_target, staging
from slimda_nas.export.verify import (
    accuracy_check,
    failures,
    full_fp32,
    limited,
    logits_check,
    macs_check,
    upem_check,
)
from slimda_nas.search.record import ResultsFile
from slimda_nas.search.storage import describe, open_run_storage
from slimda_nas.train.run import TrainedRun, load_run

TOLERANCE = 1e-4  # of the largest logit (at least 1)


@dataclass(kw_only=True)
class ExportResult:
    out: Path
    label: str
    files: dict[str, Path]
    record: dict
    seconds: dict[str, float] = field(default_factory=dict)  # per format: write + verify


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
) -> ExportResult:
    """Export one configuration of a run's bank; see ``docs/export.md``.

    Pick it with exactly one of ``budget`` (the chosen model in ``search/results.json``, best UPEM
    over samplers or of ``sampler``), ``study`` + ``trial``, ``config_file`` or ``largest``.
    Candidates are scored with the settings the search recorded, with ``scoring`` (fields of
    :class:`EvalSettings`) changed, unless ``settings`` says otherwise or ``run`` is an
    :class:`Evaluator` already built. What can fail without the images fails before they are
    read. A failed verification raises :class:`ExportError` and leaves nothing behind.
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
    evaluator = evaluator or Evaluator(run, settings or _settings(chosen, run.run_dir, scoring))
    return write_export(evaluator, chosen, fmts, target, tolerance, latency)


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
) -> list[ExportResult]:
    """Export every configuration on the run's MACs/UPEM Pareto front into ``out/<label>/``."""
    fmts = parse_formats(formats if isinstance(formats, str) else ",".join(formats))
    _check_tolerance(tolerance)
    evaluator, run = _split(run, device, data_root)
    picks = select.pareto(run.run_dir, run.space, run.checkpoint_hash, storage)
    evaluator = evaluator or Evaluator(run, settings or _settings(picks[0], run.run_dir, scoring))
    base = Path(out) if out is not None else run.run_dir / "export"
    return [write_export(evaluator, p, fmts, base / p.label, tolerance, latency) for p in picks]


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
    return dataclasses.replace(EvalSettings.from_record(record or {}), **dict(scoring or {}))


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
) -> ExportResult:
    """Write, verify and record ``chosen`` in ``formats`` into ``out`` (atomically); with
    ``latency``, its batch-1 latency on this machine beside the full-width model's."""
    config = evaluator.run.space.check_config(chosen.config, origin=chosen.label)
    ref = _Reference.of(evaluator, config, chosen)
    files, seconds, checks = {}, {}, {}
    with staging(out) as tmp:
        for name in formats:
            file = FORMATS[name].file
            checks[file], seconds[name] = _write_and_check(name, tmp / file, ref, tolerance)
            files[name] = out / file
        verification = {
            "macs": ref.macs,
            "upem": upem_check(ref.upem, chosen, evaluator),
            "files": checks,
        }
        problems = failures(verification)
        verification["passed"] = not problems
        record = build_record(
            evaluator,
            chosen,
            config,
            ref.plain,
            ref.upem,
            ref.bank_accuracy,
            evaluator.anchor_macs,
            verification,
            formats,
        )
        if latency:
            lat = _latency(evaluator, config, ref.plain)
            record = dataclasses.replace(record, latency=lat.to_dict())
        record = record.to_dict()
        write_yaml(tmp / "config.yaml", dict(config))
        write_json(tmp / MODEL_FILE, record)
        if problems:
            raise ExportError(f"export {chosen.label}: verification failed: {'; '.join(problems)}")
    return ExportResult(out=out, label=chosen.label, files=files, record=record, seconds=seconds)


@dataclass(kw_only=True)
class _Reference:
    """What every written file is checked against: the bank's sub-network, BN re-estimated as
    the search scored it, its logits on the scoring images and its target accuracy."""

    evaluator: Evaluator
    config: dict
    plain: nn.Module
    logits: torch.Tensor
    scoring: list[torch.Tensor]
    upem: dict
    macs: dict  # the MACs check
    labels: bool
    bank_accuracy: float | None

    @classmethod
    def of(cls, evaluator: Evaluator, config: dict, chosen: select.Selection) -> _Reference:
        space = evaluator.run.space
        # UPEM as the search computed it (default numerics); the exported model and the logits
        # it is compared with in true fp32 (see full_fp32)
        upem = evaluator.label_free_scores(evaluator.outputs(config))
        with full_fp32():
            plain = calibrated_plain(evaluator, config)
            logits = evaluator.logits(config).cpu()
        searched = chosen.point.macs if chosen.point is not None else None
        macs = macs_check(plain, space.input_shape, evaluator.cost.macs(config), searched)
        labels = has_labels(evaluator)
        return cls(
            evaluator=evaluator,
            config=config,
            plain=plain,
            logits=logits,
            scoring=[x.cpu() for x in evaluator.scoring],
            upem=upem,
            macs=macs,
            labels=labels,
            bank_accuracy=ground_truth(evaluator, [config])[0] if labels else None,
        )

    @property
    def test_n(self) -> int:
        return len(self.evaluator.run.data().target_test) if self.labels else 0

    def test_batches(self, limit: int | None = None):
        from slimda_nas.data import eval_batches

        data, size = self.evaluator.run.data(), self.evaluator.settings.batch_size
        return limited(eval_batches(data.target_test, size, with_labels=True), limit)

    def bank_accuracy_on(self, n: int) -> float | None:
        """The bank's accuracy on the first ``n`` test images (all: as measured once)."""
        if n == self.test_n:
            return self.bank_accuracy
        with full_fp32():
            return self.evaluator.accuracy(self.config, self.test_batches(n))


def _write_and_check(name: str, path: Path, ref: _Reference, tolerance: float):
    """Write the model in format ``name`` and check the written file: its logits against the
    bank's, and (with labels) its accuracy; the check and the seconds both took."""
    fmt = FORMATS[name]
    t0 = time.perf_counter()
    example = torch.zeros(2, *ref.evaluator.run.space.input_shape)
    fmt.save(ref.plain, example, path)
    t_save = time.perf_counter() - t0
    runner = (fmt.load or state_dict_loader(lambda: _empty(ref.evaluator, ref.config)))(path)
    limit = fmt.max_images()
    check = {
        "format": name,
        "runtime": fmt.runtime(),
        "bytes": path.stat().st_size,
        "logits": logits_check(runner, ref.scoring, ref.logits, tolerance, limit),
    }
    if ref.labels:
        n = ref.test_n if limit is None else min(limit, ref.test_n)
        check["accuracy"] = accuracy_check(runner, ref.test_batches(n), ref.bank_accuracy_on(n), n)
    seconds = time.perf_counter() - t0
    check["seconds"] = {"write": round(t_save, 3), "write_and_verify": round(seconds, 3)}
    return check, seconds


def _latency(evaluator: Evaluator, config: dict, plain: nn.Module):
    """Batch-1 latency of the exported model and of the full-width one, on this machine."""
    run, largest = evaluator.run, evaluator.run.space.largest()
    return latency_record(
        run.run_dir,
        run.checkpoint_hash,
        {
            "model": (config, lambda: plain),
            "full_width": (largest, lambda: calibrated_plain(evaluator, largest)),
        },
        run.space.input_shape,
    )


def _empty(evaluator: Evaluator, config: dict) -> nn.Module:
    """The architecture at ``config`` to load a state_dict into (its weights are overwritten)."""
    return evaluator.bank.materialize(config, evaluator.head).cpu()
