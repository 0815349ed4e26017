"""Loss properties: finite values and gradients on edge cases, strategies, chunking, model wiring."""

from __future__ import annotations

import pytest
import torch

from yolov7lib import build_model
from yolov7lib.assign import simota_match
from yolov7lib.boxes import bbox_ciou
from yolov7lib.hyp import LossHyp
from yolov7lib.loss import YOLOv7Loss, compute_loss

ANCHORS_P5 = [torch.tensor([[1.5, 2.0], [2.375, 4.5], [5.0, 3.5]]),
              torch.tensor([[2.25, 4.6875], [4.75, 3.4375], [4.5, 9.125]]),
              torch.tensor([[4.4375, 3.4375], [6.0, 7.59375], [14.34375, 12.53125]])]
STRIDES = [8.0, 16.0, 32.0]


def preds(bs=2, nc=3, size=128, aux=False, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(bs, 3, size // int(s), size // int(s), nc + 5) for s in STRIDES] * (2 if aux else 1)
    return [torch.randn(s, generator=gen).to(dtype).requires_grad_() for s in shapes]


def targets(n=6, bs=2, nc=3, seed=1):
    gen = torch.Generator().manual_seed(seed)
    wh = torch.rand(n, 2, generator=gen) * 0.4 + 0.05
    xy = wh / 2 + torch.rand(n, 2, generator=gen) * (1 - wh)
    return torch.cat((torch.arange(n)[:, None] % bs, torch.randint(0, nc, (n, 1), generator=gen), xy, wh), 1).float()


def loss_of(p, t, nc=3, **kw):
    return compute_loss(p, t, ANCHORS_P5, STRIDES, nc, LossHyp(), (128, 128), **kw)


def finite_grads(p):
    return all(x.grad is not None and torch.isfinite(x.grad).all() for x in p)


@pytest.mark.parametrize(
    ("box1", "box2"),
    [([5.0, 5.0, 0.0, 0.0], [5.0, 5.0, 0.0, 0.0]),  # zero-size
     ([5.0, 5.0, 2.0, 3.0], [5.0, 5.0, 2.0, 3.0]),  # identical
     ([0.0, 0.0, 1.0, 1.0], [1e4, 1e4, 2.0, 2.0]),  # distant
     ([5.0, 5.0, 0.0, 4.0], [5.0, 5.0, 3.0, 0.0])],
)
def test_ciou_and_gradient_are_finite(box1, box2):
    b1 = torch.tensor([box1], requires_grad=True)
    ciou = bbox_ciou(b1, torch.tensor([box2]))
    ciou.sum().backward()
    assert torch.isfinite(ciou).all() and torch.isfinite(b1.grad).all()
    assert -1.5 <= ciou.item() <= 1.0


def test_ciou_of_identical_boxes_is_one():
    box = torch.tensor([[4.0, 4.0, 2.0, 6.0]])
    assert bbox_ciou(box, box).item() == pytest.approx(1.0, abs=1e-6)


def test_empty_batch():
    p = preds()
    out = loss_of(p, torch.zeros(0, 6))
    out.loss.backward()
    assert out.lbox.item() == 0 and out.lcls.item() == 0 and out.lobj.item() > 0
    assert finite_grads(p) and all(len(pos) == 0 for pos in out.lead)


def test_targets_on_image_borders():
    t = torch.tensor([[0, 1, 0.0, 0.0, 0.1, 0.1], [1, 2, 1.0, 1.0, 0.2, 0.1], [0, 0, 0.5, 0.999, 0.05, 0.3]])
    p = preds()
    out = loss_of(p, t)
    out.loss.backward()
    assert torch.isfinite(out.loss) and finite_grads(p)
    assert sum(len(pos) for pos in out.lead) >= 3


def test_single_class_has_no_class_loss():
    p = preds(nc=1)
    out = loss_of(p, targets(nc=1), nc=1)
    assert out.lcls.item() == 0 and out.lbox.item() > 0


def test_fp16_predictions():
    p = preds(dtype=torch.float16)
    out = loss_of(p, targets())
    out.loss.backward()
    assert torch.isfinite(out.loss) and finite_grads(p)
    ref = loss_of([x.detach().float() for x in p], targets())
    assert out.loss.item() == pytest.approx(ref.loss.item(), rel=1e-3)


def test_chunked_assignment_equals_unchunked():
    p = [x.detach() for x in preds(bs=1)]
    t = targets(n=300, bs=1)
    whole = simota_match(p, t, ANCHORS_P5, STRIDES, (128, 128), 0.5, 10)
    chunked = simota_match(p, t, ANCHORS_P5, STRIDES, (128, 128), 0.5, 10, max_pairs=257)
    for a, b in zip(whole, chunked):
        assert torch.equal(a.b, b.b) and torch.equal(a.gi, b.gi) and torch.equal(a.target, b.target)


def test_a_thousand_targets_in_one_image():
    p = preds(bs=1, size=256)
    t = targets(n=1000, bs=1)
    out = compute_loss(p, t, ANCHORS_P5, STRIDES, 3, LossHyp(), (256, 256))
    out.loss.backward()
    assert torch.isfinite(out.loss) and finite_grads(p)


def test_strategies():
    p, t = preds(aux=True), targets()
    none = loss_of(p, t, strategy="none")
    guided = loss_of(p, t, strategy="lead_guided")
    independent = loss_of(p, t, strategy="independent")
    c2f = loss_of(p, t, strategy="coarse_to_fine")
    assert none.aux is None and guided.aux is guided.lead
    assert sum(map(len, c2f.aux)) > sum(map(len, c2f.lead))  # coarse labels are more
    assert independent.aux is not None and none.loss < c2f.loss
    with pytest.raises(ValueError, match="strategy"):
        loss_of(p, t, strategy="bogus")


def test_aux_decoder_changes_only_the_aux_box_term():
    p, t = preds(aux=True), targets()
    constrained = loss_of(p, t, aux_decoder="constrained")
    free = loss_of(p, t, aux_decoder="free")
    assert constrained.lbox.item() != free.lbox.item()
    assert constrained.lcls.item() == pytest.approx(free.lcls.item())


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="prediction levels"):
        loss_of(preds()[:2], targets())
    with pytest.raises(ValueError, match="targets"):
        loss_of(preds(), torch.zeros(3, 5))


def test_gain_scaling():
    hyp = LossHyp(box=0.05, cls=0.3, obj=0.7).scaled(nc=80, img_size=1280, nl=4)
    assert (hyp.box, hyp.cls, hyp.obj) == pytest.approx((0.0375, 0.225, 2.1))


@pytest.mark.parametrize(("name", "strategy"), [("yolov7-tiny", "none"), ("yolov7-w6", "coarse_to_fine")])
def test_loss_is_picked_from_the_head_and_trains(name, strategy):
    model = build_model(name, "training", nc=3).train()
    criterion = YOLOv7Loss(model, {"box": 0.05, "cls": 0.5, "obj": 1.0})
    assert criterion.strategy == strategy
    out = criterion(model(torch.rand(2, 3, 128, 128)), targets())
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(p.grad is not None for p in model.head.m.parameters())


def test_assignment_survives_running_out_of_memory(monkeypatch):
    import yolov7lib.assign.lead_guided as lg

    real = lg.simota_match

    def tight(*args):
        if args[-1] > (1 << 17):  # pretend only small chunks fit
            raise torch.OutOfMemoryError("simulated")
        return real(*args)

    p, t = preds(), targets()
    expected = loss_of(p, t)
    monkeypatch.setattr(lg, "simota_match", tight)
    with pytest.warns(RuntimeWarning, match="ran out of memory"):
        out = loss_of(p, t)
    assert out.loss.item() == expected.loss.item()


def test_objectness_pos_weight():
    p, t = preds(), targets()
    plain = compute_loss(p, t, ANCHORS_P5, STRIDES, 3, LossHyp(), (128, 128))
    weighted = compute_loss(p, t, ANCHORS_P5, STRIDES, 3, LossHyp(obj_pw=2.0), (128, 128))
    unit = compute_loss(p, t, ANCHORS_P5, STRIDES, 3, LossHyp(obj_pw=1.0 + 1e-9), (128, 128))  # dense path
    assert weighted.lobj.item() > plain.lobj.item()
    assert unit.lobj.item() == pytest.approx(plain.lobj.item(), rel=1e-5)
    weighted.loss.backward()
    assert finite_grads(p)


def test_custom_backward_equals_plain_autograd():
    """The fused objectness/gather backward gives the gradients plain autograd gives."""
    p1, p2, t = preds(seed=4), preds(seed=4), targets()
    compute_loss(p1, t, ANCHORS_P5, STRIDES, 3, LossHyp(), (128, 128)).loss.backward()
    compute_loss(p2, t, ANCHORS_P5, STRIDES, 3, LossHyp(obj_pw=1.0 + 1e-12), (128, 128)).loss.backward()
    for a, b in zip(p1, p2):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-7, rtol=1e-4)


def test_loss_follows_the_heads_anchors():
    model = build_model("yolov7-tiny", "training", nc=3).train()
    criterion = YOLOv7Loss(model, LossHyp())
    assert not list(criterion.parameters())
    preds_, t = model(torch.rand(1, 3, 64, 64)), targets(bs=1)
    before = criterion(preds_, t).loss.item()
    with torch.no_grad():
        model.head.anchors.mul_(2.0)
    assert criterion(preds_, t).loss.item() != before


def test_image_whose_targets_have_no_candidates():
    """An image whose only target fits no anchor (a hair-thin box) gets no positives; others do."""
    t = torch.tensor([[0, 1, 0.5, 0.5, 0.2, 0.2], [1, 2, 0.5, 0.5, 0.9, 0.002]])
    out = loss_of(preds(), t)
    assert torch.isfinite(out.loss)
    images = torch.cat([p.b for p in out.lead])
    assert (images == 0).any() and not (images == 1).any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("terms", ["both", "dense", "rows"])
def test_level_terms_gradient_equals_plain_autograd(dtype, terms):
    """The fused objectness sum + positive rows give the gradient of their plain autograd form,
    duplicate cells included."""
    from yolov7lib.loss import _LevelTerms

    pred = torch.randn(2, 3, 4, 5, 8, generator=torch.Generator().manual_seed(0)).to(dtype)
    cells = torch.tensor([0, 7, 7, 59, 119])
    weights = torch.randn(len(cells), 8, generator=torch.Generator().manual_seed(1))
    grads = []
    for fused in (True, False):
        p = pred.clone().requires_grad_()
        if fused:
            dense, rows = _LevelTerms.apply(p, cells)
        else:
            dense, rows = torch.nn.functional.softplus(p[..., 4].float()).sum(), p.reshape(-1, 8)[cells]
        loss = {"both": 0.3 * dense + (rows.float() * weights).sum(), "dense": 0.3 * dense,
                "rows": (rows.float() * weights).sum()}[terms]
        loss.backward()
        grads.append(p.grad)
    assert grads[0].dtype == dtype
    torch.testing.assert_close(grads[0], grads[1])
