"""Slimmable layers compute exactly what dense layers of the active width compute."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slimda_nas.slim.ops import (
    SlimBatchNorm1d,
    SlimBatchNorm2d,
    SlimConv2d,
    SlimLinear,
    active_widths,
    set_widths,
)


def _dense_conv(slim: SlimConv2d, c_in: int, c_out: int, groups: int) -> nn.Conv2d:
    dense = nn.Conv2d(
        c_in,
        c_out,
        slim.kernel_size,
        slim.stride,
        slim.padding,
        groups=groups,
        bias=slim.bias is not None,
    )
    with torch.no_grad():
        dense.weight.copy_(slim.weight[:c_out, : c_in // groups])
        if slim.bias is not None:
            dense.bias.copy_(slim.bias[:c_out])
    return dense


@pytest.mark.parametrize("c_in,c_out", [(16, 32), (5, 7), (1, 1), (16, 3)])
def test_conv_matches_dense(c_in, c_out):
    torch.manual_seed(0)
    slim = SlimConv2d(16, 32, 3, stride=2, padding=1, bias=True)
    slim.active_out = c_out
    x = torch.randn(2, c_in, 9, 9)
    torch.testing.assert_close(slim(x), _dense_conv(slim, c_in, c_out, 1)(x), rtol=0, atol=0)


@pytest.mark.parametrize("c_in", [32, 17, 4])
def test_depthwise_groups_follow_input(c_in):
    torch.manual_seed(0)
    slim = SlimConv2d(32, 32, 3, padding=1, groups=32, bias=False)
    assert not slim.owns_width
    x = torch.randn(2, c_in, 8, 8)
    y = slim(x)
    assert y.shape[1] == c_in
    torch.testing.assert_close(y, _dense_conv(slim, c_in, c_in, c_in)(x), rtol=0, atol=0)


def test_grouped_conv_keeps_channels_per_group():
    torch.manual_seed(0)
    slim = SlimConv2d(16, 32, 3, padding=1, groups=4)  # 4 in / 8 out per group
    x = torch.randn(2, 8, 6, 6)  # two active groups
    y = slim(x)
    assert y.shape[1] == 16
    torch.testing.assert_close(y, _dense_conv(slim, 8, 16, 2)(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="channels per group"):
        slim(torch.randn(1, 6, 6, 6))


def test_linear_matches_dense():
    torch.manual_seed(0)
    slim = SlimLinear(20, 10)
    slim.active_out = 6
    x = torch.randn(3, 12)
    dense = nn.Linear(12, 6)
    with torch.no_grad():
        dense.weight.copy_(slim.weight[:6, :12])
        dense.bias.copy_(slim.bias[:6])
    torch.testing.assert_close(slim(x), dense(x), rtol=0, atol=0)


@pytest.mark.parametrize("cls,shape", [(SlimBatchNorm2d, (4, 5, 3, 3)), (SlimBatchNorm1d, (4, 5))])
def test_batchnorm_slices_parameters_and_statistics(cls, shape):
    torch.manual_seed(0)
    slim = cls(8)
    with torch.no_grad():
        slim.weight.normal_()
        slim.bias.normal_()
        slim.running_mean.normal_()
        slim.running_var.uniform_(0.5, 2)
    untouched = (slim.running_mean[5:].clone(), slim.running_var[5:].clone())
    dense = (nn.BatchNorm2d if cls is SlimBatchNorm2d else nn.BatchNorm1d)(5)
    dense.load_state_dict({k: (v[:5] if v.dim() else v) for k, v in slim.state_dict().items()})
    x = torch.randn(*shape)
    # eval: running statistics of the slice
    slim.eval(), dense.eval()
    torch.testing.assert_close(slim(x), dense(x))
    # train: batch statistics, and the running statistics of the slice move like the dense layer's
    slim.train(), dense.train()
    torch.testing.assert_close(slim(x), dense(x))
    torch.testing.assert_close(slim.running_mean[:5], dense.running_mean)
    torch.testing.assert_close(slim.running_var[:5], dense.running_var)
    assert torch.equal(slim.running_mean[5:], untouched[0])
    assert torch.equal(slim.running_var[5:], untouched[1])


def test_batchnorm_cumulative_average_with_momentum_none():
    slim, dense = SlimBatchNorm2d(6), nn.BatchNorm2d(4)
    slim.momentum = dense.momentum = None
    slim.reset_running_stats()
    dense.reset_running_stats()
    for seed in range(3):
        x = torch.randn(8, 4, 2, 2, generator=torch.Generator().manual_seed(seed))
        slim(x), dense(x)
    torch.testing.assert_close(slim.running_mean[:4], dense.running_mean)
    torch.testing.assert_close(slim.running_var[:4], dense.running_var)


def test_set_widths_is_explicit_and_checked():
    model = nn.Sequential(
        SlimConv2d(3, 8, 1), SlimBatchNorm2d(8), SlimConv2d(8, 8, 1, groups=8), SlimLinear(8, 4)
    )
    set_widths(model, {"0": 5})
    assert active_widths(model) == {"0": 5, "3": 4}
    assert model[0](torch.zeros(1, 3, 2, 2)).shape[1] == 5
    set_widths(model, {})  # back to full width
    assert active_widths(model) == {"0": 8, "3": 4}
    with pytest.raises(KeyError):
        set_widths(model, {"2": 4})  # depthwise: no width of its own
    with pytest.raises(ValueError):
        set_widths(model, {"0": 9})
