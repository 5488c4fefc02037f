"""``slimda``: SymNet confusion for every sampled model plus Stochastic Ensemble Distillation
into the third head Ca (the Optimization-Separated Tri-Classifier, docs/method.md, "Training one model bank").

Routing: L_dc reaches Cs/Ct (L_C) and the backbone (L_G), never Ca; L_seed reaches Ca and the
backbone, never Cs/Ct (Ca is simply not used by L_dc, and Cs/Ct enter L_seed only through the
detached ensemble target).
"""

from __future__ import annotations

from slimda_nas.methods._base import HEADS, Method
from slimda_nas.methods.losses import (
    confusion_lambda,
    folded_probabilities,
    seed_target,
    soft_cross_entropy,
)
from slimda_nas.methods.symnet import SymNet


class SlimDA(Method):
    name = "slimda"
    trained_heads = HEADS
    default_deploy_head = "ca"

    def __init__(
        self,
        temperature: float = 0.5,
        weight: float = 1.0,
        confidence: str = "max",
        ramp: bool = False,
    ) -> None:
        self.temperature = temperature
        self.weight = weight
        self.confidence = confidence
        # SEED's target is the sharpened ensemble of the bank's own target predictions: early
        # in training it is often wrong, and at full weight it teaches the backbone its mistakes
        self.ramp = ramp

    @classmethod
    def from_options(cls, **seed_options) -> SlimDA:
        return cls(**seed_options)

    def model_terms(self, model, f_src, f_tgt, y_src, progress):
        terms = SymNet.confusion_terms(model, f_src, f_tgt, y_src, progress)
        q = folded_probabilities(model.cs(f_tgt), model.ct(f_tgt)).detach()
        return terms, (q, model.ca(f_tgt))

    def ensemble_terms(self, model, states, progress):
        target = seed_target([q for q, _ in states], self.temperature, self.confidence)
        seed = sum(soft_cross_entropy(target, ca_logits) for _, ca_logits in states)
        weight = self.weight * (confusion_lambda(progress) if self.ramp else 1.0)
        return {"seed": weight * seed}
