"""Gradient routing (docs/method.md, "Training one model bank"): each loss reaches only the parameters it should."""

from __future__ import annotations

import torch

from slimda_nas.bank import ModelBank
from slimda_nas.methods import HEADS, SlimDA, SymNet
from slimda_nas.methods._base import features_only, head_only
from slimda_nas.methods.losses import symnet_classifier_loss, symnet_feature_loss
from slimda_nas.space import load_space
from tests.conftest import SPACES


def _setup():
    torch.manual_seed(0)
    bank = ModelBank.build(load_space(SPACES / "digits_cnn.yaml"), 3, heads=HEADS)
    x = torch.randn(8, 3, 32, 32)
    y = torch.randint(0, 3, (4,))
    return bank.model.train(), x, y


def _grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    has = lambda prefix: any(  # noqa: E731
        p.grad is not None and p.grad.abs().sum() > 0
        for n, p in model.named_parameters()
        if n.startswith(prefix)
    )
    return {"backbone": has("conv"), "cs": has("cs."), "ct": has("ct."), "ca": has("ca.")}


def test_classifier_side_reaches_heads_only():
    model, x, y = _setup()
    f = model.forward_features(x)
    logits = [
        head_only(model.cs, f[:4]),
        head_only(model.ct, f[:4]),
        head_only(model.cs, f[4:]),
        head_only(model.ct, f[4:]),
    ]
    terms = symnet_classifier_loss(*logits, y)
    g = _grads(model, sum(terms.values()))
    assert g == {"backbone": False, "cs": True, "ct": True, "ca": False}


def test_feature_side_reaches_backbone_only():
    model, x, y = _setup()
    f = model.forward_features(x)
    logits = [
        features_only(model.cs, f[:4]),
        features_only(model.ct, f[:4]),
        features_only(model.cs, f[4:]),
        features_only(model.ct, f[4:]),
    ]
    terms = symnet_feature_loss(*logits, y, lam=1.0)
    g = _grads(model, sum(terms.values()))
    assert g == {"backbone": True, "cs": False, "ct": False, "ca": False}


def test_seed_reaches_ca_and_backbone_never_cs_ct():
    model, x, y = _setup()
    method = SlimDA()
    states = []
    for _ in range(2):
        f = model.forward_features(x)
        _, state = method.model_terms(model, f[:4], f[4:], y, 0.5)
        states.append(state)
    g = _grads(model, method.ensemble_terms(model, states, 1.0)["seed"])
    assert g == {"backbone": True, "cs": False, "ct": False, "ca": True}


def test_domain_confusion_never_reaches_ca():
    model, x, y = _setup()
    f = model.forward_features(x)
    terms, _ = SymNet().model_terms(model, f[:4], f[4:], y, 0.5)
    g = _grads(model, sum(terms.values()))
    assert g == {"backbone": True, "cs": True, "ct": True, "ca": False}


def test_slimda_total_matches_sum_of_routed_parts():
    """The one-backward step equals L_C on the heads plus L_G on the backbone, term by term."""
    model, x, y = _setup()
    torch.manual_seed(1)  # same dropout mask in both forwards
    f = model.forward_features(x)
    terms, _ = SymNet().model_terms(model, f[:4], f[4:], y, 0.3)
    model.zero_grad()
    sum(terms.values()).backward()
    combined = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    # L_C alone on the heads
    torch.manual_seed(1)
    f = model.forward_features(x)
    model.zero_grad()
    logits = [model.cs(f[:4]), model.ct(f[:4]), model.cs(f[4:]), model.ct(f[4:])]
    sum(symnet_classifier_loss(*logits, y).values()).backward()
    for n, p in model.named_parameters():
        if n.startswith(("cs.", "ct.")):
            torch.testing.assert_close(combined[n], p.grad)


def test_seed_ramp_follows_the_confusion_schedule():
    from slimda_nas.methods.losses import confusion_lambda

    model, x, y = _setup()
    f = model.forward_features(x)
    states = [SlimDA().model_terms(model, f[:4], f[4:], y, 0.3)[1]]
    full = SlimDA(weight=2.0).ensemble_terms(model, states, 0.3)["seed"]
    ramped = SlimDA(weight=2.0, ramp=True)
    assert float(ramped.ensemble_terms(model, states, 0.0)["seed"].detach()) == 0.0
    assert torch.allclose(
        ramped.ensemble_terms(model, states, 0.3)["seed"], full * confusion_lambda(0.3)
    )
    assert float(full.detach()) > 0
