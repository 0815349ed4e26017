"""The official code as a benchmark peer (installed by ``make bench-install``; skipped without it): the
networks it builds from our layer graph are ours, and its loss runs on the targets' device."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from yolov7lib import build_model, peer

pytest.importorskip("yolov7_package")

DEPLOY = ["yolov7-tiny-silu", "yolov7", "yolov7x", "yolov7-w6", "yolov7-e6", "yolov7-d6", "yolov7-e6e"]
HYP = {"box": 0.05, "cls": 0.3, "obj": 0.7, "cls_pw": 1.0, "obj_pw": 1.0, "fl_gamma": 0.0, "anchor_t": 4.0,
       "label_smoothing": 0.0}


@pytest.mark.parametrize("name", DEPLOY)
def test_the_peer_builds_our_network(name):
    """Same keys and shapes, so our weights load into the official model (the speed table's peer)."""
    theirs = peer.official_model(name, 80, "deploy")
    with torch.device("meta"):
        ours = build_model(name, "deploy", 80)
    assert {k: v.shape for k, v in theirs.state_dict().items()} == {k: v.shape for k, v in ours.state_dict().items()}


def loss_case(name: str, device: torch.device | str = "cpu"):
    """Our ``name`` at 1/8 width (3 classes) and inputs of the official loss on ``device``: (model, raw
    predictions, targets, images)."""
    model = build_model(name, "training", nc=3, width=0.125).to(device)
    head, gen, size = model.head, torch.Generator().manual_seed(0), 128
    shapes = [(2, head.na, size // int(s), size // int(s), head.no) for s in head.strides]
    preds = [torch.randn(s, generator=gen).to(device) for s in shapes * (2 if hasattr(head, "m2") else 1)]
    targets = torch.tensor([[0, 1, 0.5, 0.5, 0.2, 0.3], [1, 0, 0.3, 0.6, 0.1, 0.1], [1, 2, 0.7, 0.2, 0.3, 0.2]])
    return model, preds, targets.to(device), torch.zeros(2, 3, size, size, device=device)


@pytest.mark.parametrize("name", ["yolov7", "yolov7-e6e"])  # ComputeLossOTA, ComputeLossAuxOTA
def test_the_peer_loss_builds_its_layer_index_on_the_targets_device(name):
    """The upstream fix for CUDA (on CUDA: tests/gpu/test_cuda.py) changes nothing on the CPU: the loss
    equals the unpatched official one."""
    model, preds, targets, images = loss_case(name)
    fixed = peer.official_loss(model, HYP)
    assert [n for n in vars(type(fixed)) if n.startswith("build_targets")]
    loss, _ = fixed(preds, targets, images)
    original = type(fixed).__mro__[1](model)
    assert torch.isfinite(loss).all()
    assert torch.equal(loss, original(preds, targets, images)[0])


def test_the_loss_without_ota_equals_the_official_compute_loss():
    """``loss_ota: 0`` (``ota=False``): every fine candidate is a positive, the official ``ComputeLoss``;
    on the small case and on 80 random targets (cells shared, borders), equal within 1e-5."""
    from yolov7_package.utils.loss import ComputeLoss

    from yolov7lib.loss import YOLOv7Loss

    model, preds, targets, _ = loss_case("yolov7")
    gen = torch.Generator().manual_seed(1)
    crowd = torch.cat((torch.randint(0, 2, (80, 1), generator=gen), torch.randint(0, 3, (80, 1), generator=gen),
                       torch.rand(80, 2, generator=gen), 0.02 + 0.5 * torch.rand(80, 2, generator=gen)), 1).float()
    crowd[:10, 2:4] = crowd[10:20, 2:4]  # shared centres
    crowd[20:25, 2] = 0.999  # on the right border
    model.hyp, model.gr = HYP, 1.0
    official = ComputeLoss(model)
    ours = YOLOv7Loss(model, HYP, ota=False)
    for t in (targets, crowd):
        loss, components = official(preds, t)
        out = ours(preds, t)
        torch.testing.assert_close(out.loss.reshape(1), loss, rtol=1e-5, atol=0)
        torch.testing.assert_close(out.components, components, rtol=1e-5, atol=1e-7)
    assert YOLOv7Loss(build_model("yolov7-e6e", "training", nc=3, width=0.125), HYP, ota=False).ota  # aux: OTA


@pytest.mark.parametrize("name", ["yolov7-tiny", "yolov7", "yolov7-e6e"])
def test_a_new_model_has_the_official_models_batchnorm_statistics(name):
    """The official ``Model()`` probes its strides with one train-mode pass, which leaves every
    running variance at 0.9 and one tracked batch: a newly built model of ours has the same buffers."""
    theirs = peer.official_model(name, 3, "training").state_dict()
    ours = build_model(name, "training", nc=3).state_dict()
    buffers = [k for k in theirs if k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert buffers and all(torch.equal(theirs[k], ours[k]) for k in buffers)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("multi_label", [True, False])
def test_nms_equals_the_official(dtype, multi_label):
    """On the same decoded outputs, FP32 or FP16 (scores and corners computed in that dtype, as
    officially), our NMS keeps the official rows, in the official order; also with only some classes
    kept and class-agnostic (``detect.py --classes``, ``--agnostic-nms``)."""
    np.int = int  # removed from NumPy, still used by the official code
    from yolov7_package.utils.general import non_max_suppression as official_nms

    from yolov7lib.postprocess import non_max_suppression

    gen = torch.Generator().manual_seed(0)
    n = 4000
    pred = torch.cat((torch.rand(2, n, 2, generator=gen) * 640 - 20, 2 + torch.rand(2, n, 2, generator=gen) * 150,
                      torch.rand(2, n, 4, generator=gen)), 2)
    pred[:, n // 2:, :4] = pred[:, :n // 2, :4] + torch.randn(2, n // 2, 4, generator=gen)  # near duplicates
    pred = pred.to(dtype)
    for conf, iou, classes, agnostic in ((0.001, 0.65, None, False), (0.25, 0.45, None, False),
                                         (0.25, 0.45, [1, 2], False), (0.25, 0.45, None, True)):
        theirs = official_nms(pred.clone(), conf, iou, classes=classes, agnostic=agnostic, multi_label=multi_label)
        ours = non_max_suppression(pred.clone(), conf, iou, multi_label=multi_label, classes=classes,
                                   agnostic=agnostic)
        for a, b in zip(ours, theirs):
            assert len(b) > 0 and a.dtype == b.dtype == torch.float32
            assert torch.equal(a, b)
            assert classes is None or set(a[:, 5].tolist()) == set(classes)
