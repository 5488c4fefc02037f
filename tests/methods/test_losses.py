"""Each loss term against a hand computation on a tiny batch (K = 2 classes)."""

from __future__ import annotations

import math

import pytest
import torch

from slimda_nas.methods.losses import (
    confusion_lambda,
    folded_probabilities,
    seed_target,
    soft_cross_entropy,
    symnet_classifier_loss,
    symnet_feature_loss,
)

# one source image (label 1) and one target image; logits of Cs and Ct
S_SRC, T_SRC = [0.5, 1.0], [0.0, 2.0]
S_TGT, T_TGT = [1.0, -1.0], [0.2, 0.3]
Y = 1


def _softmax(v):
    e = [math.exp(x) for x in v]
    return [x / sum(e) for x in e]


def _t(v):
    return torch.tensor([v])


def test_lambda_schedule():
    assert confusion_lambda(0.0) == 0.0
    assert confusion_lambda(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert confusion_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)


def test_classifier_loss_by_hand():
    ce = -math.log(_softmax(S_SRC)[Y]) - math.log(_softmax(T_SRC)[Y])
    p_src = _softmax(S_SRC + T_SRC)
    p_tgt = _softmax(S_TGT + T_TGT)
    domain = -math.log(p_src[0] + p_src[1]) - math.log(p_tgt[2] + p_tgt[3])
    terms = symnet_classifier_loss(_t(S_SRC), _t(T_SRC), _t(S_TGT), _t(T_TGT), torch.tensor([Y]))
    assert terms["cls_ce"].item() == pytest.approx(ce, rel=1e-6)
    assert terms["cls_domain"].item() == pytest.approx(domain, rel=1e-6)


def test_feature_loss_by_hand():
    lam = 0.7
    p_src = _softmax(S_SRC + T_SRC)
    category = 0.5 * -math.log(p_src[Y]) + 0.5 * -math.log(p_src[Y + 2])
    p_tgt = _softmax(S_TGT + T_TGT)
    domain = -0.5 * (math.log(p_tgt[0] + p_tgt[1]) + math.log(p_tgt[2] + p_tgt[3]))
    q = [p_tgt[0] + p_tgt[2], p_tgt[1] + p_tgt[3]]
    entropy = -sum(x * math.log(x) for x in q)
    terms = symnet_feature_loss(_t(S_SRC), _t(T_SRC), _t(S_TGT), _t(T_TGT), torch.tensor([Y]), lam)
    assert terms["feat_category"].item() == pytest.approx(category, rel=1e-6)
    assert terms["feat_domain"].item() == pytest.approx(lam * domain, rel=1e-6)
    assert terms["feat_entropy"].item() == pytest.approx(lam * entropy, rel=1e-6)
    q_t = folded_probabilities(_t(S_TGT), _t(T_TGT))[0].tolist()
    assert q_t == pytest.approx(q)


def test_seed_target_by_hand():
    p1, p2 = [0.9, 0.1], [0.4, 0.6]
    c1, c2 = 0.9, 0.6
    w1, w2 = c1 / (c1 + c2), c2 / (c1 + c2)
    bar = [w1 * a + w2 * b for a, b in zip(p1, p2)]
    sharp = [x**2 for x in bar]  # T = 0.5
    expected = [x / sum(sharp) for x in sharp]
    got = seed_target([_t(p1), _t(p2)], temperature=0.5)
    assert got[0].tolist() == pytest.approx(expected, rel=1e-6)
    # entropy confidence
    h = lambda p: -sum(x * math.log(x) for x in p)  # noqa: E731
    e1, e2 = 1 - h(p1) / math.log(2), 1 - h(p2) / math.log(2)
    bar = [(e1 * a + e2 * b) / (e1 + e2) for a, b in zip(p1, p2)]
    got = seed_target([_t(p1), _t(p2)], temperature=1.0, confidence="entropy")
    assert got[0].tolist() == pytest.approx(bar, rel=1e-5)


def test_seed_target_is_detached_and_soft_ce():
    p = torch.tensor([[0.3, 0.7]], requires_grad=True)
    target = seed_target([p], temperature=0.5)
    assert not target.requires_grad
    logits = torch.tensor([[0.0, 1.0]])
    expected = -(
        target[0, 0] * math.log(_softmax([0.0, 1.0])[0])
        + target[0, 1] * math.log(_softmax([0.0, 1.0])[1])
    )
    assert soft_cross_entropy(target, logits).item() == pytest.approx(expected.item(), rel=1e-6)
