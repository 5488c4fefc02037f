"""A model bank: a slimmable network bound to its search space and task."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from slimda_nas.backbones import SlimBackbone
from slimda_nas.slim.elastic import apply_setting, current_setting
from slimda_nas.slim.materialize import materialize_setting
from slimda_nas.space import SearchSpace


@dataclass
class ModelBank:
    """A weight-sharing network whose sub-networks are the configurations of ``space``.

    ``deploy_head`` is the head a deployed sub-network keeps (``ca`` for SlimDA).
    """

    space: SearchSpace
    model: SlimBackbone
    classes: Sequence[str] = field(default_factory=list)
    deploy_head: str | None = None

    def __post_init__(self) -> None:
        if self.deploy_head is None:
            self.deploy_head = self.model.head_names[0]
        if self.deploy_head not in self.model.head_names:
            raise ValueError(f"deploy head {self.deploy_head!r} not in {self.model.head_names}")

    @classmethod
    def build(
        cls, space: SearchSpace, num_classes: int, heads: Sequence[str] = ("fc",), **kwargs
    ) -> ModelBank:
        model = space.build(
            num_classes=num_classes, heads=heads, weights=kwargs.pop("weights", None)
        )
        return cls(space, model, **kwargs)

    def example_input(
        self, batch: int = 1, config: Mapping[str, float | int] | None = None
    ) -> torch.Tensor:
        """Zeros shaped like ``batch`` inputs: stored images, or ``config``'s own resolution."""
        p = next(self.model.parameters())
        shape = self.space.input_shape if config is None else self.space.input_shape_at(config)
        return torch.zeros(batch, *shape, device=p.device, dtype=p.dtype)

    def set_config(self, config: Mapping[str, float | int]) -> None:
        """Run the bank at ``config`` (widths, depths, resolution) from now on."""
        apply_setting(self.model, self.space.setting(config))

    @contextmanager
    def use(self, config: Mapping[str, float | int]) -> Iterator[nn.Module]:
        """Run the bank at ``config`` inside the block, then restore what it ran at before."""
        previous = current_setting(self.model)
        self.set_config(config)
        try:
            yield self.model
        finally:
            apply_setting(self.model, previous)

    def materialize(self, config: Mapping[str, float | int], head: str | None = None) -> nn.Module:
        """The sub-network at ``config`` as plain PyTorch layers, keeping one head; it takes
        inputs at ``config``'s resolution and holds only the blocks its depths run."""
        return materialize_setting(
            self.model,
            self.space.setting(config),
            self.example_input(config=config),
            keep_heads=(head or self.deploy_head,),
        )


def materialize(
    bank: ModelBank, config: Mapping[str, float | int], head: str | None = None
) -> nn.Module:
    """Standalone plain-PyTorch sub-network of ``bank`` at ``config`` (see :class:`ModelBank`)."""
    return bank.materialize(config, head)
