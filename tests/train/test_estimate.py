"""The wall-time estimate of ``train --dry-run``: each phase of the run timed on its own."""

from __future__ import annotations

import torch

from slimda_nas.space import load_space
from slimda_nas.train import load_run_config, time_training_steps


def test_each_phase_is_timed_and_nothing_changes():
    cfg = load_run_config("usps_mnist", batch_size=4, iterations=5, device="cpu")
    staged = cfg.replace(teacher={"iterations": 7, "models_per_step": 2})
    space = load_space(cfg.space)
    rng = torch.random.get_rng_state()
    t = time_training_steps(staged, space, 10, steps=1, images=100)
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert [(p.phase, p.iterations, p.models_per_step) for p in t.phases] == [
        ("adaptation", 5, cfg.models_per_step),
        ("teacher", 7, 2),
    ]
    assert all(p.seconds_per_iteration > 0 for p in t.phases) and t.cache_seconds > 0
    by_phase = sum(p.seconds_per_iteration * p.iterations for p in t.phases)
    assert t.total_seconds == by_phase + t.cache_seconds
    # without a teacher stage: adaptation only, no teacher pass
    plain = time_training_steps(cfg, space, 10, steps=1, images=100)
    assert [p.phase for p in plain.phases] == ["adaptation"] and plain.cache_seconds == 0
