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
    """An eval-mode copy of ``model`` updated after each optimizer step.

    The floating state_dict entries are averaged with ``torch._foreach`` calls, bit for bit the
    official ``v *= d; v += (1 - d) * v_model`` per tensor (a fused ``add_(x, alpha=1 - d)`` rounds
    differently). Where each entry lives (its module and name)
    is looked up once per model, and the tensors are read from there at every update, so a model
    moved in between (``to(memory_format=...)`` replaces tensors) is averaged where it now is.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0) -> None:
        self.ema = copy.deepcopy(unwrap(model)).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, updates
        names = [k for k, v in self.ema.state_dict().items() if v.dtype.is_floating_point]
        self._names, self._slots = names, _slots(self.ema, names)
        self._model: tuple[nn.Module, list[tuple[dict, str]]] | None = None

    def rate(self, updates: int) -> float:
        return self.decay * (1 - math.exp(-updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.rate(self.updates)
        model = unwrap(model)
        if self._model is None or self._model[0] is not model:
            self._model = model, _slots(model, self._names)
        averaged = [where[name] for where, name in self._slots]
        torch._foreach_mul_(averaged, d)
        torch._foreach_add_(averaged, torch._foreach_mul([where[name] for where, name in self._model[1]], 1 - d))


def _slots(model: nn.Module, names: list[str]) -> list[tuple[dict, str]]:
    """For each state_dict name, the parameter or buffer dict of its module and its key there."""
    slots = []
    for name in names:
        owner, _, key = name.rpartition(".")
        module = model.get_submodule(owner)
        slots.append((module._parameters if key in module._parameters else module._buffers, key))
    return slots
