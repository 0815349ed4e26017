"""Figures for the notebooks: a batch with its boxes and class names; label statistics.

Built on ``matplotlib.figure.Figure`` directly (no pyplot state), so they work in notebooks, scripts
and worker processes alike; save with ``fig.savefig(path)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .check import CheckedImage


def _colour(k: int) -> tuple[float, float, float]:
    hue = (k * 0.61803398875) % 1.0
    from matplotlib.colors import hsv_to_rgb

    return tuple(hsv_to_rgb((hue, 0.85, 0.95)))


def plot_batch(images: torch.Tensor, targets: torch.Tensor, names: Sequence[str], max_images: int = 16,
               columns: int = 4) -> Figure:
    """A grid of the batch's images (``(B, 3, H, W)`` uint8) with boxes and class names from
    ``targets`` rows ``(image, class, cx, cy, w, h)`` normalised (or ``(..., conf)`` predictions)."""
    n = min(len(images), max_images)
    rows = max(1, -(-n // columns))
    cols = min(columns, n) or 1
    fig = Figure(figsize=(3 * cols, 3 * rows), dpi=100)
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        img = images[i].permute(1, 2, 0).cpu().numpy()
        h, w = img.shape[:2]
        ax.imshow(img)
        for row in targets[targets[:, 0] == i].cpu().numpy():
            cls, cx, cy, bw, bh = int(row[1]), row[2] * w, row[3] * h, row[4] * w, row[5] * h
            colour = _colour(cls)
            ax.add_patch(Rectangle((cx - bw / 2, cy - bh / 2), bw, bh, fill=False, edgecolor=colour, linewidth=1.2))
            label = names[cls] if cls < len(names) else str(cls)
            if len(row) > 6:
                label += f" {row[6]:.2f}"
            ax.text(cx - bw / 2, cy - bh / 2, label, fontsize=6, color="white", va="bottom",
                    bbox={"facecolor": colour, "pad": 0.5, "linewidth": 0})
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def plot_label_stats(images: Sequence[CheckedImage], names: Sequence[str]) -> Figure:
    """Instances per class, box width/height (normalised) and box centres, as the official
    ``plot_labels`` shows them, plus objects per image."""
    classes = np.concatenate([im.classes for im in images]) if images else np.zeros(0, np.int64)
    boxes = np.concatenate([im.boxes for im in images]) if images else np.zeros((0, 4))
    fig = Figure(figsize=(12, 9), dpi=100)
    ax = fig.add_subplot(2, 2, 1)
    counts = np.bincount(classes.astype(np.int64), minlength=len(names))
    ax.bar(range(len(names)), counts, color=[_colour(k) for k in range(len(names))])
    ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 10 else 0)
    ax.set_ylabel("instances")
    ax = fig.add_subplot(2, 2, 2)
    ax.hist2d(boxes[:, 2], boxes[:, 3], bins=40, range=[[0, 1], [0, 1]], cmap="Blues", norm=LogNorm())
    ax.set_xlabel("width")
    ax.set_ylabel("height")
    ax = fig.add_subplot(2, 2, 3)
    ax.hist2d(boxes[:, 0], boxes[:, 1], bins=40, range=[[0, 1], [0, 1]], cmap="Blues")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.invert_yaxis()
    ax = fig.add_subplot(2, 2, 4)
    per_image = [len(im.classes) for im in images]
    ax.hist(per_image, bins=range(0, max(per_image, default=0) + 2), color="tab:blue")
    ax.set_xlabel("objects per image")
    ax.set_ylabel("images")
    fig.tight_layout()
    return fig
