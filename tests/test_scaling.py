"""Uniform width / depth multiples for reduced-scale models."""

from __future__ import annotations

import pytest
import torch

from yolov7lib import VARIANTS, build_model, reparameterize
from yolov7lib.checkpoint import load_model, save_checkpoint
from yolov7lib.models.scaling import blocks, channels, compound, multiply


def test_rounding():
    assert channels(64, 0.5) == 32 and channels(40, 0.5) == 24 and channels(0, 0.5) == 0 and channels(4, 0.1) == 8
    assert blocks(4, 0.5, 2) == 2 and blocks(2, 0.5, 1) == 1 and blocks(4, 0.1, 2) == 2 and blocks(4, 1.5, 2) == 6


def test_multiply_variant():
    v = multiply(VARIANTS["yolov7"], 0.5, 0.5)
    assert v.stem[0] == (16, 3, 1) and v.spp == 256 and v.pred == (128, 256, 512)
    assert v.stages[1].block.depth == 2 and v.stages[1].down.width == 64
    assert multiply(VARIANTS["yolov7"]) is VARIANTS["yolov7"]
    with pytest.raises(ValueError):
        multiply(VARIANTS["yolov7"], 0.0)


@pytest.mark.parametrize("name", ["yolov7-tiny", "yolov7-e6e"])
def test_reduced_model_builds_reparameterizes_and_round_trips(name, tmp_path):
    with torch.device("meta"):
        full = sum(p.numel() for p in build_model(name, nc=3).parameters())
    model = build_model(name, nc=3, width=0.25, depth=0.5).eval()
    assert sum(p.numel() for p in model.parameters()) < full / 8
    x = torch.rand(1, 3, 128, 128)
    deploy = reparameterize(model)
    assert deploy.config.width == 0.25 and deploy.config.depth == 0.5
    with torch.no_grad():
        torch.testing.assert_close(deploy(x)[0], model(x)[0], atol=2e-3, rtol=1e-3)
    path = save_checkpoint(tmp_path / "m.pt", model)
    again = load_model(path)
    assert again.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))


def _arch(v):
    return (v.stem, v.stages, v.spp, v.top_down, v.bottom_up, v.pred)


def test_table3_rows_follow_the_rule():
    """X = compound(base, 1.5); the width-only and depth-only rows are the base × 1.25 w, × 2.0 d."""
    base = VARIANTS["yolov7x-light"]
    assert _arch(compound(base, 1.5)) == _arch(VARIANTS["yolov7x"])
    assert _arch(multiply(base, width=1.25)) == _arch(VARIANTS["yolov7x-light-w1.25"])
    assert _arch(multiply(base, depth=2.0)) == _arch(VARIANTS["yolov7x-light-d2.0"])


def test_e6_and_d6_widths_follow_the_rule_from_w6():
    """E6 / D6 = compound(W6, 1.5 / 2.0) up to their DownC transitions (the rule keeps W6's kind)."""
    w6 = VARIANTS["yolov7-w6"]
    for name, k in (("yolov7-e6", 1.5), ("yolov7-d6", 2.0)):
        ours, official = compound(w6, k), VARIANTS[name]
        assert ours.stem == official.stem and ours.spp == official.spp and ours.pred == official.pred
        for a, b in zip(ours.stages + ours.top_down + ours.bottom_up,
                        official.stages + official.top_down + official.bottom_up):
            assert a.block == b.block
            assert (a.down is None) == (b.down is None) and (a.down is None or a.down.width == b.down.width)


def test_table3_complexity_matches_the_paper():
    from yolov7lib.complexity import model_row

    for name in ("yolov7x-light", "yolov7x-light-w1.25", "yolov7x-light-d2.0"):
        row = model_row(name, "deploy")
        assert row["params_fused"] / 1e6 == pytest.approx(row["paper_params"], rel=0.005)
        assert row["gflops_paper_rules"] == pytest.approx(row["paper_gflops"], rel=0.005)
