"""A flat layer graph: the runtime form of every YOLOv7 network.

Blocks (ELAN, E-ELAN, transitions, SPPCSPC, heads) are declared as parameterised Python objects in
:mod:`~yolov7lib.models.zoo` and :mod:`~yolov7lib.models.ablations`; each appends its layers to a
:class:`GraphBuilder`. The result is a :class:`YOLOv7` whose ``model`` is a ``ModuleList`` in the
same layer order as the official networks, so ``model.<i>.<...>`` state_dict keys equal the official
ones without any mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .blocks import ActFactory, Concat, Conv, silu

IMAGE = -1  # index of the network input in a layer's input list


@dataclass
class GraphBuilder:
    """Collects layers with their absolute input indices, output channels and strides."""

    in_channels: int = 3
    act: ActFactory = silu
    layers: list[nn.Module] = field(default_factory=list)
    inputs: list[tuple[int, ...]] = field(default_factory=list)
    channels: list[int] = field(default_factory=list)
    strides: list[float] = field(default_factory=list)

    @property
    def last(self) -> int:
        return len(self.layers) - 1

    def ch(self, i: int) -> int:
        return self.in_channels if i == IMAGE else self.channels[i]

    def stride(self, i: int) -> float:
        return 1.0 if i == IMAGE else self.strides[i]

    def add(self, module: nn.Module, src: int | Sequence[int], c_out: int, down: float = 1) -> int:
        """Append ``module`` reading layer(s) ``src``; return the new layer's index."""
        src = (src,) if isinstance(src, int) else tuple(src)
        if any(s >= len(self.layers) or s < IMAGE for s in src):
            raise IndexError(f"layer {len(self.layers)} reads unknown input(s) {src}")
        self.layers.append(module)
        self.inputs.append(src)
        self.channels.append(c_out)
        self.strides.append(max(self.stride(s) for s in src) * down)
        return self.last

    def conv(self, src: int, c2: int, k: int = 1, s: int = 1) -> int:
        return self.add(Conv(self.ch(src), c2, k, s, self.act), src, c2, down=s)

    def concat(self, srcs: Sequence[int]) -> int:
        return self.add(Concat(), srcs, sum(self.ch(s) for s in srcs))


class YOLOv7(nn.Module):
    """A YOLOv7 network: layers run in order, each reading the outputs its inputs name.

    In train mode it returns the head's list of raw outputs; in eval mode ``(decoded, raw)``.
    """

    def __init__(self, graph: GraphBuilder, config: object | None = None) -> None:
        super().__init__()
        self.model = nn.ModuleList(graph.layers)
        self.inputs = list(graph.inputs)
        self.config = config
        # outputs that a later layer reads other than as "the previous layer"
        self.save = frozenset(
            s for i, src in enumerate(self.inputs) for s in src if s not in (i - 1, IMAGE)
        )
        self.register_buffer("stride", self.head.stride.clone(), persistent=False)

    @property
    def head(self) -> nn.Module:
        return self.model[-1]

    def forward(self, x: torch.Tensor):
        image, saved = x, {}
        save = self.save
        for i, (layer, src) in enumerate(zip(self.model, self.inputs)):
            if getattr(layer, "multi_input", False):
                x = layer([x if s == i - 1 else image if s == IMAGE else saved[s] for s in src])
            else:
                s = src[0]
                x = layer(x if s == i - 1 else image if s == IMAGE else saved[s])
            if i in save:
                saved[i] = x
        return x
