"""Training a bank whose space has elastic depth and resolution: the sandwich samples them with
the widths, and a killed run still resumes bit for bit."""

from __future__ import annotations

import json

import pytest
import torch

from slimda_nas.space import load_space
from slimda_nas.train import train_bank
from slimda_nas.train.checkpoint import load_checkpoint
from slimda_nas.train.sandwich import open_choices, sample_model_batch
from tests.conftest import SPACES, tiny_elastic_space, tiny_run_config

ELASTIC = SPACES / "efficientnet_lite0_elastic.yaml"


def test_sandwich_smallest_is_lowest_resolution_fewest_blocks_narrowest():
    space = load_space(ELASTIC)
    largest, smallest, *random_ones = sample_model_batch(space, 6, seed=0, iteration=3)
    assert largest["resolution"] == 224 and smallest["resolution"] == 128
    for u in space.depth_units:
        assert largest[u.name] == u.full and smallest[u.name] == u.choices[0]
    assert smallest["stem"] == 0.25 and largest["head"] == 1.0
    # the random ones draw resolution and depth too
    drawn = {c["resolution"] for c in random_ones} | {c["depth.stage5"] for c in random_ones}
    assert len(drawn) > 2


def test_ofa_order_opens_resolution_then_depth_then_width():
    space = load_space(ELASTIC)
    kinds = [u.kind for u in space.units]

    def opened(progress):
        o = open_choices(space, progress, stages=2, fraction=0.5, order="ofa")
        return {k: [n for n, kind in zip(o, kinds) if kind == k] for k in set(kinds)}

    start = opened(0.0)
    assert start["resolution"] == [4]  # every resolution from the start
    assert all(n == 1 for n in start["widths"] + start["channels"])  # widths at full only
    assert max(start["depth"]) < 4  # depth opening first
    mid = opened(0.3)  # depth's share is over: widths open
    assert mid["depth"] == [len(u.choices) for u in space.depth_units]
    assert any(n > 1 for n in mid["widths"])
    end = opened(0.5)
    assert list(end["widths"]) == [len(u.choices) for u in space.units if u.kind == "widths"]
    # the default order shrinks every unit together, as before
    together = open_choices(space, 0.0, stages=2, fraction=0.5)
    assert together[kinds.index("resolution")] == 2


@pytest.mark.parametrize(
    "random_models, smallest_budget", [("units", None), ("macs", None), ("units", "1/16")]
)
def test_resume_after_kill_is_exact_with_depth_and_resolution(
    tmp_path, tiny_task, random_models, smallest_budget
):
    space = tiny_elastic_space(tmp_path / "space")
    common = dict(
        space=str(space),
        iterations=6,
        models_per_step=3,
        random_models=random_models,
        smallest_budget=smallest_budget,
    )
    full = tiny_run_config(tmp_path / "a", tiny_task, **common)
    sampled = [
        sample_model_batch(load_space(space), 3, full.seed, it)[2] for it in range(full.iterations)
    ]
    assert len({c["resolution"] for c in sampled}) > 1  # the runs do train several sizes
    train_bank(full, show_progress=False)
    killed = tiny_run_config(tmp_path / "b", tiny_task, **common)
    train_bank(killed, show_progress=False, stop_after=3)
    assert load_checkpoint(killed.run_dir / "checkpoint.pt").iteration == 2
    assert train_bank(killed, show_progress=False).resumed_from == 2
    a = load_checkpoint(full.run_dir / "checkpoint.pt").model
    b = load_checkpoint(killed.run_dir / "checkpoint.pt").model
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_shrinking_order_keeps_older_training_hashes(tmp_path, tiny_task, monkeypatch):
    import dataclasses

    from slimda_nas.train.config import RunConfig

    cfg = tiny_run_config(tmp_path, tiny_task).replace(shrinking={"stages": 2, "fraction": 0.5})
    assert cfg.shrinking.order == "together"
    assert cfg.replace(shrinking={"order": "ofa"}).training_hash() != cfg.training_hash()
    now = cfg.training_hash()

    def before_order_existed(self):
        d = dataclasses.asdict(self)
        del d["shrinking"]["order"]
        return d

    monkeypatch.setattr(RunConfig, "to_dict", before_order_existed)
    assert cfg.training_hash() == now


def test_teacher_stage_distils_into_reduced_depths_and_resolutions(tmp_path, tiny_task):
    """Stage outputs are read at each sampled depth (a stage's last block that runs), and a
    lower resolution's smaller maps are compared with the teacher's pooled ones."""
    space = tiny_elastic_space(tmp_path / "space")
    cfg = tiny_run_config(tmp_path, tiny_task, space=str(space), iterations=2, log_every=1)
    cfg = cfg.replace(
        models_per_step=1,
        teacher={"iterations": 3, "models_per_step": 3},
        ordering={"criterion": "l1_next"},
        shrinking={"stages": 1, "fraction": 0.5, "order": "ofa"},
        eval_every=0,
    )
    train_bank(cfg, show_progress=False)
    lines = (cfg.run_dir / "metrics.jsonl").read_text().splitlines()
    steps = [x for x in map(json.loads, lines) if x.get("phase") == "teacher"]
    assert len(steps) == 3 and all(x["teacher_features"] > 0 for x in steps)
    drawn = [
        sample_model_batch(load_space(space), 3, cfg.seed, it)[1:]
        for it in range(cfg.total_iterations - 3, cfg.total_iterations)
    ]
    assert any(c["resolution"] < load_space(space).input_size for b in drawn for c in b)


def test_a_smallest_budget_trains_and_reports_a_model_of_that_budget(
    tmp_path, tiny_task, monkeypatch
):
    """Every step trains the floor as the sandwich's smallest, and the run's accuracy lines
    report it; a budget no uniform model fits is a one-line error before anything is written."""
    from slimda_nas.bank import ModelBank
    from slimda_nas.cost.macs import CostModel
    from slimda_nas.errors import ConfigError
    from slimda_nas.methods import HEADS
    from slimda_nas.train import loop

    space = tiny_elastic_space(tmp_path / "space")
    s = load_space(space)
    cost = CostModel(ModelBank.build(s, 3, heads=HEADS))  # the tiny task's 3 classes
    floor = s.uniform(cost.widest_uniform_ratio(cost.macs(s.largest()) // 16))
    assert cost.macs(s.smallest()) < cost.macs(floor)
    trained, reported = [], []
    sample, accuracy = loop.sample_model_batch, loop.accuracy
    monkeypatch.setattr(
        loop, "sample_model_batch", lambda *a: trained.append(sample(*a)) or trained[-1]
    )
    monkeypatch.setattr(
        loop, "accuracy", lambda b, c, *a: reported.append(c) or accuracy(b, c, *a)
    )
    cfg = tiny_run_config(tmp_path, tiny_task, space=str(space), iterations=4, eval_every=4)
    train_bank(cfg.replace(smallest_budget="1/16", models_per_step=3), show_progress=False)
    assert len(trained) == 4 and all(batch[1] == floor for batch in trained)
    assert reported == [s.largest(), floor]
    unfit = cfg.replace(smallest_budget="1/100000", out=str(tmp_path / "unfit"))
    with pytest.raises(ConfigError, match=r"^field 'smallest_budget': 1/100000: no uniform"):
        train_bank(unfit, show_progress=False)
    assert not unfit.run_dir.exists() or not any(unfit.run_dir.iterdir())
