"""The paper's ablation architectures (Tables 3, 4, 8): build, forward, re-parameterize, counts."""

from __future__ import annotations

import pytest
import torch

from yolov7lib import VARIANTS, build_model, reparameterize
from yolov7lib.complexity import count_params, model_table
from yolov7lib.models.blocks import Shortcut
from yolov7lib.models.repconv import RepConv

ABLATIONS = [name for name, v in VARIANTS.items() if v.ablation]


def test_every_table_has_its_variants():
    tables = {VARIANTS[n].ablation for n in ABLATIONS}
    assert {"Table 3", "Table 4", "Table 8"} <= tables
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
