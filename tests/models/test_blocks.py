"""Building blocks: ELAN wiring, ReOrg order, RepConv and Conv+BN fusion, implicit folding."""

from __future__ import annotations

import torch
from torch import nn

from yolov7lib.models.blocks import Concat, Conv, ReOrg, SiLU
from yolov7lib.models.elan import EELAN, ELAN
from yolov7lib.models.graph import GraphBuilder
from yolov7lib.models.heads import fold_implicit
from yolov7lib.models.repconv import RepConv


def randomize_bn(module: nn.Module) -> None:
    with torch.no_grad():
        for bn in module.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.5, 0.5)


def test_backbone_elan_concatenates_every_other_conv():
    g = GraphBuilder()
    stem = g.conv(-1, 16)
    out = ELAN(8, 4, 32).build(g, stem)
    cat = out - 1
    assert isinstance(g.layers[cat], Concat)
    # official yolov7 layer 10: Concat[-1, -3, -5, -6] relative to the concat
    assert g.inputs[cat] == tuple(cat + r for r in (-1, -3, -5, -6))
    assert g.channels[cat] == 4 * 8 and g.channels[out] == 32


def test_head_elan_concatenates_all_and_halves_the_chain():
    g = GraphBuilder()
    out = ELAN(16, 4, 32, mid=8, step=1).build(g, g.conv(-1, 32))
    cat = out - 1
    assert g.inputs[cat] == tuple(cat + r for r in (-1, -2, -3, -4, -5, -6))
    assert g.channels[cat] == 4 * 8 + 2 * 16


def test_eelan_sums_two_elans_on_the_same_input():
    g = GraphBuilder()
    src = g.conv(-1, 16)
    merged, tap = EELAN(ELAN(8, 6, 16)).build_with_tap(g, src)
    first_stems = [i for i, s in enumerate(g.inputs) if s == (src,)]
    assert len(first_stems) == 4  # two stems per ELAN, both ELANs read the same input
    assert g.inputs[merged] == (tap, merged - 11)  # official Shortcut[-1, -11]


def test_reorg_takes_the_official_pixel_order():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = ReOrg()(x)
    assert y.shape == (1, 4, 2, 2)
    assert y[0, :, 0, 0].tolist() == [0.0, 4.0, 1.0, 5.0]  # (0,0), (1,0), (0,1), (1,1)


def test_conv_bn_fusion_is_exact():
    conv = Conv(4, 8, 3, 2)
    randomize_bn(conv)
    conv.eval()
    x = torch.randn(2, 4, 9, 9)
    expected = conv(x)
    conv.fuse()
    assert conv.bn is None and conv.conv.bias is not None
    torch.testing.assert_close(conv(x), expected, atol=1e-5, rtol=1e-5)


def test_repconv_with_and_without_identity_fuses_exactly():
    for c1, c2, identity in [(8, 8, True), (8, 16, False)]:
        rep = RepConv(c1, c2)
        assert (rep.rbr_identity is not None) == identity
        randomize_bn(rep)
        rep.eval()
        x = torch.randn(2, c1, 7, 7)
        expected = rep(x)
        rep.fuse()
        assert [k for k in rep.state_dict()] == ["rbr_reparam.weight", "rbr_reparam.bias"]
        torch.testing.assert_close(rep(x), expected, atol=1e-5, rtol=1e-5)


def test_repconv_refuses_other_kernels():
    import pytest

    with pytest.raises(ValueError, match="3x3"):
        RepConv(4, 4, k=1)


def test_fold_implicit_equals_im_times_conv_of_x_plus_ia():
    conv = nn.Conv2d(6, 10, 1)
    ia, im = torch.randn(1, 6, 1, 1) * 0.1, 1 + torch.randn(1, 10, 1, 1) * 0.1
    x = torch.randn(2, 6, 5, 5)
    w, b = fold_implicit(conv.weight, conv.bias, ia, im)
    torch.testing.assert_close(nn.functional.conv2d(x, w, b), im * conv(x + ia), atol=1e-5, rtol=1e-5)


def test_silu_is_in_place_only_where_autograd_does_not_record():
    act = SiLU()
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    y = x * 1.0
    out = act(y)
    assert out is not y and torch.allclose(out, nn.functional.silu(y))
    out.sum().backward()
    assert torch.allclose(x.grad, torch.sigmoid(x) * (1 + x * (1 - torch.sigmoid(x))))
    with torch.no_grad():
        z = torch.randn(2, 3, 4, 4)
        expected = nn.functional.silu(z)
        assert act(z) is z and torch.equal(z, expected)
