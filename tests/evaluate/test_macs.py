"""MACs: thop on the materialized sub-network is the reference; the analytic fast path equals it;
FlopCounterMode agrees on convolutions and linear layers."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from slimda_nas.bank import ModelBank
from slimda_nas.evaluate.macs import CostModel, count_macs, thop_profile
from slimda_nas.space import load_space
from tests.conftest import SPACES

# Large spaces are checked at a reduced input size: the counting rules do not depend on it.
_SIZES = {"digits_cnn": 32, "resnet50": 64, "efficientnet_lite0": 64}


def _bank(path, size=None):
    space = load_space(path)
    if size and size != space.input_size:
        from dataclasses import replace

        space = replace(space, input_size=size)
    return ModelBank.build(space, num_classes=31, heads=("cs", "ct", "ca"), deploy_head="ca")


def _configs(space, n, seed=0):
    rng = random.Random(seed)
    return [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(n)]


@pytest.fixture(scope="module", params=sorted(SPACES.glob("*.yaml")), ids=lambda p: p.stem)
def bank(request):
    return _bank(request.param, _SIZES.get(request.param.stem))


def test_fast_path_equals_thop(bank):
    cost = CostModel(bank)
    n = 12 if bank.space.backbone == "digits_cnn" else 4
    for config in _configs(bank.space, n):
        plain = bank.materialize(config)
        macs, params = thop_profile(plain, bank.space.input_shape)
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
            plain(torch.zeros(1, *bank.space.input_shape))
        assert counter.get_total_flops() == 2 * _conv_linear_macs(plain, bank.space.input_shape)


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
