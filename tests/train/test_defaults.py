"""Per-backbone defaults (train/defaults.py): omitted fields get the row's value, and no shipped
config or old run folder changes its training hash."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from slimda_nas._io import write_yaml
from slimda_nas._shipped import shipped_configs, shipped_spaces
from slimda_nas.train import CHECKPOINT, load_run_config
from slimda_nas.train.config import RunConfig, config_from_dict
from slimda_nas.train.defaults import TABLE, apply_defaults, backbone_defaults
from tests.conftest import REPO

# Training hashes of the shipped configs before the defaults table existed (computed with the
# code of main at 78f3bba, from the repository root, where spaces resolve to search_spaces/...).
SHIPPED_HASHES = {
    "mnist_mnistm": "c22c4cd9600b7bdf",
    "mnist_usps": "6ecd6199117f1370",
    "office31_ad": "1e92439b65bc182a",
    "office31_aw": "62781647b4d88920",
    # the four CPU configs: the longer adaptation of 2026-12-07 (gamma 5, 1,000 + 1,100 iterations)
    "office31_aw_cpu": "0cac6765a005e37f",  # added by issue 34
    # the elastic two: issue 35's space, smallest_budget 1/64 since 2026-12-07's second change
    "office31_aw_cpu_elastic": "4cd3d22c66527d41",
    "office31_aw_resnet50": "805eaacbfc692463",
    "office31_da": "92a14bc97c988e27",
    "office31_da_cpu": "40f9661c03146775",
    "office31_da_cpu_elastic": "b976b8c3e1e179ad",
    "office31_dw": "3b96e30ed3feb4b8",
    "office31_wa": "51c36d008042dce2",
    "office31_wd": "36908960fa377d6f",
    "usps_mnist": "b5f9d8e9615a2e32",
}


def test_every_shipped_config_has_its_hash_here():
    """A new shipped config states the fields the defaults table sets: add its hash above."""
    assert set(shipped_configs()) == set(SHIPPED_HASHES)


@pytest.mark.parametrize("name", sorted(SHIPPED_HASHES))
def test_shipped_configs_keep_their_training_hash(name, monkeypatch):
    monkeypatch.chdir(REPO)
    assert load_run_config(name).training_hash() == SHIPPED_HASHES[name]


def test_digits_row_is_what_usps_mnist_uses(monkeypatch):
    monkeypatch.chdir(REPO)
    shipped = load_run_config("usps_mnist")
    for dotted, value in TABLE["digits_cnn"].fields.items():
        holder = shipped
        *parents, leaf = dotted.split(".")
        for p in parents:
            holder = getattr(holder, p)
        assert getattr(holder, leaf) == value, dotted


def test_omitted_fields_take_the_backbone_row(tmp_path):
    write_yaml(tmp_path / "img.yaml", {"task": "office31:amazon->webcam", "space": "resnet50"})
    write_yaml(tmp_path / "dig.yaml", {"task": "usps->mnist", "space": "digits_cnn"})
    img, dig = load_run_config(tmp_path / "img.yaml"), load_run_config(tmp_path / "dig.yaml")
    assert (img.domain_bn, img.optimizer.backbone_lr_mult, img.weights) == ("separate", 0.1, None)
    assert (dig.domain_bn, dig.optimizer.lr, dig.iterations) == ("separate", 0.05, 1500)
    # a field given wins, also inside a partly given section
    write_yaml(
        tmp_path / "img2.yaml",
        {
            "task": "office31:amazon->webcam",
            "space": "efficientnet_lite0",
            "weights": None,
            "domain_bn": "joint",
            "optimizer": {"lr": 0.02},
        },
    )
    img2 = load_run_config(tmp_path / "img2.yaml")
    assert (img2.weights, img2.domain_bn) == (None, "joint")
    assert (img2.optimizer.lr, img2.optimizer.backbone_lr_mult) == (0.02, 0.1)
    assert load_run_config(tmp_path / "img.yaml", weights="w.pth").weights == "w.pth"


def test_an_old_run_folder_keeps_its_hash(tmp_path):
    """A run.yaml written before domain_bn existed, beside its checkpoint: the field it lacks
    takes its old (off) value, not the image row's 'separate'."""
    space = str(shipped_spaces()["resnet50"])  # as a run.yaml holds it: a resolved path
    old = RunConfig(name="old", task="office31:amazon->webcam", space=space).replace()
    stored = dataclasses.asdict(old)
    for key in ("domain_bn", "warmup", "shrinking", "averaging"):
        stored.pop(key)
    run = tmp_path / "old"
    write_yaml(run / "run.yaml", stored)
    fresh = load_run_config(run / "run.yaml")
    assert fresh.domain_bn == "separate"  # no checkpoint: a config like any other
    (run / CHECKPOINT).write_bytes(b"")
    again = load_run_config(run / "run.yaml")
    assert again.domain_bn == "joint"
    assert again.training_hash() == config_from_dict(stored).training_hash()


def test_apply_defaults_leaves_bad_sections_to_the_check():
    assert apply_defaults({"optimizer": "fast"}, "resnet50")["optimizer"] == "fast"
    assert apply_defaults({"optimizer": None}, "resnet50")["optimizer"] == {
        "backbone_lr_mult": 0.1,
        "gamma": 5.0,
    }
    assert backbone_defaults("no_such_net").fields == {}


def test_image_banks_go_channels_last_on_a_cpu_only(tmp_path):
    """An image-backbone config that omits ``channels_last`` trains channels-last where the
    step is faster (the CPU) and contiguous on CUDA; a stated value wins on every device."""
    path = tmp_path / "cfg.yaml"
    write_yaml(path, {"task": "office31:amazon->webcam", "space": "efficientnet_lite0_112"})
    auto = load_run_config(path)
    assert auto.channels_last is None
    assert auto.uses_channels_last("cpu") and not auto.uses_channels_last("cuda")
    for stated in (True, False):
        cfg = auto.replace(channels_last=stated)
        assert cfg.uses_channels_last("cpu") is stated and cfg.uses_channels_last("cuda") is stated
    digits = load_run_config("usps_mnist")
    assert digits.channels_last is False and not digits.uses_channels_last("cpu")


def test_a_null_channels_last_keeps_the_hash_of_false():
    """Layout by device is not a different bank: a run started with ``false`` resumes under
    the null default, and ``true`` (the shipped CPU configs) keeps its own identity."""
    cfg = load_run_config("office31_aw_cpu")
    off, auto = cfg.replace(channels_last=False), cfg.replace(channels_last=None)
    assert auto.training_hash() == off.training_hash() != cfg.training_hash()


@pytest.mark.parametrize(
    "backbone,size,space",
    [
        (None, None, "efficientnet_lite0_elastic"),
        (None, 112, "efficientnet_lite0_elastic_112"),
        ("resnet50", None, "resnet50_elastic"),
    ],
)
def test_image_banks_get_the_elastic_space_and_ofa_order(backbone, size, space):
    """Two folders of images train on the shipped space with resolution and depth as units;
    a space named on the command line still wins."""
    from slimda_nas.train import new_run_config

    new = new_run_config("office31:amazon->webcam", backbone=backbone, input_size=size)
    assert Path(new.config.space).stem == space and new.config.shrinking.order == "ofa"
    assert new.space.resolution_unit is not None and new.space.depth_units
    named = new_run_config("office31:amazon->webcam", space="efficientnet_lite0_112")
    assert Path(named.config.space).stem == "efficientnet_lite0_112"
    assert not named.space.depth_units


def test_ofa_order_opens_a_widths_only_space_as_together_does():
    from slimda_nas.space import load_space
    from slimda_nas.train.sandwich import open_choices

    space = load_space(shipped_spaces()["efficientnet_lite0_112"])
    for progress in [i / 20 for i in range(21)]:
        together = open_choices(space, progress, 3, 0.5, "together")
        assert open_choices(space, progress, 3, 0.5, "ofa") == together
