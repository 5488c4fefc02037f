"""The band sampler and repair on a space with elastic depth and resolution (Lite0 at 1/64,
which widths alone cannot reach)."""

from __future__ import annotations

import random
import time

import pytest

from slimda_nas.bank import ModelBank
from slimda_nas.cost.budget import parse_budget
from slimda_nas.cost.feasible import BandSampler, repair
from slimda_nas.cost.macs import CostModel
from slimda_nas.space import load_space
from tests.conftest import SPACES


@pytest.fixture(scope="module")
def lite0_elastic():
    space = load_space(SPACES / "efficientnet_lite0_elastic.yaml")
    cost = CostModel(ModelBank.build(space, num_classes=31))
    return space, cost, parse_budget("1/64").macs(cost.macs(space.largest()))


def test_widths_alone_cannot_reach_1_64_on_lite0():
    space = load_space(SPACES / "efficientnet_lite0.yaml")
    cost = CostModel(ModelBank.build(space, num_classes=31))
    assert cost.macs(space.smallest()) > parse_budget("1/64").macs(cost.macs(space.largest()))


def test_band_sampler_draws_distinct_feasible_configurations_at_1_64_in_under_a_second(
    lite0_elastic,
):
    space, cost, high = lite0_elastic
    low = int(0.6 * high)
    sampler = BandSampler(space, cost)
    t0 = time.process_time()  # this process's work: other jobs on the machine do not count
    drawn = [sampler.sample(random.Random(i), high, low)[0] for i in range(20)]
    assert time.process_time() - t0 < 1.0
    assert len(set(drawn)) == 20
    assert all(low <= cost.macs_of_indices(x) <= high for x in drawn)
    configs = [space.from_indices(x) for x in drawn]
    # the band is reached with the new units: lower resolutions and fewer blocks are drawn
    assert {c["resolution"] for c in configs} != {224}
    assert any(c[u.name] < u.full for c in configs for u in space.depth_units)


def test_repair_brings_the_largest_model_into_the_budget(lite0_elastic):
    space, cost, high = lite0_elastic
    sampler = BandSampler(space, cost)
    largest = space.to_indices(space.largest())
    fixed = repair(sampler, largest, high)
    assert fixed is not None and cost.macs_of_indices(fixed) <= high
    assert sampler.enumerate(cost.macs(space.smallest()), limit=10) == [sampler.smallest_index()]


def test_configurations_differing_only_in_skipped_blocks_are_one_network(lite0_elastic):
    space, cost, _ = lite0_elastic
    a = dict(space.largest(), **{"depth.stage5": 2, "blocks.14.expand": 0.5})
    b = dict(a, **{"blocks.14.expand": 1.0})  # block 14 is the stage's 4th: skipped at depth 2
    assert cost.macs(a) == cost.macs(b)
    assert space.normalize(a) == space.normalize(b) != a
    assert space.normalize(a)["blocks.14.expand"] == space.unit("blocks.14.expand").choices[0]
    kept = dict(a, **{"blocks.12.expand": 0.5})  # the 2nd block runs: its width stays
    assert space.normalize(kept)["blocks.12.expand"] == 0.5
