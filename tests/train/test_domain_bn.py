"""``domain_bn: separate``: each domain goes through BatchNorm alone, so the target features
of a training step are those of a target-only batch (and differ from the joint forward's)."""

from __future__ import annotations

import pytest
import torch

from slimda_nas.errors import ConfigError
from slimda_nas.space import load_space
from slimda_nas.train import train_bank
from slimda_nas.train.step import BankStep
from tests.conftest import SPACES, tiny_run_config


class _Recorder:
    """A method that keeps the features it is given and returns a zero loss."""

    uses_target = True

    def __init__(self):
        self.seen = []

    def model_terms(self, model, f_src, f_tgt, y_src, progress):
        self.seen.append((f_src.detach().clone(), f_tgt.detach().clone()))
        return {"zero": f_src.sum() * 0}, None

    def ensemble_terms(self, model, states, progress):
        return {}


def _features(separate: bool):
    torch.manual_seed(0)
    space = load_space(SPACES / "digits_cnn.yaml")
    model = space.build(num_classes=10, heads=("cs", "ct"))
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0  # only BatchNorm should differ between the forwards
    model.train()
    rec = _Recorder()
    step = BankStep(model, rec, separate_domains=separate)
    shape = (6, space.input_channels, space.input_size, space.input_size)
    x_src = torch.randn(shape)
    x_tgt = torch.randn(shape) * 3 + 2  # another domain: other statistics
    widths = [space.layer_widths(space.largest())]
    step(x_src, torch.zeros(6, dtype=torch.long), x_tgt, widths, 0.5)
    return model, rec.seen[0], x_src, x_tgt


def test_separate_domains_normalise_each_domain_alone():
    model, (f_src, f_tgt), x_src, x_tgt = _features(separate=True)
    _, (j_src, j_tgt), _, _ = _features(separate=False)
    with torch.no_grad():
        alone = model.forward_features(x_tgt)  # train mode: the target batch's own statistics
    assert torch.allclose(f_tgt, alone, atol=1e-5)
    assert not torch.allclose(f_tgt, j_tgt, atol=1e-3)  # the joint forward mixes the domains
    assert not torch.allclose(f_src, j_src, atol=1e-3)


def test_a_run_with_separate_domains_trains(tmp_path, tiny_task):
    cfg = tiny_run_config(tmp_path, tiny_task, iterations=4, domain_bn="separate")
    result = train_bank(cfg, show_progress=False)
    assert result.iterations == 4
    joint = tiny_run_config(tmp_path / "j", tiny_task, iterations=4)
    assert cfg.training_hash() != joint.training_hash()


def test_domain_bn_is_checked(tmp_path, tiny_task):
    cfg = tiny_run_config(tmp_path, tiny_task)
    with pytest.raises(ConfigError, match="field 'domain_bn': expected one of joint, separate"):
        cfg.replace(domain_bn="per-domain")
