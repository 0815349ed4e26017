"""Train-mode forward passes equal the official code's on formula-defined weights (golden/)."""

from __future__ import annotations

import pytest
import torch
from conftest import OFFICIAL_MODELS
from golden import fill_model, golden_input, golden_outputs

from yolov7lib import build_model


@pytest.mark.parametrize(("name", "form"), OFFICIAL_MODELS)
def test_forward_equals_official(name, form):
    model = build_model(name, form).train()
    fill_model(model)
    with torch.no_grad():
        outputs = model(golden_input())
    reference = golden_outputs(form, name)
    assert len(outputs) == len(reference)
    for out, ref in zip(outputs, reference):
        sample = out.flatten()[::7]
        assert sample.shape == ref.shape
        torch.testing.assert_close(sample, torch.from_numpy(ref), atol=1e-3, rtol=0)
