"""In-place distillation (Yu & Huang, "Universally slimmable networks", ICCV 2019), the warm-up
before adaptation: the largest sampled model learns the source labels on every head; every
other sampled width learns the largest's predictions (softened by a temperature, detached),
on source and / or target images. No target label is used."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from slimda_nas.methods._base import HEADS, Method


class InplaceDistillation(Method):
    name = "inplace_distillation"
    trained_heads = HEADS
    default_deploy_head = "ca"

    def __init__(self, images: str = "both", temperature: float = 1.0) -> None:
        self.images = images
        self.temperature = temperature
        self.uses_target = images in ("target", "both")

    def model_terms(self, model, f_src, f_tgt, y_src, progress):
        taught = {"source": [f_src], "target": [f_tgt], "both": [f_src, f_tgt]}[self.images]
        f = torch.cat([t for t in taught if t is not None and len(t)])
        distilled = {h: getattr(model, h)(f) for h in HEADS}
        source = (
            {h: v[: len(f_src)] for h, v in distilled.items()}
            if self.images != "target"
            else {h: getattr(model, h)(f_src) for h in HEADS}
        )
        return {}, (source, distilled, y_src)

    def ensemble_terms(self, model, states, progress):
        """The first state is the largest model's: the sandwich samples it first."""
        (src, teacher, y), students = states[0], states[1:]
        t = self.temperature
        ce = sum(F.cross_entropy(src[h], y) for h in HEADS)  # the teacher learns the labels
        soft = {h: F.softmax(teacher[h].detach() / t, dim=1) for h in HEADS}
        kd = sum(
            F.kl_div(F.log_softmax(s[h] / t, dim=1), soft[h], reduction="batchmean") * t * t
            for _, s, _ in students
            for h in HEADS
        )
        return {"warmup_ce": ce, "warmup_kd": kd if students else torch.zeros_like(ce)}
