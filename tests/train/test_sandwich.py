from __future__ import annotations

import pytest

from slimda_nas.space import load_space
from slimda_nas.train.sandwich import sample_model_batch
from tests.conftest import SPACES


def test_sandwich_always_has_largest_and_smallest():
    space = load_space(SPACES / "digits_cnn.yaml")
    for it in range(50):
        batch = sample_model_batch(space, 4, seed=3, iteration=it)
        assert len(batch) == 4
        assert batch[0] == space.largest() and batch[1] == space.smallest()
        for c in batch:
            space.check_config(c)


def test_same_seed_and_iteration_give_same_models():
    space = load_space(SPACES / "digits_cnn.yaml")
    a = [sample_model_batch(space, 4, 7, it) for it in range(10)]
    b = [sample_model_batch(space, 4, 7, it) for it in range(10)]
    assert a == b
    assert a != [sample_model_batch(space, 4, 8, it) for it in range(10)]
    assert len({str(x[2]) for x in a}) > 1  # the random ones change per iteration


def test_single_model_and_no_sandwich():
    space = load_space(SPACES / "digits_cnn.yaml")
    assert sample_model_batch(space, 1, 0, 0) == [space.largest()]
    free = [sample_model_batch(space, 3, 0, it, sandwich=False) for it in range(20)]
    assert any(space.largest() not in b for b in free)


def test_macs_drawn_models_cover_the_low_end_unit_draws_miss():
    """Lite0 with elastic depth and resolution: unit-by-unit draws put no model under 1/64 of
    the largest's MACs; drawn by MACs, about a sixth of them are (log-uniform over 1/143-1)."""
    import random

    from slimda_nas.bank import ModelBank
    from slimda_nas.cost.macs import CostModel
    from slimda_nas.train.sandwich import grow_under, open_choices

    space = load_space(SPACES / "efficientnet_lite0_elastic_112.yaml")
    macs = CostModel(ModelBank.build(space, 31)).macs_of_indices
    largest = macs(space.to_indices(space.largest()))

    def fractions(**kw):
        batches = [sample_model_batch(space, 4, 5, it, **kw)[2:] for it in range(100)]
        return [macs(space.to_indices(c)) / largest for b in batches for c in b]

    assert min(fractions()) > 1 / 64
    by_macs = fractions(macs_of=macs)
    assert 0.08 < sum(f < 1 / 64 for f in by_macs) / len(by_macs) < 0.3
    assert max(by_macs) > 1 / 4
    again = [sample_model_batch(space, 4, 5, it, macs_of=macs) for it in range(5)]
    assert again == [sample_model_batch(space, 4, 5, it, macs_of=macs) for it in range(5)]
    # the model is grown just under its target, within the open choices
    open_ = open_choices(space, 0.3, stages=3, fraction=0.5)
    first = [len(u.choices) - k for u, k in zip(space.units, open_, strict=True)]
    sizes = [len(u.choices) for u in space.units]
    for seed in range(20):
        target = macs(first) * 2.5
        x = grow_under(sizes, first, macs, target, random.Random(seed))
        assert all(lo <= i for lo, i in zip(first, x)) and target / 2 < macs(x) <= target
    batch = sample_model_batch(space, 4, 5, 9, open_=open_, macs_of=macs)
    assert batch[1] == space.from_indices(first)
    assert all(i >= lo for c in batch for i, lo in zip(space.to_indices(c), first))


def test_a_floor_raises_the_smallest_and_leaves_the_random_models():
    """``smallest_budget``: the sandwich's smallest is the floor where every choice is open, the
    unit-by-unit larger of the floor and the narrowest open choice while shrinking, and the
    random models are the same draws as without it."""
    from slimda_nas.bank import ModelBank
    from slimda_nas.cost.macs import CostModel
    from slimda_nas.errors import ConfigError
    from slimda_nas.methods import HEADS
    from slimda_nas.train.sandwich import open_choices, sandwich_floor

    space = load_space(SPACES / "efficientnet_lite0_elastic.yaml")
    cost = CostModel(ModelBank.build(space, 10, heads=HEADS))
    largest = cost.macs(space.largest())
    floor = sandwich_floor(space, cost, "1/64")
    floor_macs = cost.macs(space.from_indices(floor))
    assert cost.macs(space.smallest()) < floor_macs <= largest / 64
    wider = sandwich_floor(space, cost, "1/16")  # a wider uniform model, unit by unit
    assert wider != floor and all(map(int.__ge__, wider, floor))
    for it in range(5):
        plain = sample_model_batch(space, 4, 0, it)
        raised = sample_model_batch(space, 4, 0, it, floor=floor)
        assert raised[1] == space.from_indices(floor) and raised[0] == plain[0]
        assert raised[2:] == plain[2:]
    open_ = open_choices(space, 0.1, stages=2, fraction=0.5, order="ofa")
    first = [len(u.choices) - k for u, k in zip(space.units, open_, strict=True)]
    smallest = sample_model_batch(space, 3, 0, 1, open_=open_, floor=floor)[1]
    assert space.to_indices(smallest) == tuple(map(max, first, floor))
    with pytest.raises(ConfigError, match=r"field 'smallest_budget': 1/1000: no uniform model"):
        sandwich_floor(space, cost, "1/1000")
