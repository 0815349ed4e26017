"""Autoanchor: anchors that fit the labels are kept; poorly fitting ones are recomputed (k-means, then
evolution) and replaced in both of the head's buffers when the new ones recall more."""

from __future__ import annotations

import numpy as np
import torch

from yolov7lib import build_model
from yolov7lib.autoanchor import anchor_fit, check_anchors, kmeans, label_sizes


def labels(rng, n, wh_low, wh_high):
    """``n`` images of 480 x 640 (h, w) with 4 normalised xywh boxes each."""
    return np.tile([[480, 640]], (n, 1)), [np.concatenate((rng.uniform(0.2, 0.8, (4, 2)),
                                                           rng.uniform(wh_low, wh_high, (4, 2))), 1) for _ in range(n)]


def test_label_sizes_at_the_training_size():
    wh = label_sizes(np.array([[480, 640], [640, 320]]), [np.array([[0.5, 0.5, 0.1, 0.2]]),
                                                         np.array([[0.5, 0.5, 0.5, 0.25]])], 640)
    np.testing.assert_allclose(wh, [[64, 96], [160, 160]])  # the longer side becomes 640


def test_anchors_that_fit_are_kept():
    head = build_model("yolov7", "training", nc=3, width=0.125).head
    before = head.anchor_grid.clone()
    changed, message = check_anchors(head, *labels(np.random.default_rng(0), 100, 0.05, 0.3), 640)
    assert not changed and "best possible recall 1.0000: the anchors fit" in message
    assert torch.equal(head.anchor_grid, before)


def test_poorly_fitting_anchors_are_replaced_in_both_buffers():
    head = build_model("yolov7", "training", nc=3, width=0.125).head
    shapes, boxes = labels(np.random.default_rng(0), 200, 0.005, 0.02)  # 3-13 px: below the smallest anchors / 4
    wh = torch.tensor(label_sizes(shapes, boxes, 640), dtype=torch.float32)
    bpr = anchor_fit(wh, head.anchor_grid.reshape(-1, 2))[0]
    changed, message = check_anchors(head, shapes, boxes, 640, rng=np.random.default_rng(1))
    assert bpr < 0.98 and changed and "replaced by anchors that recall" in message
    new = head.anchor_grid.reshape(-1, 2)
    assert anchor_fit(wh, new)[0] > max(bpr, 0.98)
    area = new.prod(1)
    assert (area[1:] >= area[:-1]).all()  # the smallest on the finest level
    strides = head.stride.repeat_interleave(head.na)[:, None]
    torch.testing.assert_close(head.anchors.reshape(-1, 2) * strides, new)


def test_kmeans_finds_separated_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = np.concatenate([c + rng.normal(0, 0.1, (50, 2)) for c in centres])
    found = kmeans(points, 3, rng)
    assert np.linalg.norm(centres[:, None] - found[None], axis=2).min(1).max() < 0.1  # one near each centre
