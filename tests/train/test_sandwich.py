from __future__ import annotations

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
