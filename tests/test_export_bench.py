"""ONNX export checked against onnxruntime; the speed benchmark on a small CPU case."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from yolov7lib import build_model
from yolov7lib.bench import bench_model, fastest, input_shape, ratios
from yolov7lib.evaluate import non_max_suppression
from yolov7lib.export import export_onnx


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


def test_onnx_with_nms(tiny, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    path = export_onnx(tiny, tmp_path / "tiny_nms.onnx", 128, nms=True, conf=0.01, iou=0.45)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 128, 128)
    (dets,) = session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        ref = non_max_suppression(tiny(x)[0], 0.01, 0.45, max_det=10**6, multi_label=False)
    assert dets.shape[1] == 7
    for i in range(2):
        assert (dets[:, 0] == i).sum() == len(ref[i])


def test_bench_small_cpu_case():
    rows = bench_model("yolov7-tiny", torch.device("cpu"), batches=(1, 2), protocols=("paper", "fixed"),
                       paths=("eager", "channels_last"), warmup=1, repeats=2, size=128)
    assert len(rows) == 2 * 2 * 2
    assert all(r.precision == "FP32 (CPU)" and r.fps > 0 and r.max_abs_diff < 1e-2 for r in rows)
    assert input_shape("yolov7-w6", "paper") == (960, 1280) and input_shape("yolov7", "fixed") == (640, 640)
    best = fastest(rows, 1e-2)
    assert set(best) == {("yolov7-tiny", 1), ("yolov7-tiny", 2)}
    assert ratios(rows) == []  # no peer in this run
