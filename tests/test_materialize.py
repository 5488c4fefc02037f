"""A materialized sub-network is plain PyTorch and computes what the bank computes."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from slimda_nas.bank import ModelBank, materialize
from slimda_nas.slim.ops import SLIM_LAYERS, active_widths
from slimda_nas.space import load_space
from tests.conftest import SPACES


def _randomize_bn(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.weight.shape, generator=g))


@pytest.fixture(scope="module")
def bank():
    torch.manual_seed(0)
    b = ModelBank.build(
        load_space(SPACES / "digits_cnn.yaml"), 10, heads=("cs", "ct", "ca"), deploy_head="ca"
    )
    _randomize_bn(b.model)
    b.model.eval()
    return b


def test_materialized_equals_bank_on_random_configs(bank):
    x = torch.randn(8, *bank.space.input_shape)
    rng = random.Random(0)
    for _ in range(10):
        config = bank.space.sample(rng)
        plain = materialize(bank, config)
        with bank.use(config), torch.no_grad():
            expected = bank.model(x, heads=["ca"])["ca"]
        torch.testing.assert_close(plain(x), expected, rtol=1e-5, atol=1e-6)


def test_materialized_is_plain_and_independent(bank):
    config = bank.space.smallest()
    before = {k: v.clone() for k, v in bank.model.state_dict().items()}
    widths = active_widths(bank.model)
    plain = materialize(bank, config, head="ct")
    assert not any(isinstance(m, SLIM_LAYERS) for m in plain.modules())
    assert plain.head_names == ("ct",) and not hasattr(plain, "ca")
    assert {type(m) for m in plain.modules()} & {
        nn.Conv2d,
        nn.Linear,
        nn.BatchNorm2d,
        nn.BatchNorm1d,
    }
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(1.0)
    for k, v in bank.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert active_widths(bank.model) == widths
    assert plain.conv1.out_channels == bank.space.layer_widths(config)["conv1"]
