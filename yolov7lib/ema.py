"""Exponential moving average of the model weights (a bag-of-freebies item the official training uses;
algorithms.md §7): ``v ← d·v + (1 − d)·v_model`` for every floating entry of the state_dict, BatchNorm
running statistics included, with ``d(u) = 0.9999 · (1 − e^(−u/2000))`` after ``u`` updates. The
average is what is validated and saved.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from .runtime import unwrap


class ModelEMA:
    """An eval-mode copy of ``model`` updated after each optimizer step."""

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0) -> None:
        self.ema = copy.deepcopy(unwrap(model)).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, updates

    def rate(self, updates: int) -> float:
        return self.decay * (1 - math.exp(-updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.rate(self.updates)
        current = unwrap(model).state_dict()
        for name, v in self.ema.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(current[name].detach(), alpha=1 - d)
