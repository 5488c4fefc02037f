"""Cost of a sub-network in MACs (multiply-accumulates), counted by thop.

thop is the reference: it runs on the materialized sub-network (plain layers, batch 1, the
configuration's input resolution), never on the bank, whose sliced layers it would mis-count.
The :class:`CostModel` is an exact analytic fast path for the search loop: it records once which
unit sets each layer's input and output width, each layer's spatial size at every resolution of
the space and which stage depth runs it, then sums thop's own per-layer formulas. Tests check
it equals thop on random configurations (widths, depths, resolutions) of every shipped space.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from slimda_nas.bank import ModelBank
from slimda_nas.slim.ops import SlimBatchNorm1d, SlimBatchNorm2d, SlimConv2d, SlimLinear

_COUNTED = (
    SlimConv2d,
    SlimBatchNorm1d,
    SlimBatchNorm2d,
    SlimLinear,
    nn.AdaptiveAvgPool2d,
    nn.AvgPool2d,
)


def _thop_counts(module: nn.Module) -> bool:
    """Whether thop has a non-zero rule for this leaf type (a rule the fast path must mirror)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from thop.profile import register_hooks
        from thop.vision.basic_hooks import zero_ops
    rule = register_hooks.get(type(module))
    return rule is not None and rule is not zero_ops


def thop_profile(module: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(MACs, parameters) of a plain module at batch 1, as thop counts them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from thop import profile
    p = next(module.parameters())
    x = torch.zeros(1, *input_shape, device=p.device, dtype=p.dtype)
    with contextlib.redirect_stdout(io.StringIO()):
        macs, _ = profile(module, inputs=(x,), verbose=False)
    params = sum(t.numel() for t in module.parameters())
    return int(round(macs)), params


def count_macs(bank: ModelBank, config: Mapping[str, float | int], head: str | None = None) -> int:
    """MACs (thop) of the deployed sub-network at ``config``, on an input at its resolution."""
    return thop_profile(bank.materialize(config, head), bank.space.input_shape_at(config))[0]


@dataclass(frozen=True)
class _Layer:
    kind: str  # conv | bn | linear | adaptive_avgpool | avgpool
    in_dep: tuple  # (unit or None, scale, full value)
    out_dep: tuple
    spatial_out: int  # product of the output's trailing dims (batch 1)
    spatial_in: int
    kernel: int  # conv kernel numel
    per_group_in: int  # conv: input channels per group (0 for groups == 1)
    affine: bool
    bias: bool


Gate = tuple[int, int] | None
"""When a layer runs: always (None), or (depth unit index, k) when that stage runs >= k blocks."""


class CostModel:
    """Exact MACs and parameter counts of a bank's deployed sub-networks without running them.

    Built from traced forwards at batch 1: one per width unit (at the lowest resolution, each
    narrowing one unit to see which layer widths follow it) and one per resolution at the
    largest configuration (every layer's spatial sizes there). A layer inside block j of a
    stage with a depth unit counts only where that stage runs more than j blocks.
    """

    def __init__(self, bank: ModelBank, head: str | None = None) -> None:
        self.space = bank.space
        self.head = head or bank.deploy_head
        model = bank.model
        skip = {h for h in model.head_names if h != self.head}
        largest = self.space.largest()
        sizes = self.space.input_sizes
        res = self.space.resolution_unit
        low = largest if res is None else dict(largest, **{res.name: res.choices[0]})
        base = self._trace(bank, low, skip)
        deps: dict[str, dict[str, tuple]] = {name: {} for name in base}
        for unit in self.space.width_units:
            if len(unit.choices) < 2:
                continue
            probe = dict(low, **{unit.name: unit.choices[0]})
            shapes = self._trace(bank, probe, skip)
            for name, (cin, cout, *_rest) in shapes.items():
                bin_, bout = base[name][0], base[name][1]
                for side, new, old in (("in", cin, bin_), ("out", cout, bout)):
                    if new != old:
                        if side in deps[name]:
                            raise NotImplementedError(f"{name}: {side} width follows two units")
                        scale, rem = divmod(old, unit.full)
                        if rem or new != unit.channel_choices[0] * scale:
                            raise NotImplementedError(
                                f"{name}: {side} width is not a multiple of {unit.name}"
                            )
                        deps[name][side] = (unit.name, scale, old)
        gates = self._gates(model)
        self._layers: dict[int, list[tuple[Gate, _Layer]]] = {}
        for size in sizes:
            at_size = largest if res is None else dict(largest, **{res.name: size})
            traced = base if size == sizes[0] else self._trace(bank, at_size, skip)
            layers = []
            for name, (cin, cout, spatial_in, spatial_out, module) in traced.items():
                d = deps[name]
                kind, kernel, per_group, affine, bias = self._describe(module)
                layer = _Layer(
                    kind,
                    d.get("in", (None, 1, cin)),
                    d.get("out", (None, 1, cout)),
                    spatial_out,
                    spatial_in,
                    kernel,
                    per_group,
                    affine,
                    bias,
                )
                layers.append((gates(name), layer))
            self._layers[size] = layers
        self._compile()

    def _gates(self, model) -> Callable[[str], Gate]:
        """A layer name -> its :data:`Gate` (from the backbone's elastic stages)."""
        index = {u.name: i for i, u in enumerate(self.space.units)}
        stages = model.depth_stages() if hasattr(model, "depth_stages") else {}
        prefixes = [
            (f"{block}.", (index[u.name], j + 1))
            for u in self.space.depth_units
            for j, block in enumerate(stages[u.stage])
        ]

        def gate(name: str) -> Gate:
            return next((g for prefix, g in prefixes if name.startswith(prefix)), None)

        return gate

    @staticmethod
    def _describe(m: nn.Module) -> tuple[str, int, int, bool, bool]:
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1]
            per_group = 0 if m.groups == 1 else m.in_channels // m.groups
            return "conv", k, per_group, False, m.bias is not None
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return "bn", 0, 0, m.affine, False
        if isinstance(m, nn.Linear):
            return "linear", 0, 0, False, m.bias is not None
        if isinstance(m, nn.AdaptiveAvgPool2d):
            return "adaptive_avgpool", 0, 0, False, False
        if isinstance(m, nn.AvgPool2d):
            return "avgpool", 0, 0, False, False
        raise NotImplementedError(type(m).__name__)

    @staticmethod
    @torch.no_grad()
    def _trace(bank: ModelBank, config, skip) -> dict[str, tuple]:
        seen: dict[str, tuple] = {}
        hooks = []
        for name, m in bank.model.named_modules():
            if name.split(".", 1)[0] in skip:
                continue
            if isinstance(m, _COUNTED):

                def hook(mod, x, y, name=name):
                    xi = x[0]
                    seen[name] = (xi.shape[1], y.shape[1], xi[0, 0].numel(), y[0, 0].numel(), mod)

                hooks.append(m.register_forward_hook(hook))
            elif not list(m.children()) and _thop_counts(m):
                raise NotImplementedError(f"no analytic MACs rule for {type(m).__name__} ({name})")
        was = bank.model.training
        bank.model.eval()
        try:
            with bank.use(config):
                bank.model(
                    bank.example_input(config=config),
                    heads=[h for h in bank.model.head_names if h not in skip],
                )
        finally:
            bank.model.train(was)
            for h in hooks:
                h.remove()
        return seen

    # -- the exact polynomial ---------------------------------------------------------------------
    def _compile(self) -> None:
        """Fold thop's per-layer formulas into one polynomial of the unit widths per resolution
        and depth gate, with integer coefficients: MACs = c + sum a_u w_u + sum b_uv w_u w_v
        (and the same for parameters), so a configuration costs a few dozen integer products
        instead of a pass over every layer. A term the polynomial cannot hold exactly stays a
        per-layer term."""
        index = {u.name: i for i, u in enumerate(self.space.units)}
        self._choices = [u.channel_choices for u in self.space.units]
        self._lookup = [
            dict(zip(u.choices, u.channel_choices, strict=True)) for u in self.space.units
        ]
        res = self.space.resolution_unit
        self._res_index = None if res is None else index[res.name]
        self._poly: dict[int, dict[str, list]] = {}
        for size, layers in self._layers.items():
            groups: dict[Gate, dict] = {}
            for gate, L in layers:
                if gate not in groups:
                    groups[gate] = {"macs": ({}, {}, [0], []), "params": ({}, {}, [0], [])}
                self._add_layer(groups[gate], L, index)
            self._poly[size] = {
                kind: [
                    (
                        gate,
                        sorted(t[kind][0].items()),
                        sorted(t[kind][1].items()),
                        t[kind][2][0],
                        t[kind][3],
                    )
                    for gate, t in groups.items()
                ]
                for kind in ("macs", "params")
            }

    @staticmethod
    def _add_layer(terms: dict, L: _Layer, index: dict[str, int]) -> None:
        def add(kind: str, coef: int, *deps: tuple) -> None:
            lin, quad, const, _ = terms[kind]
            units, fixed = [], coef
            for unit, scale, full in deps:
                if unit is None:
                    fixed *= full
                else:
                    fixed *= scale
                    units.append(index[unit])
            if not units:
                const[0] += fixed
            elif len(units) == 1:
                lin[units[0]] = lin.get(units[0], 0) + fixed
            else:
                key = tuple(sorted(units))
                quad[key] = quad.get(key, 0) + fixed

        if L.kind == "conv":
            per_group = (None, 1, L.per_group_in) if L.per_group_in else L.in_dep
            add("macs", L.spatial_out * L.kernel, L.out_dep, per_group)
            add("params", L.kernel, L.out_dep, per_group)
            if L.bias:
                add("params", 1, L.out_dep)
        elif L.kind == "bn":
            add("macs", 2 * L.spatial_in * (2 if L.affine else 1), L.in_dep)
            if L.affine:
                add("params", 2, L.in_dep)
        elif L.kind == "linear":
            add("macs", L.spatial_out, L.in_dep, L.out_dep)
            add("params", 1, L.in_dep, L.out_dep)
            if L.bias:
                add("params", 1, L.out_dep)
        elif L.kind == "adaptive_avgpool":
            per = L.spatial_in / L.spatial_out + 1
            if per == int(per):
                add("macs", int(per) * L.spatial_out, L.out_dep)
            else:  # thop truncates a product with a fraction: keep the layer's own formula
                terms["macs"][3].append(L)
        elif L.kind == "avgpool":
            add("macs", L.spatial_out, L.out_dep)

    def _evaluate(self, kind: str, widths: list[int]) -> int:
        size = self.space.input_size if self._res_index is None else widths[self._res_index]
        total = 0
        for gate, lin, quad, const, extra in self._poly[size][kind]:
            if gate is not None and widths[gate[0]] < gate[1]:
                continue
            total += const
            for u, a in lin:
                total += a * widths[u]
            for (u, v), b in quad:
                total += b * widths[u] * widths[v]
            for L in extra:
                cout = (
                    L.out_dep[2]
                    if L.out_dep[0] is None
                    else widths[self._unit_index(L.out_dep[0])] * L.out_dep[1]
                )
                total += int((L.spatial_in / L.spatial_out + 1) * cout * L.spatial_out)
        return total

    def _unit_index(self, name: str) -> int:
        return self.space.unit_names.index(name)

    def _widths(self, config: Mapping[str, float | int]) -> list[int]:
        try:  # the search's own configurations hold the exact choice values
            if len(config) == len(self._lookup):
                return [lk[config[u.name]] for lk, u in zip(self._lookup, self.space.units)]
        except (KeyError, TypeError):
            pass
        ch = self.space.unit_channels(config)  # anything else is checked (one-line errors)
        return [ch[u.name] for u in self.space.units]

    def macs(self, config: Mapping[str, float | int]) -> int:
        """MACs of the deployed sub-network at ``config``, equal to thop's count."""
        return self._evaluate("macs", self._widths(config))

    def params(self, config: Mapping[str, float | int]) -> int:
        """Parameters of the deployed sub-network at ``config``."""
        return self._evaluate("params", self._widths(config))

    def widest_uniform_ratio(self, limit: float) -> float | None:
        """The widest uniform width ratio whose model has at most ``limit`` MACs (None: none)."""
        return max(
            (r for r in self.space.uniform_ratios() if self.macs(self.space.uniform(r)) <= limit),
            default=None,
        )

    def macs_of_indices(self, indices) -> int:
        """MACs of the configuration given as unit indices (no validation: the search's own
        proposals, thousands per second)."""
        return self._evaluate("macs", [c[i] for c, i in zip(self._choices, indices, strict=True)])
