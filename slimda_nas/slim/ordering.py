"""Channel ordering by importance: the most important channels first, so that a sub-network,
which runs on the FIRST channels of every layer, keeps the ones that matter.

A backbone describes its *channel groups* (:class:`ChannelGroup`): sets of channels that one
permutation must reorder everywhere they appear, as the output of its producer layers (tied
layers share one group), of the per-channel layers that follow them (batch norm, depthwise
convs) and as the input of its consumer layers. Permuting a group everywhere leaves the dense
network's function unchanged (up to float rounding), so ordering is exact at full width
(once-for-all's ``re_organize_middle_weights``, BootstrapNAS's ``reorganize_weights``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["CRITERIA", "ChannelGroup", "channel_permutations", "permute_named", "reorder_channels"]


@dataclass(frozen=True)
class ChannelGroup:
    """One set of channels that a single permutation reorders.

    ``producers``: layers whose output channels these are (their weights' dim 0).
    ``followers``: per-channel layers on them (batch norm, depthwise conv): dim 0 of every tensor.
    ``consumers``: (layer, block) pairs reading them as input (dim 1 of the weight); ``block`` > 1
    when a flattened feature map is read (channel c is inputs c*block .. c*block + block - 1).
    """

    producers: tuple[str, ...]
    followers: tuple[str, ...] = ()
    consumers: tuple[tuple[str, int], ...] = ()


def _l1_next(model: nn.Module, g: ChannelGroup) -> Tensor:
    """Once-for-all's criterion: L1 norm of the next layers' input weights of each channel."""
    modules = dict(model.named_modules())
    total = 0.0
    for name, block in g.consumers:
        w = modules[name].weight.detach().abs()
        w = w.reshape(w.shape[0], -1, block, *w.shape[2:]) if block > 1 else w.unsqueeze(2)
        total = total + w.transpose(0, 1).reshape(w.shape[1], -1).sum(1)
    return torch.as_tensor(total)


def _l1_out(model: nn.Module, g: ChannelGroup) -> Tensor:
    """L1 norm of each producer filter, summed over tied producers."""
    modules = dict(model.named_modules())
    return sum(modules[n].weight.detach().abs().flatten(1).sum(1) for n in g.producers)


def _bn_gamma(model: nn.Module, g: ChannelGroup) -> Tensor:
    """|gamma| of the batch norms that follow the producers (network slimming's criterion)."""
    modules = dict(model.named_modules())
    norms = [
        modules[n] for n in g.followers if isinstance(modules[n], nn.modules.batchnorm._NormBase)
    ]
    if not norms:
        return _l1_out(model, g)
    return sum(m.weight.detach().abs() for m in norms)


CRITERIA: dict[str, Callable[[nn.Module, ChannelGroup], Tensor]] = {
    "l1_next": _l1_next,
    "l1_out": _l1_out,
    "bn_gamma": _bn_gamma,
}
"""Importance criteria by name (the run config's ``ordering.criterion``)."""


def channel_permutations(
    model: nn.Module, groups: Iterable[ChannelGroup], criterion: str
) -> list[tuple[ChannelGroup, Tensor]]:
    """Per group, the permutation that puts its channels in descending importance (stable, so
    equal scores keep today's order)."""
    score = CRITERIA[criterion]
    return [(g, torch.sort(score(model, g), descending=True, stable=True).indices) for g in groups]


def _tensor_rules(
    perms: list[tuple[ChannelGroup, Tensor]],
) -> dict[str, list[tuple[int, Tensor]]]:
    """Tensor-name prefix -> [(dim, index)] to apply, from every group that touches it."""
    rules: dict[str, list[tuple[int, Tensor]]] = {}
    for g, perm in perms:
        for name in (*g.producers, *g.followers):
            rules.setdefault(name, []).append((0, perm))
        for name, block in g.consumers:
            idx = perm if block == 1 else (perm[:, None] * block + torch.arange(block)).flatten()
            rules.setdefault(name, []).append((1, idx))
    return rules


def permute_named(
    tensors: Mapping[str, Tensor], perms: list[tuple[ChannelGroup, Tensor]]
) -> dict[str, Tensor]:
    """``tensors`` (a state_dict, or optimizer buffers keyed like one) with every group's
    permutation applied; tensors no group touches are returned as they are."""
    rules = _tensor_rules(perms)
    out = dict(tensors)
    for key, value in tensors.items():
        layer, _, leaf = key.rpartition(".")
        if layer not in rules or value.dim() == 0 or leaf == "num_batches_tracked":
            continue
        for dim, idx in rules[layer]:
            if dim < value.dim() and value.shape[dim] == len(idx):
                value = value.index_select(dim, idx.to(value.device))
        out[key] = value
    return out


@torch.no_grad()
def reorder_channels(
    model: nn.Module,
    groups: Iterable[ChannelGroup],
    criterion: str,
    optimizer: torch.optim.Optimizer | None = None,
) -> list[tuple[ChannelGroup, Tensor]]:
    """Sort every group's channels by ``criterion`` in place (weights, BN statistics and, given
    ``optimizer``, its per-parameter buffers such as SGD momentum); returns the permutations."""
    if criterion not in CRITERIA:
        raise ValueError(
            f"ordering criterion: expected one of {', '.join(CRITERIA)}, got {criterion!r}"
        )
    perms = channel_permutations(model, groups, criterion)
    state = model.state_dict()
    model.load_state_dict(permute_named(state, perms))
    if optimizer is not None:  # per-parameter buffers (SGD momentum), permuted in one pass
        names = {p: n for n, p in model.named_parameters()}
        held = {
            (names[param], key): buf
            for param, buffers in optimizer.state.items()
            if param in names
            for key, buf in buffers.items()
            if isinstance(buf, Tensor) and buf.shape == param.shape
        }
        for key in {k for _, k in held}:
            named = {n: b for (n, k), b in held.items() if k == key}
            for name, buf in permute_named(named, perms).items():
                param = model.get_parameter(name)
                optimizer.state[param][key] = buf
    return perms
