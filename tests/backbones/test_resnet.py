"""ResNet-50: torchvision's checkpoints load unchanged, and sub-networks materialize exactly."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch
import torchvision
from torch import nn

from slimda_nas.backbones import build_backbone
from slimda_nas.backbones.resnet import resnet50
from slimda_nas.bank import ModelBank
from slimda_nas.errors import CheckpointError
from slimda_nas.slim.ops import SLIM_LAYERS
from slimda_nas.space import load_space
from tests.conftest import SPACES

_PLAIN = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)


@pytest.fixture(scope="module")
def tv_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return torchvision.models.resnet50().state_dict()  # random init: no download


def _randomize_bn(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial statistics, so a wrongly sliced BN shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def test_torchvision_state_dict_loads_strict_with_same_logits(tv_state):
    tv = torchvision.models.resnet50()
    tv.load_state_dict(tv_state)
    model = build_backbone("resnet50")
    model.load_state_dict(tv_state, strict=True)
    assert list(model.state_dict()) == list(tv_state)
    _randomize_bn(tv)
    model.load_state_dict(tv.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), tv.eval()(x), rtol=0, atol=1e-5)


def test_tied_layers_are_each_stages_residual_stream():
    groups = resnet50().tied_layers()
    assert [len(g) for g in groups] == [4, 5, 7, 4]
    assert groups[1] == (
        "layer2.0.downsample.0",
        "layer2.0.conv3",
        "layer2.1.conv3",
        "layer2.2.conv3",
        "layer2.3.conv3",
    )


def test_weights_path_loads_backbone_and_leaves_new_heads_fresh(tv_state, tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save(tv_state, path)
    model = resnet50(weights=str(path), heads=("cs", "ct", "ca"), num_classes=1000)
    state = model.state_dict()
    for k, v in tv_state.items():
        if not k.startswith("fc."):
            assert torch.equal(state[k], v), k
    for h in ("cs", "ct", "ca"):  # same shape as fc, but another head: not loaded from it
        assert not torch.equal(state[f"{h}.weight"], tv_state["fc.weight"])
    assert not torch.equal(state["cs.weight"], state["ct.weight"])
    # The default single head "fc" of another size starts fresh too; the backbone still loads.
    model = resnet50(weights=path, num_classes=31)
    assert model.fc.weight.shape == (31, 2048)
    assert torch.equal(model.conv1.weight, tv_state["conv1.weight"])


@pytest.mark.parametrize("content", [None, b"not a checkpoint", "efficientnet"])
def test_bad_weights_path_raises_one_line_checkpoint_error(tmp_path, content):
    path = tmp_path / "weights.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "efficientnet":
        torch.save({"_conv_stem.weight": torch.zeros(32, 3, 3, 3)}, path)
    with pytest.raises(CheckpointError) as err:
        resnet50(weights=str(path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.fixture(scope="module")
def bank() -> ModelBank:
    # Materializing traces at the space's input size; 64 px gives the same layers, faster.
    space = dataclasses.replace(load_space(SPACES / "resnet50.yaml"), input_size=64)
    torch.manual_seed(0)
    model = space.build(num_classes=31, heads=("cs", "ct", "ca"))
    _randomize_bn(model)
    return ModelBank(space, model.eval())


def test_shipped_space_loads():
    # The loader checks that every searchable layer is in exactly one unit.
    space = load_space(SPACES / "resnet50.yaml")
    assert space.backbone == "resnet50" and space.input_shape == (3, 224, 224)
    assert len(space.units) == 37


def test_materialized_subnetwork_equals_bank(bank):
    rng = random.Random(0)
    configs = [bank.space.smallest()] + [bank.space.sample(rng) for _ in range(5)]
    x = torch.randn(2, 3, 64, 64)
    for config in configs:
        plain = bank.materialize(config)
        leaves = [m for m in plain.modules() if not list(m.children())]
        assert not any(isinstance(m, SLIM_LAYERS) for m in plain.modules())
        assert all(type(m) in _PLAIN for m in leaves if list(m.parameters(recurse=False)))
        widths = bank.space.layer_widths(config)
        assert plain.layer3[0].conv3.out_channels == widths["layer3.0.conv3"]
        assert plain.layer3[0].downsample[0].out_channels == widths["layer3.0.conv3"]
        with torch.no_grad(), bank.use(config) as model:
            expected = model(x)
            got = plain(x)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_slim_training_step_at_a_small_config(bank):
    model = resnet50(heads=("cs", "ct", "ca"), num_classes=5)
    small = ModelBank(bank.space, model)
    small.set_config(bank.space.uniform(0.25))
    model.train()
    out = model(torch.randn(2, 3, 64, 64), heads=("cs", "ca"))
    (out["cs"].sum() + out["ca"].sum()).backward()
    assert model.layer4[0].conv3.weight.grad[512:].abs().sum() == 0  # outside the active width
    assert model.layer4[0].conv3.weight.grad[:512].abs().sum() > 0
