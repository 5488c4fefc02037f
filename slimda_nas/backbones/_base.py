"""What every slimmable backbone provides to the rest of the pipeline."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from slimda_nas.errors import CheckpointError
from slimda_nas.slim.elastic import resize_input
from slimda_nas.slim.ops import SlimLinear, is_width_owner
from slimda_nas.slim.ordering import ChannelGroup


class SlimBackbone(nn.Module):
    """A weight-sharing network: a feature extractor plus one or more linear heads.

    Heads are child modules named after the head (``fc`` for a torchvision-style single head,
    ``cs``/``ct``/``ca`` for the SlimDA tri-classifier), so the dense network's parameter
    names are kept. Subclasses implement :meth:`forward_features` and :meth:`tied_layers`,
    and, to offer elastic depth and resolution, :meth:`depth_stages` and :meth:`fit_input`.
    """

    #: Whether the network runs at any input size (global pooling before the heads), so that a
    #: search space may offer input resolutions below its stored size.
    elastic_resolution: bool = True

    def __init__(self, head_names: Sequence[str]) -> None:
        super().__init__()
        if not head_names or len(set(head_names)) != len(head_names):
            raise ValueError(f"head names must be unique and non-empty, got {list(head_names)}")
        self.head_names: tuple[str, ...] = tuple(head_names)
        # Elastic dimensions (slimda_nas.slim.elastic): stage -> blocks run (absent: all of
        # them) and the side the input is resized to (None: as given).
        self.active_depths: dict[str, int] = {}
        self.active_resolution: int | None = None

    def fit_input(self, x: Tensor) -> Tensor:
        """The input at the active resolution; every ``forward_features`` starts with it."""
        return resize_input(x, self.active_resolution)

    def depth_stages(self) -> dict[str, tuple[str, ...]]:
        """Stages whose trailing blocks may be skipped -> their blocks' module names in order.

        Only residual blocks whose input and output shapes agree can be skipped (an
        identity); a stage's first block changes the shape and always runs.
        """
        return {}

    def stage_depth(self, stage: str, blocks: int) -> int:
        """How many of the stage's ``blocks`` run at the active depths."""
        return self.active_depths.get(stage, blocks)

    def _make_heads(self, in_features: int, num_classes: int) -> None:
        for name in self.head_names:
            self.add_module(name, SlimLinear(in_features, num_classes))

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled features, shape (N, D), at the active widths."""
        raise NotImplementedError

    def forward(self, x: Tensor, heads: Sequence[str] | None = None) -> Tensor | dict[str, Tensor]:
        """Logits of the first head, or a dict of logits for the named ``heads``."""
        f = self.forward_features(x)
        if heads is None:
            return getattr(self, self.head_names[0])(f)
        return {h: getattr(self, h)(f) for h in heads}

    def tied_layers(self) -> list[tuple[str, ...]]:
        """Groups of layers whose outputs are added together and so must share a width."""
        return []

    def channel_groups(self) -> list[ChannelGroup]:
        """Every set of channels one permutation must reorder (for ordering channels by
        importance, ``slimda_nas.slim.ordering``): producers, the per-channel layers that follow
        them and the layers that read them, the heads included."""
        raise NotImplementedError(f"{type(self).__name__} does not describe its channel groups")

    def stage_outputs(self) -> list[str]:
        """Modules whose outputs are the network's successive representations (a stage's
        residual stream), for dense distillation; their channels are sliced like the layers'."""
        return []

    def _head_consumers(self) -> tuple[tuple[str, int], ...]:
        return tuple((h, 1) for h in self.head_names)

    def searchable_layers(self) -> dict[str, int]:
        """Layers whose output width a search space may set, with their full widths."""
        out = {}
        for name, m in self.named_modules():
            if is_width_owner(m) and name not in self.head_names:
                out[name] = m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
        return out

    default_input_size = 224
    #: Defaults written by ``slimda-nas space init`` (subclasses override).
    space_defaults: dict = {"widths": [0.25, 0.5, 0.75, 1.0], "divisor": 8, "min_channels": 8}

    def default_units(self) -> dict[str, list[str]]:
        """Units for a new search space: one per tied group, one per other searchable layer."""
        layers = self.searchable_layers()
        tied = {layer: group for group in self.tied_layers() for layer in group}
        units: dict[str, list[str]] = {}
        for layer in layers:
            if layer in tied:
                group = tied[layer]
                if layer == group[0]:
                    units[f"{layer}+tied"] = list(group)
            else:
                units[layer] = [layer]
        return units

    def head_modules(self) -> dict[str, nn.Module]:
        return {h: getattr(self, h) for h in self.head_names}


def load_dense_state_dict(
    model: SlimBackbone, state_dict: dict, source: str, classifier: str | None = None
) -> list[str]:
    """Load a dense (full-width) checkpoint into ``model``.

    Every backbone tensor must be present with its full shape. Head tensors load where the
    checkpoint has them under the head's name (e.g. ``fc`` for a torchvision-style model);
    ``classifier`` names the checkpoint's own classifier (``fc``, ``_fc``), whose tensors may be
    left over when the model has other heads. Returns the head tensors left at initialisation.
    """
    own = model.state_dict()
    heads = set(model.head_names)
    is_head = lambda k: k.split(".", 1)[0] in heads  # noqa: E731
    missing = [k for k in own if k not in state_dict and not is_head(k)]
    if missing:
        raise CheckpointError(
            f"{source}: {len(missing)} backbone tensors missing, first {missing[0]!r} "
            f"(is this a {type(model).__name__} checkpoint?)"
        )
    leftover = [
        k
        for k in state_dict
        if k not in own and not (classifier and k.split(".", 1)[0] == classifier)
    ]
    if leftover:
        raise CheckpointError(
            f"{source}: unexpected tensor {leftover[0]!r} for {type(model).__name__}"
        )
    to_load = {}
    for k, v in state_dict.items():
        if k not in own:
            continue
        if tuple(v.shape) != tuple(own[k].shape):
            if is_head(k):
                continue  # a classifier for another number of classes
            raise CheckpointError(
                f"{source}: tensor {k!r} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}"
            )
        to_load[k] = v
    model.load_state_dict(to_load, strict=False)
    return [k for k in own if k not in to_load]


def read_state_dict_file(path: str | os.PathLike, expected: str) -> dict[str, Tensor]:
    """A state_dict saved with ``torch.save``; every problem is a one-line CheckpointError.

    ``expected`` says what the file should hold (for the message).
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: file not found (expected {expected})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many types for a truncated or foreign file
        raise CheckpointError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected {expected}, got {type(state).__name__}")
    return state
