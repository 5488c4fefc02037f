"""Elastic depth and resolution on a backbone: plain attributes, set and restored together with
the widths; a skipped block is an identity."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from slimda_nas.backbones import build_backbone
from slimda_nas.slim.elastic import (
    Setting,
    apply_setting,
    current_setting,
    resize_input,
    set_depths,
    skipped_blocks,
)


def test_resize_input_is_the_antialiased_bilinear_shrink_and_a_no_op_at_size():
    x = torch.randn(2, 3, 32, 32)
    assert resize_input(x, None) is x and resize_input(x, 32) is x
    y = resize_input(x, 20)
    ref = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False, antialias=True)
    assert y.shape == (2, 3, 20, 20) and torch.equal(y, ref)


@pytest.mark.parametrize("name,stage", [("resnet50", "layer3"), ("efficientnet_lite0", "stage5")])
def test_depth_and_resolution_are_set_and_restored_with_the_widths(name, stage):
    torch.manual_seed(0)
    model = build_backbone(name, num_classes=4).eval()
    blocks = model.depth_stages()[stage]
    x = torch.randn(2, 3, 48, 48)
    ran = []
    for b in blocks:
        model.get_submodule(b).register_forward_pre_hook(lambda m, i, b=b: ran.append(b))
    first = model.get_submodule(blocks[0])
    first.register_forward_pre_hook(lambda m, i: ran.append(tuple(i[0].shape[-2:])))
    with torch.no_grad():
        model(x)
        full_maps = ran[1]
        apply_setting(model, Setting(depths={stage: 1}, resolution=32))
        assert skipped_blocks(model) == list(blocks[1:])
        saved = current_setting(model)
        ran.clear()
        reduced = model(x)
        assert ran[0] == blocks[0] and ran[2:] == []  # the first block only
        assert ran[1] < full_maps  # on the maps of the input shrunk to 32 px
        # a skipped residual block is an identity: replacing it by one gives the same output
        apply_setting(model, Setting(resolution=32))
        for b in blocks[1:]:
            parent, _, child = b.rpartition(".")
            model.get_submodule(parent)._modules[child] = torch.nn.Identity()
        assert torch.allclose(model(x), reduced, atol=1e-6)
    assert saved.depths == {stage: 1} and saved.resolution == 32
    apply_setting(model, Setting())
    assert model.active_depths == {} and model.active_resolution is None


def test_bad_depths_name_the_stage():
    model = build_backbone("resnet50", num_classes=4)
    with pytest.raises(KeyError, match="layer9"):
        set_depths(model, {"layer9": 1})
    with pytest.raises(ValueError, match="stage 'layer1': depth 0 outside 1..3"):
        set_depths(model, {"layer1": 0})
    assert build_backbone("digits_cnn").depth_stages() == {}
