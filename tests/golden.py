"""The formula-defined weights and inputs behind the golden outputs of the official code.

Re-implemented from the reference's description (``golden/README.md``): every floating tensor of a
state_dict, visited in official key order (index ``k`` counts every key), gets values from a
golden-ratio sequence; ``anchors``, ``anchor_grid`` and ``num_batches_tracked`` keep their values.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

DATA = Path(__file__).parent / "data"
PHI = 0.6180339887498949
PLASTIC = 0.7548776662466927


def sequence(n: int, k: int) -> np.ndarray:
    """u_j = frac((j + 1)·φ + 0.1234567·k), j = 0..n−1, in float64."""
    j = np.arange(n, dtype=np.float64)
    return np.mod((j + 1.0) * PHI + k * 0.1234567, 1.0)


def fill_value(key: str, shape: tuple[int, ...], k: int) -> np.ndarray | None:
    leaf = key.rsplit(".", 1)[-1]
    if leaf in ("num_batches_tracked", "anchors", "anchor_grid"):
        return None
    u = sequence(int(np.prod(shape)) if shape else 1, k)
    if leaf == "running_mean":
        v = (u - 0.5) * 0.2
    elif leaf == "running_var":
        v = 0.5 + u
    elif leaf == "implicit":
        v = (u - 0.5) * 0.04 + (1.0 if ".im." in key else 0.0)
    elif leaf == "weight" and len(shape) == 4:
        v = (u - 0.5) * 2.0 * math.sqrt(3.0 / int(np.prod(shape[1:])))
    elif leaf == "weight" and len(shape) == 1:
        v = 0.5 + 0.5 * u
    elif leaf == "bias":
        v = (u - 0.5) * 0.2
    else:
        raise KeyError(f"no fill rule for {key} {shape}")
    return v.reshape(shape).astype(np.float32)


@torch.no_grad()
def fill_model(model: nn.Module) -> None:
    """Fill ``model`` in place; its state_dict order must be the official one."""
    for k, (key, tensor) in enumerate(model.state_dict(keep_vars=True).items()):
        value = fill_value(key, tuple(tensor.shape), k)
        if value is not None:
            tensor.copy_(torch.from_numpy(value))


def golden_input(shape: tuple[int, ...] = (2, 3, 128, 128)) -> torch.Tensor:
    n = int(np.prod(shape))
    j = np.arange(n, dtype=np.float64)
    return torch.from_numpy(np.mod((j + 1.0) * PLASTIC, 1.0).reshape(shape).astype(np.float32))


def golden_outputs(kind: str, name: str) -> list[np.ndarray]:
    data = np.load(DATA / "golden" / f"{kind}__{name}.npz")
    return [data[f"out{i}_sample"] for i in range(len(data.files))]
