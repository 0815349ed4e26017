"""The official optimiser recipe (algorithms.md §7): SGD with Nesterov momentum and three parameter
groups, nominal batch 64 with gradient accumulation, warm-up, and the one-cycle cosine schedule.

* group 0, no decay: BatchNorm weights and the implicit-knowledge vectors (ImplicitA / ImplicitM);
* group 1, decay: every other weight (convolutions);
* group 2, no decay: every bias (convolutions and BatchNorm).

The weight decay is scaled by ``batch · accumulate / 64``. Warm-up lasts ``max(warmup_epochs · nb,
1000)`` iterations: the bias group's learning rate falls from ``warmup_bias_lr`` (0.1), the others
rise from 0, all towards ``lr0 · lf(epoch)``; momentum rises from 0.8 to 0.937; the accumulation
grows from 1 to ``64 / batch``. The schedule is stepped per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .hyp import Hyp
from .models.implicit import ImplicitA, ImplicitM

NOMINAL_BATCH = 64


def parameter_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter], list[nn.Parameter]]:
    """(no-decay BN weights and implicit vectors, decayed weights, no-decay biases): disjoint, and
    together every trainable parameter of ``model``."""
    norm, weights, biases = [], [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if name == "bias":
                biases.append(p)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm | ImplicitA | ImplicitM):
                norm.append(p)
            else:
                weights.append(p)
    return norm, weights, biases


def accumulation(batch_size: int, nominal: int = NOMINAL_BATCH) -> int:
    """Optimizer steps once every ``round(64 / batch)`` batches (at least 1)."""
    return max(round(nominal / batch_size), 1)


def build_optimizer(model: nn.Module, hyp: Hyp, batch_size: int, adam: bool = False,
                    nominal: int = NOMINAL_BATCH) -> torch.optim.Optimizer:
    """SGD (Nesterov) or Adam over the three groups; ``batch_size`` is the total over all processes.
    ``foreach`` (the default on CUDA) updates a group in one call per step, with the same arithmetic
    as one call per tensor."""
    norm, weights, biases = parameter_groups(model)
    decay = hyp.weight_decay * batch_size * accumulation(batch_size, nominal) / nominal
    if adam:
        optimizer = torch.optim.Adam(norm, lr=hyp.lr0, betas=(hyp.momentum, 0.999), foreach=True)
    else:
        optimizer = torch.optim.SGD(norm, lr=hyp.lr0, momentum=hyp.momentum, nesterov=True, foreach=True)
    optimizer.add_param_group({"params": weights, "weight_decay": decay})
    optimizer.add_param_group({"params": biases})
    return optimizer


def one_cycle(lrf: float, epochs: int) -> Callable[[int], float]:
    """``lf(e) = ((1 − cos(e·π/epochs)) / 2)·(lrf − 1) + 1``: cosine from 1 to ``lrf``."""
    return lambda e: ((1 - math.cos(e * math.pi / epochs)) / 2) * (lrf - 1) + 1


def linear(lrf: float, epochs: int) -> Callable[[int], float]:
    """``lf(e) = (1 − e/(epochs − 1))·(1 − lrf) + lrf`` (``--linear-lr``)."""
    return lambda e: (1 - e / max(epochs - 1, 1)) * (1.0 - lrf) + lrf


def warmup_iterations(hyp: Hyp, batches_per_epoch: int, minimum: int = 1000) -> int:
    """``max(round(warmup_epochs · nb), minimum)`` (the official minimum is 1000)."""
    return max(round(hyp.warmup_epochs * batches_per_epoch), minimum)


def warmup(optimizer: torch.optim.Optimizer, ni: int, nw: int, hyp: Hyp, lr_factor: float, batch_size: int,
           nominal: int = NOMINAL_BATCH) -> int:
    """Set each group's lr and momentum for iteration ``ni`` of a ``nw``-iteration warm-up; return
    the gradient accumulation for this iteration. ``lr_factor`` is ``lf(epoch)``."""
    xi = [0, nw]
    for j, group in enumerate(optimizer.param_groups):
        start = hyp.warmup_bias_lr if j == 2 else 0.0
        group["lr"] = float(np.interp(ni, xi, [start, group["initial_lr"] * lr_factor]))
        if "momentum" in group:
            group["momentum"] = float(np.interp(ni, xi, [hyp.warmup_momentum, hyp.momentum]))
    return max(1, round(float(np.interp(ni, xi, [1, nominal / batch_size]))))
