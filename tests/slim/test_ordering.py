"""Channel ordering: exact at full width on every backbone, and it does sort."""

from __future__ import annotations

import pytest
import torch

from slimda_nas.backbones import build_backbone
from slimda_nas.slim.ops import set_widths
from slimda_nas.slim.ordering import CRITERIA, reorder_channels

BACKBONES = {
    "digits_cnn": (dict(num_classes=10, heads=("cs", "ct", "ca")), 32),
    "efficientnet_lite0": (dict(num_classes=31, heads=("cs", "ct", "ca")), 64),
    "resnet50": (dict(num_classes=31, heads=("cs", "ct", "ca")), 64),
}


def _randomised(name: str) -> torch.nn.Module:
    """A backbone with random BN statistics and affine terms, so no permutation is a no-op."""
    kwargs, _ = BACKBONES[name]
    torch.manual_seed(0)
    model = build_backbone(name, **kwargs)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._NormBase):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.2, 2.0)
            m.bias.data.normal_(0, 0.1)
    return model.eval()


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_full_width_function_unchanged(name, criterion):
    # float64, so that a wrong permutation cannot hide in float32 rounding of summation order
    model = _randomised(name).double()
    size = BACKBONES[name][1]
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    with torch.no_grad():
        before = model(x, heads=model.head_names)
    perms = reorder_channels(model, model.channel_groups(), criterion)
    assert any(not torch.equal(p, torch.arange(len(p))) for _, p in perms)
    with torch.no_grad():
        after = model(x, heads=model.head_names)
    for h in model.head_names:
        torch.testing.assert_close(after[h], before[h], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_groups_cover_every_searchable_layer_once(name):
    model = _randomised(name)
    produced = [p for g in model.channel_groups() for p in g.producers]
    assert sorted(produced) == sorted(model.searchable_layers())


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_sorted_after_reordering_and_narrow_models_change(name):
    model = _randomised(name)
    size = BACKBONES[name][1]
    x = torch.randn(2, 3, size, size)
    narrow = {n: max(1, w // 2) for n, w in model.searchable_layers().items()}
    set_widths(model, narrow)
    with torch.no_grad():
        before = model(x)
    reorder_channels(model, model.channel_groups(), "l1_next")
    with torch.no_grad():
        after = model(x)
    assert not torch.allclose(before, after)
    # every group's importance now falls from the first channel to the last (up to the
    # rounding of sums taken in another order)
    for group in model.channel_groups():
        score = CRITERIA["l1_next"](model, group)
        assert bool((score[1:] <= score[:-1] * (1 + 1e-5)).all()), group.producers


def test_optimizer_momentum_follows_the_weights():
    model = _randomised("digits_cnn").train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(4, 3, 32, 32)
    model(x).sum().backward()
    opt.step()
    w = model.conv1.weight
    momentum = opt.state[w]["momentum_buffer"].clone()
    perms = reorder_channels(model, model.channel_groups(), "l1_next", optimizer=opt)
    perm = perms[0][1]
    torch.testing.assert_close(opt.state[w]["momentum_buffer"], momentum[perm])
