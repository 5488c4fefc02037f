"""Search spaces: YAML files of units, width choices and tied groups."""

from slimda_nas.space._load import (
    MAX_INPUT_SIZE,
    load_config,
    load_space,
    resolve_space_path,
    space_from_dict,
)
from slimda_nas.space._model import Config, SearchSpace, Unit, make_divisible

__all__ = [
    "MAX_INPUT_SIZE",
    "Config",
    "SearchSpace",
    "Unit",
    "load_config",
    "load_space",
    "make_divisible",
    "resolve_space_path",
    "space_from_dict",
]
