"""``source_only``: cross-entropy on labelled source images, no target data (the lower bound)."""

from __future__ import annotations

import torch.nn.functional as F

from slimda_nas.methods._base import HEADS, Method


class SourceOnly(Method):
    name = "source_only"
    uses_target = False
    trained_heads = HEADS
    default_deploy_head = "ca"

    def model_terms(self, model, f_src, f_tgt, y_src, progress):
        ce = sum(F.cross_entropy(getattr(model, h)(f_src), y_src) for h in self.trained_heads)
        return {"src_ce": ce}, None
