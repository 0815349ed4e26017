"""The paper's ablation architectures (Tables 3, 4, 5, 8): build, forward, re-parameterize, counts."""

from __future__ import annotations

import copy
import re

import pytest
import torch
from conftest import DATA

from yolov7lib import VARIANTS, build_model, reparameterize
from yolov7lib.complexity import THOP, THOP_0031, count_gflops, count_params, model_table
from yolov7lib.models.blocks import Conv, Shortcut
from yolov7lib.models.csp import CSPBlock, DarkBlock, DarkStyle
from yolov7lib.models.repconv import RepConv
from yolov7lib.models.scaling import compound
from yolov7lib.reparam import fuse

ABLATIONS = [name for name, v in VARIANTS.items() if v.ablation]


def test_every_table_has_its_variants():
    tables = {VARIANTS[n].ablation for n in ABLATIONS}
    assert {"Table 3", "Table 4", "Table 5", "Table 8"} <= tables
    rows = model_table(ablations=True)
    assert {r["name"] for r in rows} >= set(ABLATIONS)


@pytest.mark.parametrize("name", ABLATIONS)
def test_builds_trains_and_reparameterizes(name):
    """Reduced width keeps the test fast; the structure is the variant's."""
    model = build_model(name, "training", nc=3, width=0.125, depth=0.5)
    model.train()
    x = torch.rand(1, 3, 128, 128)
    outs = model(x)
    sum(o.float().mean() for o in outs).backward()
    model.eval()
    deploy = reparameterize(model)
    with torch.no_grad():
        torch.testing.assert_close(deploy(x)[0], model(x)[0], atol=2e-3, rtol=1e-3)


def test_repconcatenation_placements():
    """RepConvN (no identity) sits at the chosen chain positions; fused, every placement has the base's
    parameters."""
    with torch.device("meta"):
        base = build_model("yolov7-elan3", "deploy")
        counts = {}
        for suffix, n_rep in (("a", 1), ("b", 1), ("c", 1), ("d", 2), ("e", 3)):
            model = build_model(f"yolov7-elan3-{suffix}", "deploy")
            reps = [m for m in model.modules() if isinstance(m, RepConv)]
            assert len(reps) == 3 + n_rep * 8  # 3 prediction RepConvs + per ELAN (8 ELANs)
            assert all(m.rbr_identity is None for m in reps)
            counts[suffix] = count_params(reparameterize(model))
    assert set(counts.values()) == {count_params(reparameterize(base))}


def test_partial_and_full_aux_taps():
    with torch.device("meta"):
        partial = build_model("yolov7-e6e", "training")
        full = build_model("yolov7-e6e-aux", "training")
        none = build_model("yolov7-e6e-noaux", "training")
    assert count_params(partial) == count_params(full) > count_params(none)
    assert not hasattr(none.head, "m2")

    def aux_sources(model):
        head_inputs = model.inputs[-1]
        aux_convs = head_inputs[len(head_inputs) // 2:]
        return [type(model.model[model.inputs[i][0]]) for i in aux_convs]

    # the deepest aux conv reads the SPP output in both; the three others read E-ELANs
    assert aux_sources(partial).count(Shortcut) == 0
    assert aux_sources(full).count(Shortcut) == 3


def _layer_params(name: str) -> list[int]:
    """The per-layer 'params' column of an official parse_model table."""
    text = (DATA / "layer_tables" / f"baseline__{name}.txt").read_text()
    row = re.compile(r"^\s*\d+\s+(?:-?\d+|\[[^\]]*\])\s+\d+\s+(\d+)\s", re.M)  # index, from, n, params
    return [int(p) for p in row.findall(text)]


@pytest.mark.parametrize("name", ["yolor-csp", "yolor-w6"])
def test_yolor_baselines_equal_the_official_cfgs(name, official_csv):
    """Table 5's baselines: every layer's parameters, the totals and the GFLOPs of the official
    cfg/baseline models (52,923,994 and 79,873,400 parameters)."""
    ref = official_csv[(name, "baseline")]
    with torch.device("meta"):
        model = build_model(name, "training")
        fused = fuse(copy.deepcopy(model))
        assert [count_params(m) for m in model.model] == _layer_params(name)
        assert count_params(model) == int(ref["params"])
        assert count_params(fused) == int(ref["fused_params"])
        for net, rules, column in [(model, THOP, "gflops_640"), (fused, THOP, "fused_gflops"),
                                   (model, THOP_0031, "gflops_640_thop0031")]:
            assert count_gflops(net, 640, rules) == pytest.approx(float(ref[column]), abs=0.05), column


@pytest.mark.parametrize("base", ["yolor-csp", "yolor-w6"])
def test_represidual_placements(base):
    """RepCSP: the 3x3 conv feeding the residual sum is RepConvN; RCSP: 3x3 first; RepRCSP: the first
    3x3 is a RepConv with identity inside CSP blocks. Fused, each has the base's parameters."""
    with torch.device("meta"):
        models = {s: build_model(base + s, "deploy") for s in ("", "-repcsp", "-rcsp", "-reprcsp")}
        darks = {s: [m for m in model.modules() if isinstance(m, DarkBlock)] for s, model in models.items()}
        assert {len(d) for d in darks.values()} == {len(darks[""])} and darks[""]
        assert all(type(d.cv1) is Conv and d.cv1.conv.kernel_size == (1, 1) for d in darks[""])
        assert all(type(d.cv2) is RepConv and d.cv2.rbr_identity is None for d in darks["-repcsp"])
        assert all(type(d.cv1) is Conv and d.cv1.conv.kernel_size == (3, 3) for d in darks["-rcsp"])
        assert all(type(d.cv2) is Conv and d.cv2.conv.kernel_size == (1, 1) for d in darks["-rcsp"])
        in_csp = [d for b in models["-reprcsp"].modules() if isinstance(b, CSPBlock) for d in b.m]
        assert in_csp and all(type(d.cv1) is RepConv and d.cv1.rbr_identity is not None for d in in_csp)
        counts = {s: count_params(reparameterize(m)) for s, m in models.items()}
    assert len(set(counts.values())) == 1, counts


def test_dark_block_residual_and_reparameterization():
    torch.manual_seed(0)
    for style in (DarkStyle(), DarkStyle(rep=True), DarkStyle(reversed=True), DarkStyle(True, True)):
        block = CSPBlock(16, 16, 2, "C", style).eval()
        for m in block.modules():  # non-trivial BN statistics
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        x = torch.randn(2, 16, 12, 12)
        with torch.no_grad():
            y = block(x)
            torch.testing.assert_close(fuse(copy.deepcopy(block))(x), y, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="kind"):
        CSPBlock(16, 16, 1, "D")


def test_compound_scaling_refuses_csp_models():
    with pytest.raises(ValueError, match="ELAN"):
        compound(VARIANTS["yolor-csp"], 1.5)
