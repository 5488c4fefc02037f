"""MACs: thop on the materialized sub-network is the reference; the analytic fast path equals it;
FlopCounterMode agrees on convolutions and linear layers."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from slimda_nas.bank import ModelBank
from slimda_nas.cost.macs import CostModel, count_macs, thop_profile
from slimda_nas.space import load_space
from tests.conftest import SPACES, shrunk_space

# Large spaces are checked at a reduced input size: the counting rules do not depend on it.
_SIZES = {"digits_cnn": 32, "resnet50": 64, "efficientnet_lite0": 64}


def _bank(path, size=None):
    space = load_space(path)
    if size and size != space.input_size:
        space = shrunk_space(space, size)
    return ModelBank.build(space, num_classes=31, heads=("cs", "ct", "ca"), deploy_head="ca")


def _configs(space, n, seed=0):
    rng = random.Random(seed)
    return [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(n)]


@pytest.fixture(scope="module", params=sorted(SPACES.glob("*.yaml")), ids=lambda p: p.stem)
def bank(request):
    return _bank(request.param, _SIZES.get(load_space(request.param).backbone))


def test_fast_path_equals_thop(bank):
    cost = CostModel(bank)
    n = 12 if bank.space.backbone == "digits_cnn" else 4
    for config in _configs(bank.space, n):
        plain = bank.materialize(config)
        macs, params = thop_profile(plain, bank.space.input_shape_at(config))
        assert cost.macs(config) == macs
        assert cost.params(config) == params
        assert count_macs(bank, config) == macs


def _conv_linear_macs(model: nn.Module, shape) -> int:
    total = 0

    def hook(m, x, y):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += y.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        else:
            total += y.numel() * m.in_features

    hooks = [
        m.register_forward_hook(hook) for m in model.modules() if type(m) in (nn.Conv2d, nn.Linear)
    ]
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    for h in hooks:
        h.remove()
    return total


def test_flop_counter_agrees_on_conv_and_linear(bank):
    for config in _configs(bank.space, 2, seed=1):
        plain = bank.materialize(config)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            plain(torch.zeros(1, *bank.space.input_shape_at(config)))
        shape = bank.space.input_shape_at(config)
        assert counter.get_total_flops() == 2 * _conv_linear_macs(plain, shape)


def test_thop_leaves_no_buffers_behind():
    bank = _bank(SPACES / "digits_cnn.yaml")
    before = set(bank.model.state_dict())
    count_macs(bank, bank.space.smallest())
    assert set(bank.model.state_dict()) == before
    bank.model.load_state_dict(bank.model.state_dict(), strict=True)


def test_macs_grow_with_width():
    bank = _bank(SPACES / "digits_cnn.yaml")
    cost = CostModel(bank)
    values = [cost.macs(bank.space.uniform(r)) for r in (0.0625, 0.25, 0.5, 1.0)]
    assert values == sorted(values) and len(set(values)) == 4
    assert values[-1] == cost.macs(bank.space.largest())


@pytest.mark.parametrize("name", ["efficientnet_lite0_elastic", "resnet50_elastic"])
def test_width_depth_and_resolution_mixed_equal_thop(name):
    """Every configuration mixes a reduced depth, a lower resolution and random widths."""
    bank = _bank(SPACES / f"{name}.yaml", 64)
    space, cost = bank.space, CostModel(bank)
    rng = random.Random(3)
    seen = set()
    for _ in range(3):
        config = space.sample(rng)
        config["resolution"] = space.input_sizes[rng.randrange(len(space.input_sizes) - 1)]
        unit = rng.choice(space.depth_units)
        config[unit.name] = unit.choices[0]
        plain = bank.materialize(config)
        macs, params = thop_profile(plain, space.input_shape_at(config))
        assert cost.macs(config) == macs and cost.params(config) == params
        seen.add(config["resolution"])
        # fewer blocks and a lower resolution cost less, each on its own
        deeper = dict(config, **{unit.name: unit.full})
        assert cost.macs(deeper) > macs
        assert cost.macs(dict(config, resolution=space.input_size)) > macs
    assert len(seen) > 1


# Hash and MACs (10-class head) of spaces without elastic units, as before those units existed:
# banks, caches and search records of older runs stay valid.
_BEFORE = {
    "digits_cnn": ("29d7b5b92f198daa", 30051840, 188640, 6486656, 406118),
    "efficientnet_lite0": ("bf312f314b8bca03", 410935136, 13885128, 129674944, 636522),
}


@pytest.mark.parametrize("name", sorted(_BEFORE))
def test_spaces_without_elastic_units_are_unchanged(name):
    space = load_space(SPACES / f"{name}.yaml")
    digest, largest, smallest, macs, params = _BEFORE[name]
    assert space.hash == digest and not space.depth_units and space.resolution_unit is None
    cost = CostModel(ModelBank.build(space, num_classes=10))
    config = space.sample(random.Random(0))
    assert (cost.macs(space.largest()), cost.macs(space.smallest())) == (largest, smallest)
    assert (cost.macs(config), cost.params(config)) == (macs, params)
    assert load_space(SPACES / "resnet50.yaml").hash == "5e13be3f3234c008"
