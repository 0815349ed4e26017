"""The loss and its assignment equal the official ComputeLossOTA / ComputeLossAuxOTA (golden/)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import DATA
from golden import sequence

from yolov7lib.loss import compute_loss

CASES = sorted(p.stem.removeprefix("loss__") for p in (DATA / "golden_loss").glob("loss__*.json"))


def load_case(name: str) -> dict:
    return json.loads((DATA / "golden_loss" / f"loss__{name}.json").read_text())


def golden_predictions(case: dict) -> list[torch.Tensor]:
    preds = []
    for i, shape in enumerate(case["prediction_shapes"]):
        n = int(torch.tensor(shape).prod())
        u = torch.from_numpy(sequence(n, 1000 + i).reshape(shape)).float()
        p = 6.0 * (u - 0.5)
        p[..., :4] = u[..., :4] - 0.5
        preds.append(p.requires_grad_())
    return preds


def positives(levels, targets) -> list[list[tuple]]:
    out = []
    for pos in levels:
        rows = [
            (int(b), int(a), int(gj), int(gi), *[round(float(x), 6) for x in targets[t]])
            for b, a, gj, gi, t in zip(pos.b, pos.a, pos.gj, pos.gi, pos.target)
        ]
        out.append(sorted(rows))
    return out


def expected_positives(levels) -> list[list[tuple]]:
    return [
        sorted((*idx, *[round(x, 6) for x in tgt]) for idx, tgt in zip(lv["indices_b_a_gj_gi"], lv["matched_targets"]))
        for lv in levels
    ]


@pytest.fixture(params=CASES)
def case(request):
    return load_case(request.param)


def run(case: dict):
    targets = torch.tensor(case["targets_normalised"], dtype=torch.float32)
    anchors = [torch.tensor(a) for a in case["anchors_grid_units"]]
    return compute_loss(golden_predictions(case), targets, anchors, case["strides"], case["nc"], case["hyp"],
                        (case["height"], case["width"])), targets


def test_assignment_equals_official(case):
    out, targets = run(case)
    assert positives(out.lead, targets) == expected_positives(case["lead_assignment"])
    if case.get("aux_assignment"):
        assert positives(out.aux, targets) == expected_positives(case["aux_assignment"])
    else:
        assert out.aux is None


def test_loss_equals_official(case):
    out, _ = run(case)
    duplicated = any(lv["duplicates"] for lv in case["lead_assignment"] + (case.get("aux_assignment") or []))
    assert out.loss.item() == pytest.approx(case["loss_times_batch"], rel=1e-4 if duplicated else 1e-5)
    assert out.lbox.item() == pytest.approx(case["lbox"], rel=1e-5)
    assert out.lcls.item() == pytest.approx(case["lcls"], rel=1e-5, abs=1e-12)
    assert out.lobj.item() == pytest.approx(case["lobj"], rel=1e-4 if duplicated else 1e-5)


def test_loss_backpropagates(case):
    preds = golden_predictions(case)
    targets = torch.tensor(case["targets_normalised"], dtype=torch.float32)
    anchors = [torch.tensor(a) for a in case["anchors_grid_units"]]
    out = compute_loss(preds, targets, anchors, case["strides"], case["nc"], case["hyp"], (256, 256))
    out.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in preds)
