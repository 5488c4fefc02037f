"""Slimmable backbones, registered by name: ``digits_cnn``, ``resnet50``, ``efficientnet_lite0``."""

from slimda_nas.backbones import digits as _digits  # noqa: F401  (registers)
from slimda_nas.backbones import efficientnet_lite as _efficientnet_lite  # noqa: F401
from slimda_nas.backbones import resnet as _resnet  # noqa: F401
from slimda_nas.backbones._base import SlimBackbone
from slimda_nas.backbones._registry import (
    build_backbone,
    get_builder,
    list_backbones,
    register_backbone,
)

__all__ = ["SlimBackbone", "build_backbone", "get_builder", "list_backbones", "register_backbone"]
