"""Autoanchor: anchors fitted to a dataset's labels before training, as the official training does
(``utils/autoanchor.py``; algorithms.md §7). Not a paper concept, but part of its training recipe.

A label fits an anchor when neither side ratio exceeds ``anchor_t`` (4.0), the rule of the candidate
search (:mod:`yolov7lib.assign.candidates`). The best possible recall (BPR) is the share of labels
that fit some anchor, measured on the labels' sizes at the training size with a random scale of
0.9-1.1 per image. Below 0.98 the anchors are recomputed: k-means on the whitened sizes (30 starts),
then 1000 generations of random mutations that keep any improvement of the mean best fit; the new
anchors replace the old ones only if their BPR is higher. Sizes come from explicit random
generators, so a run's other random draws do not depend on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

BPR_THRESHOLD = 0.98


def label_sizes(shapes_hw: np.ndarray, boxes: Sequence[np.ndarray], img_size: int,
                scale: np.ndarray | None = None) -> np.ndarray:
    """``(n, 2)`` widths and heights in pixels of every label, each image resized so that its longer
    side is ``img_size`` (times its ``scale``, shape ``(images, 1)``); ``boxes`` are normalised xywh."""
    shapes_wh = np.asarray(shapes_hw, dtype=np.float64).reshape(-1, 2)[:, ::-1]
    sizes = img_size * shapes_wh / shapes_wh.max(1, keepdims=True)
    if scale is not None:
        sizes = sizes * scale
    parts = [np.asarray(b, dtype=np.float64).reshape(-1, 4)[:, 2:4] * s for s, b in zip(sizes, boxes)]
    return np.concatenate(parts, 0) if parts else np.zeros((0, 2))


def _ratios(wh: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """``(n, k)``: how well each label fits each anchor, the smaller side ratio (1 = same size)."""
    r = wh[:, None] / anchors[None]
    return torch.min(r, 1 / r).min(2).values


def anchor_fit(wh: torch.Tensor, anchors: torch.Tensor, anchor_t: float = 4.0) -> tuple[float, float]:
    """(best possible recall, anchors per label within ``anchor_t``) of pixel ``anchors`` ``(k, 2)``."""
    x = _ratios(wh.float(), anchors.float())
    return float((x.max(1).values > 1 / anchor_t).float().mean()), float((x > 1 / anchor_t).float().sum(1).mean())


def kmeans(points: np.ndarray, k: int, rng: np.random.Generator, starts: int = 30,
           thresh: float = 1e-5) -> np.ndarray:
    """``k`` centroids of ``points`` ``(n, d)``: Lloyd's iterations from ``starts`` random choices of
    ``k`` points, each until the mean distance changes by at most ``thresh``; the best of the starts
    (``scipy.cluster.vq.kmeans``; an emptied cluster keeps its centroid)."""
    best, best_dist = None, np.inf
    for _ in range(starts):
        book = points[rng.choice(len(points), k, replace=False)]
        previous = np.inf
        while True:
            dist = np.linalg.norm(points[:, None] - book[None], axis=2)
            code, mean = dist.argmin(1), dist.min(1).mean()
            for j in range(k):
                members = points[code == j]
                if len(members):
                    book[j] = members.mean(0)
            if abs(previous - mean) <= thresh:
                break
            previous = mean
        if mean < best_dist:
            best, best_dist = book.copy(), mean
    return best


def kmean_anchors(wh0: np.ndarray, n: int, anchor_t: float = 4.0, generations: int = 1000,
                  rng: np.random.Generator | None = None, progress: bool = False) -> np.ndarray:
    """``n`` anchors ``(n, 2)`` (pixels, smallest area first) fitted to label sizes ``wh0``: k-means on
    the sizes of over 2 pixels, whitened, then a genetic evolution of the mean best fit."""
    rng = rng or np.random.default_rng(0)
    thr = 1 / anchor_t
    wh = wh0[(wh0 >= 2.0).any(1)]
    if len(wh) < n:
        raise ValueError(f"{len(wh)} labels of 2 pixels or more cannot place {n} anchors")
    sigma = wh.std(0)
    k = kmeans(wh / sigma, n, rng) * sigma
    labels = torch.tensor(wh, dtype=torch.float32)

    def fitness(anchors: np.ndarray) -> float:
        best = _ratios(labels, torch.tensor(anchors, dtype=torch.float32)).max(1).values
        return float((best * (best > thr).float()).mean())

    f, shape, mutation_p, spread = fitness(k), k.shape, 0.9, 0.1
    bar = tqdm(range(generations), desc="autoanchor: evolving anchors", disable=not progress)
    for _ in bar:
        v = np.ones(shape)
        while (v == 1).all():  # mutate until something changes
            v = (rng.random(shape) < mutation_p) * rng.random() * rng.standard_normal(shape) * spread
            v = (v + 1).clip(0.3, 3.0)
        candidate = (k * v).clip(min=2.0)
        fg = fitness(candidate)
        if fg > f:
            f, k = fg, candidate
            bar.set_description(f"autoanchor: evolving anchors, fitness {f:.4f}")
    return k[np.argsort(k.prod(1))]


@torch.no_grad()
def check_anchors(head: torch.nn.Module, shapes_hw: np.ndarray, boxes: Sequence[np.ndarray], img_size: int,
                  anchor_t: float = 4.0, rng: np.random.Generator | None = None,
                  progress: bool = False) -> tuple[bool, str]:
    """Recompute ``head``'s anchors (in place: ``anchor_grid`` in pixels, ``anchors`` in grid units)
    when their best possible recall on the labels is below 0.98 and new ones recall more; whether they
    changed, and a line saying what was found and done."""
    rng = rng or np.random.default_rng(0)
    wh = torch.tensor(label_sizes(shapes_hw, boxes, img_size, rng.uniform(0.9, 1.1, (len(boxes), 1))),
                      dtype=torch.float32)
    current = head.anchor_grid.detach().cpu().reshape(-1, 2)
    bpr, aat = anchor_fit(wh, current, anchor_t)
    found = f"autoanchor: {aat:.2f} anchors/target, best possible recall {bpr:.4f}"
    if bpr >= BPR_THRESHOLD or not len(wh):
        return False, found + ": the anchors fit"
    try:
        new = torch.tensor(kmean_anchors(wh.numpy(), len(current), anchor_t, rng=rng, progress=progress),
                           dtype=torch.float32)
    except ValueError as err:
        return False, found + f"; not recomputed: {err}"
    new_bpr = anchor_fit(wh, new, anchor_t)[0]
    if new_bpr <= bpr:
        return False, found + f"; new anchors recall {new_bpr:.4f}, no better: kept"
    new = new.to(head.anchor_grid).reshape(head.anchors.shape)
    area = new.prod(-1).reshape(-1)
    if (area[-1] - area[0]).sign() != (head.stride[-1] - head.stride[0]).sign():  # smallest on the finest level
        new = new.flip(0)
    head.anchor_grid.copy_(new.view_as(head.anchor_grid))
    head.anchors.copy_(new / head.stride.to(new).view(-1, 1, 1))
    sizes = ", ".join(f"{w:.0f}x{h:.0f}" for w, h in new.reshape(-1, 2).tolist())
    return True, found + f"; replaced by anchors that recall {new_bpr:.4f}: {sizes}"
