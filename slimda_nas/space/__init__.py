"""Search spaces: YAML files of units, width choices and tied groups, and the elastic units
(stage depths, input resolution)."""

from slimda_nas.space._load import load_config, load_space, resolve_space_path, space_from_dict
from slimda_nas.space._model import (
    DEPTH_PREFIX,
    RESOLUTION,
    Config,
    SearchSpace,
    Unit,
    make_divisible,
)

__all__ = [
    "DEPTH_PREFIX",
    "RESOLUTION",
    "Config",
    "SearchSpace",
    "Unit",
    "load_config",
    "load_space",
    "make_divisible",
    "resolve_space_path",
    "space_from_dict",
]
