"""ONNX export checked against onnxruntime; the speed benchmark on a small CPU case."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from yolov7lib import bench, build_model
from yolov7lib.bench import Timing, bench_model, deploy_model, fastest, input_shape, ratios
from yolov7lib.complexity import count_gflops
from yolov7lib.export import export_onnx
from yolov7lib.postprocess import non_max_suppression


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model("yolov7-tiny", "training", nc=3, width=0.25).eval()


def test_onnx_matches_pytorch_with_dynamic_batch(tiny, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    path = export_onnx(tiny, tmp_path / "tiny.onnx", 128)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(3, 3, 128, 128)  # exported with batch 1: the batch axis is dynamic
    (out,) = session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        ref = tiny(x)[0].numpy()
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, atol=1e-3, rtol=1e-4)


def _matched(a: np.ndarray, b: np.ndarray) -> float:
    """The share of rows of ``a`` (image, box, score, class) that have an equal row in ``b`` (boxes
    within 1e-3 px, scores within 1e-5)."""
    if not len(a):
        return 1.0
    same = ((a[:, None, [0, 6]] == b[None, :, [0, 6]]).all(-1)
            & (np.abs(a[:, None, 1:5] - b[None, :, 1:5]) < 1e-3).all(-1)
            & (np.abs(a[:, None, 5] - b[None, :, 5]) < 1e-5))
    return float(same.any(1).mean())


@pytest.fixture(scope="module")
def varied(tiny):
    """``tiny`` with BatchNorm statistics and affine terms drawn at random: an untrained model's
    outputs are nearly equal from cell to cell, so NMS would be left to break ties."""
    model = copy.deepcopy(tiny)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2, generator=g)
                m.weight.normal_(1, 0.3, generator=g)
                m.bias.normal_(0, 0.3, generator=g)
    return model


def test_onnx_with_nms(varied, tmp_path):
    """NMS in the graph keeps the detections of the PyTorch module it was exported from, and as
    many as ``non_max_suppression`` (best class per box)."""
    ort = pytest.importorskip("onnxruntime")
    from yolov7lib.export import _WithNMS

    conf, tiny = 1e-3, varied
    path = export_onnx(tiny, tmp_path / "tiny_nms.onnx", 128, nms=True, conf=conf, iou=0.45)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    (dets,) = session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        eager = _WithNMS(tiny, conf, 0.45)(x).numpy()
        ref = non_max_suppression(tiny(x)[0], conf, 0.45, max_det=10**6, multi_label=False)
    assert dets.shape[1] == 7 and len(dets) > 100
    assert min(_matched(dets, eager), _matched(eager, dets)) > 0.99
    for i in range(2):
        n = int((dets[:, 0] == i).sum())
        assert abs(n - len(ref[i])) <= 0.01 * len(ref[i])


def test_nms_in_the_graph_keeps_boxes_past_the_top_left_corner_apart():
    """Images and classes stay apart with boxes reaching past (0, 0): a class-0 box at (-16, -16) of
    image 1 is not suppressed by image 0's class-1 box in the far corner (neighbouring groups)."""
    from types import SimpleNamespace

    from yolov7lib.export import _WithNMS

    class Fixed(torch.nn.Module):
        head = SimpleNamespace(nc=2)

        def forward(self, x):
            return (torch.tensor([[[620.0, 620.0, 35.0, 35.0, 0.9, 0.0, 0.9]],
                                  [[-16.0, -16.0, 40.0, 40.0, 0.8, 0.9, 0.0]]]),)

    dets = _WithNMS(Fixed(), 0.25, 0.45)(torch.zeros(2, 3, 8, 8))
    assert dets[:, 0].tolist() == [0.0, 1.0]


def test_bench_small_cpu_case():
    rows = bench_model("yolov7-tiny", torch.device("cpu"), batches=(1, 2), protocols=("paper", "fixed"),
                       paths=("eager", "channels_last"), warmup=1, repeats=2, size=128)
    assert len(rows) == 2 * 2 * 2
    assert all(r.precision == "FP32 (CPU)" and r.fps > 0 and r.max_abs_diff < 1e-2 for r in rows)
    assert input_shape("yolov7", "paper") == (512, 672) and input_shape("yolov7-w6", "paper") == (1024, 1344)
    assert input_shape("yolov7", "fixed") == (640, 640)
    best = fastest(rows, 1e-2)
    assert set(best) == {("yolov7-tiny", 1), ("yolov7-tiny", 2)}
    assert ratios(rows) == []  # no peer in this run
    gflop = {(h, w): count_gflops(deploy_model("yolov7-tiny", torch.device("cpu"), False), (h, w))
             for h, w in {input_shape("yolov7-tiny", p, 128) for p in ("paper", "fixed")}}
    for r in rows:
        assert r.gflop == gflop[tuple(map(int, r.shape.split("x")))]
        assert r.tflops == pytest.approx(r.gflop * r.fps / 1000)


def test_ratios_against_the_conv_ceiling(monkeypatch):
    """The ratio line says how much of the measured convolution ceiling our fastest path reaches, and
    the most speed-up the ceiling allows: the official time over gflop / ceiling."""
    def row(impl, ms, gflop=5.0):
        return Timing("m", impl, "paper", 1, "8x8", "FP32 (CPU)", ms, ms, ms, 1000 / ms, gflop, gflop / ms, 0.0,
                      0.0, 0.0, "cpu")

    rows = [row("ours:eager", 10.0), row("official", 20.0), row("ours:channels_last", 12.0)]
    (ratio,) = ratios(rows, ceiling={1: 1.0})
    assert (ratio.ours, ratio.official, ratio.speedup) == (rows[0], rows[1], 2.0)
    assert str(ratio) == ("m paper b1: ours (ours:eager) 10.00 ms/img, official 20.00 ms/img, speed-up 2.00x; "
                          "50% of the conv ceiling, which allows at most 4.00x")
    assert ratios(rows, ceiling={32: 1.0}) == ratios(rows)  # no ceiling measured at this batch
    assert str(ratios(rows)[0]).endswith("speed-up 2.00x")
    assert [r.ours.impl for r in ratios(rows, tol=0.0)] == ["ours:eager"]
    rows[0].max_rel_diff = 1.0  # beyond tolerance: the next fastest path within it
    assert ratios(rows, tol=1e-3)[0].speedup == pytest.approx(20 / 12)
    monkeypatch.setattr(bench, "CEILING_CONVS", ((4, 8), (8, 4)))
    assert 0 < bench.conv_ceiling(torch.device("cpu"), torch.float32, warmup=0, repeats=1) < float("inf")


def test_bench_onnxruntime_backend(capsys):
    """``yolov7 bench --backend onnxruntime`` times the exported model beside the PyTorch paths, with
    its largest output difference."""
    pytest.importorskip("onnxruntime")
    from yolov7lib.bench import main

    rows = main(["--models", "yolov7-tiny", "--img", "128", "--batch", "1", "2", "--protocol", "paper",
                 "--backend", "pytorch", "onnxruntime", "--paths", "eager", "--warmup", "1", "--repeats", "2",
                 "--device", "cpu"])
    assert [r.impl for r in rows] == ["ours:eager", "ours:onnxruntime"] * 2
    assert all(r.max_rel_diff < 1e-3 for r in rows)
    assert "ours:onnxruntime" in capsys.readouterr().out
