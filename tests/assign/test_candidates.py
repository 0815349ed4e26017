"""Fine (3-cell) and coarse (5-cell) candidates, on the reference's worked example."""

from __future__ import annotations

import torch

from yolov7lib.assign import COARSE, FINE, find_candidates


def cells(c):
    return sorted(zip(c.gi.tolist(), c.gj.tolist()))


def test_worked_example_from_the_reference():
    # a P3 target centred at grid (10.3, 10.7) of a 32x32 grid; all 3 anchors fit
    target = torch.tensor([[0, 0, 10.3 / 32, 10.7 / 32, 2.0 / 32, 2.0 / 32]])
    anchors = torch.tensor([[1.5, 2.0], [2.0, 2.5], [2.5, 2.0]])
    fine = find_candidates(target, anchors, (32, 32), FINE)
    coarse = find_candidates(target, anchors, (32, 32), COARSE)
    assert len(fine) == 9 and len(coarse) == 15
    assert sorted(set(cells(fine))) == [(9, 10), (10, 10), (10, 11)]
    assert sorted(set(cells(coarse))) == [(9, 10), (10, 9), (10, 10), (10, 11), (11, 10)]


def test_anchor_ratio_filter():
    target = torch.tensor([[0, 0, 0.5, 0.5, 20 / 32, 1 / 32]])  # 20 x 1 cells
    anchors = torch.tensor([[1.0, 1.0], [6.0, 1.0]])
    c = find_candidates(target, anchors, (32, 32), FINE, anchor_t=4.0)
    assert set(c.a.tolist()) == {1}


def test_border_targets_stay_on_the_grid():
    targets = torch.tensor([[0, 0, 0.0, 0.0, 0.05, 0.05], [1, 0, 1.0, 1.0, 0.05, 0.05],
                            [1, 0, 0.999, 0.001, 0.05, 0.05]])
    c = find_candidates(targets, torch.tensor([[1.0, 1.0]]), (20, 20), COARSE)
    assert ((c.gi >= 0) & (c.gi < 20) & (c.gj >= 0) & (c.gj < 20)).all()
    assert c.b.tolist() == c.target.tolist() or set(c.b.tolist()) == {0, 1}


def test_no_targets():
    c = find_candidates(torch.zeros(0, 6), torch.tensor([[1.0, 1.0]]), (8, 8), FINE)
    assert len(c) == 0
