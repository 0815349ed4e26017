"""Model complexity: parameter counts and GFLOPs counted the way the official code and paper do.

The official ``model_info`` runs thop on a ``stride x stride`` input (batch 1), doubles the
multiply-accumulate count and scales it to the image size. thop's counting rules changed between
versions; the paper used thop 0.0.31 (and counted fused deploy models), the official code today
runs thop >= 0.1. Both rule sets are implemented here (no thop dependency):

=================  =================================  ============================
module             thop >= 0.1 (``THOP``)              thop 0.0.31 (``THOP_0031``)
=================  =================================  ============================
Conv2d             out · (cin/groups) · k²             out · ((cin/groups) · k² + bias)
BatchNorm2d        4 per element (affine)             2 per element
LeakyReLU          0                                  1 per element
Upsample nearest   1 per output element               0
SiLU, MaxPool      0                                  0
=================  =================================  ============================
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class FlopRules:
    """Per-module operation counts of one thop version."""

    name: str
    conv_bias: bool
    bn_per_element: int
    leaky_relu_per_element: int
    upsample_nearest_per_element: int


THOP = FlopRules("thop>=0.1", conv_bias=False, bn_per_element=4, leaky_relu_per_element=0,
                 upsample_nearest_per_element=1)
THOP_0031 = FlopRules("thop-0.0.31 (paper)", conv_bias=True, bn_per_element=2,
                      leaky_relu_per_element=1, upsample_nearest_per_element=0)


def count_params(model: nn.Module) -> int:
    """Number of parameters (what the paper's #Param column counts)."""
    return sum(p.numel() for p in model.parameters())


def _module_ops(m: nn.Module, x: torch.Tensor, y: torch.Tensor, rules: FlopRules) -> int:
    if isinstance(m, nn.Conv2d):
        per_out = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        return y.numel() * (per_out + int(rules.conv_bias and m.bias is not None))
    if isinstance(m, nn.BatchNorm2d):
        return rules.bn_per_element * x.numel()
    if isinstance(m, nn.LeakyReLU):
        return rules.leaky_relu_per_element * x.numel()
    if isinstance(m, nn.Upsample) and m.mode == "nearest":
        return rules.upsample_nearest_per_element * y.numel()
    return 0


@torch.no_grad()
def count_gflops(model: nn.Module, img_size: int | tuple[int, int] = 640, rules: FlopRules = THOP) -> float:
    """GFLOPs at ``img_size``² (or an ``(h, w)`` input) as the official ``model_info`` reports them
    (2 x MACs, counted at ``stride``² and scaled by the area)."""
    strides = getattr(getattr(model, "head", None), "strides", (32,))
    stride = max(int(max(strides)), 32)
    param = next(model.parameters())
    total = [0]

    def hook(m: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        total[0] += _module_ops(m, inputs[0], output, rules)

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    was_training = model.training
    try:
        model.eval()
        model(torch.zeros(1, 3, stride, stride, device=param.device, dtype=param.dtype))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    return total[0] * 2 / 1e9 * h * w / stride ** 2


TABLE_COLUMNS = (
    "name", "form", "params", "params_fused", "gflops", "gflops_paper_rules", "img_size",
    "paper_params", "paper_gflops",
)


def model_row(name: str, form: str, nc: int = 80) -> dict[str, object]:
    """Complexity of one model: parameters unfused / fused; GFLOPs at the paper's image size of
    the unfused model under today's thop rules (what the official code prints) and of the fused
    model under thop-0.0.31 rules (what the paper reports). Computed on the meta device."""
    import copy

    from .models import VARIANTS, build_model
    from .reparam import fuse

    variant = VARIANTS[name]
    with torch.device("meta"):
        model = build_model(name, form, nc)
        fused = fuse(copy.deepcopy(model))
        return {
            "name": name,
            "form": form,
            "params": count_params(model),
            "params_fused": count_params(fused),
            "gflops": round(count_gflops(model, variant.img_size, THOP), 4),
            "gflops_paper_rules": round(count_gflops(fused, variant.img_size, THOP_0031), 4),
            "img_size": variant.img_size,
            "paper_params": variant.paper_params,
            "paper_gflops": variant.paper_gflops,
        }


def model_table(names: list[str] | None = None, ablations: bool = False) -> list[dict[str, object]]:
    """One row per official model and form (7 training + 8 deploy), or per ``names``; with
    ``ablations`` also the deploy form of every ablation variant (Tables 3, 4, 5, 8)."""
    from .models import VARIANTS

    names = names or [n for n, v in VARIANTS.items() if ablations or not v.ablation]
    return [
        model_row(name, form)
        for name in names
        for form in (VARIANTS[name].official_forms or ("deploy",))
    ]
