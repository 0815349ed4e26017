"""The zoo reproduces the official models: layout, parameter counts and GFLOPs (both thop rules)."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import OFFICIAL_MODELS

from yolov7lib import build_model
from yolov7lib.complexity import THOP, THOP_0031, count_gflops, count_params, model_row
from yolov7lib.models import VARIANTS
from yolov7lib.reparam import fuse


def meta_model(name: str, form: str, nc: int = 80):
    with torch.device("meta"):
        return build_model(name, form, nc)


@pytest.mark.parametrize(("name", "form"), OFFICIAL_MODELS)
def test_state_dict_layout_is_official(name, form, official_layouts):
    ours = [(k, tuple(v.shape)) for k, v in meta_model(name, form).state_dict().items()]
    assert ours == official_layouts[f"{form}__{name}"]


@pytest.mark.parametrize("name", [n for n, f in OFFICIAL_MODELS if f == "deploy"])
def test_fused_layout_is_official(name, official_layouts):
    fused = fuse(meta_model(name, "deploy"))
    ours = [(k, tuple(v.shape)) for k, v in fused.state_dict().items()]
    assert ours == official_layouts[f"deploy__{name}.fused"]


@pytest.mark.parametrize(("name", "form"), OFFICIAL_MODELS)
def test_params_and_gflops_equal_official(name, form, official_csv):
    ref = official_csv[(name, form)]
    with torch.device("meta"):
        model = build_model(name, form)
        fused = fuse(copy.deepcopy(model))
        assert count_params(model) == int(ref["params"])
        assert count_params(fused) == int(ref["fused_params"])
        for net, rules, column in [
            (model, THOP, "gflops_640"),
            (fused, THOP, "fused_gflops"),
            (model, THOP_0031, "gflops_640_thop0031"),
            (fused, THOP_0031, "fused_gflops_640_thop0031"),
        ]:
            assert count_gflops(net, 640, rules) == pytest.approx(float(ref[column]), abs=0.05), column
    if VARIANTS[name].p6:
        with torch.device("meta"):
            assert count_gflops(model, 1280, THOP) == pytest.approx(float(ref["gflops_1280"]), abs=0.05)


@pytest.mark.parametrize(
    ("name", "params_m", "gflops"),
    [("yolov7", 36.9, 104.7), ("yolov7x", 71.3, 189.9), ("yolov7-tiny", 6.2, 13.8),
     ("yolov7-w6", 70.4, 360.0), ("yolov7-e6", 97.2, 515.2), ("yolov7-e6e", 151.7, 843.2)],
)
def test_paper_figures(name, params_m, gflops):
    """The paper's #Param / FLOPs are the fused deploy models under thop-0.0.31 rules (Table 2)."""
    row = model_row(name, "deploy")
    assert round(row["params_fused"] / 1e6, 1) == params_m
    assert row["gflops_paper_rules"] == pytest.approx(gflops, abs=0.2)


def test_d6_paper_params_count_the_training_model():
    assert round(model_row("yolov7-d6", "training")["params"] / 1e6, 1) == 154.7
    assert round(model_row("yolov7-d6", "deploy")["params_fused"] / 1e6, 1) == 133.8


@pytest.mark.parametrize(("name", "form"), [("yolov7-tiny", "training"), ("yolov7-w6", "training"),
                                            ("yolov7", "deploy")])
@pytest.mark.parametrize("nc", [1, 3])
def test_any_number_of_classes(name, form, nc):
    model = build_model(name, form, nc).train()
    nl = len(VARIANTS[name].anchors)
    size = 64 if nl == 4 else 32
    outs = model(torch.zeros(1, 3, 2 * size, 2 * size))
    assert len(outs) == (2 * nl if form == "training" and nl == 4 else nl)
    for i, out in enumerate(outs):
        stride = model.head.strides[i % nl]
        assert out.shape == (1, 3, int(2 * size / stride), int(2 * size / stride), nc + 5)
    model.eval()
    with torch.no_grad():
        decoded, raw = model(torch.zeros(1, 3, 2 * size, 2 * size))
    assert len(raw) == nl
    assert decoded.shape == (1, sum(r.shape[1] * r.shape[2] * r.shape[3] for r in raw), nc + 5)


def test_strides_and_anchors():
    model = build_model("yolov7-w6", "deploy")
    assert model.head.strides == (8.0, 16.0, 32.0, 64.0)
    assert torch.equal(model.head.anchor_grid[0, 0, 0, 0, 0], torch.tensor([19.0, 27.0]))
    assert torch.allclose(model.head.anchors[3] * 64, model.head.anchor_grid[3].view(-1, 2))


def test_bias_init_follows_the_official_priors():
    model = build_model("yolov7-tiny", "deploy", nc=80)
    bias = model.head.m[0].bias.view(3, -1)
    default_bound = 1 / 128**0.5  # Conv2d default bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    obj_prior = torch.log(torch.tensor(8 / (640 / 8) ** 2))
    assert ((bias[:, 4] - obj_prior).abs() <= default_bound).all()


def test_bad_arguments_are_refused():
    with pytest.raises(KeyError, match="unknown model"):
        build_model("yolov8")
    with pytest.raises(ValueError, match="form"):
        build_model("yolov7", "inference")
    with pytest.raises(ValueError, match="nc"):
        build_model("yolov7", nc=0)


def test_table_cli_prints_the_15_official_rows(capsys, tmp_path):
    from yolov7lib.models.__main__ import main

    assert main(["--table", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == ("name,form,params,params_fused,gflops,gflops_paper_rules,img_size,"
                        "paper_params,paper_gflops")
    assert len(lines) == 16
    assert "yolov7,deploy,37620125,36905341,106.4722,104.6847,640,36.9,104.7" in lines
    assert (tmp_path / "model_table.md").read_text().count("matches the paper") == 10
