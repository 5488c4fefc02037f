"""``symnet``: SymNet domain confusion (L_C on the heads, L_G on the backbone) for every model."""

from __future__ import annotations

from slimda_nas.methods._base import Method, features_only, head_only
from slimda_nas.methods.losses import (
    confusion_lambda,
    symnet_classifier_loss,
    symnet_feature_loss,
)


class SymNet(Method):
    name = "symnet"
    trained_heads = ("cs", "ct")
    default_deploy_head = "ct"

    def model_terms(self, model, f_src, f_tgt, y_src, progress):
        terms = self.confusion_terms(model, f_src, f_tgt, y_src, progress)
        return terms, None

    @staticmethod
    def confusion_terms(model, f_src, f_tgt, y_src, progress):
        # The two sides get the same logits with different detachments: L_C reaches only the
        # heads, L_G only the backbone (docs/method.md; a gradient-reversal layer is not equivalent).
        heads = [
            head_only(model.cs, f_src),
            head_only(model.ct, f_src),
            head_only(model.cs, f_tgt),
            head_only(model.ct, f_tgt),
        ]
        terms = symnet_classifier_loss(*heads, y_src)
        feats = [
            features_only(model.cs, f_src),
            features_only(model.ct, f_src),
            features_only(model.cs, f_tgt),
            features_only(model.ct, f_tgt),
        ]
        terms.update(symnet_feature_loss(*feats, y_src, confusion_lambda(progress)))
        return terms
