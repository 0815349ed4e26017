"""Figures: a batch grid with boxes and names, label statistics; rendered to PNG."""

from __future__ import annotations

import pytest

from yolov7lib.data.check import load_split
from yolov7lib.data.dataset import DetectionDataset
from yolov7lib.data.plots import plot_batch, plot_label_stats
from yolov7lib.data.synthetic import CLASSES, generate


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    out = tmp_path_factory.mktemp("plots")
    generate(out, train=8, val=1, size=128, seed=2, workers=1)
    return load_split([out / "images" / "train"], len(CLASSES), warn=False).images


def test_batch_grid(images, tmp_path):
    ds = DetectionDataset(images, img_size=128, augment=True, seed=0)
    batch = DetectionDataset.collate([ds[i] for i in range(6)])
    fig = plot_batch(batch[0], batch[1], CLASSES)
    assert len(fig.axes) == 6
    texts = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert texts and texts <= set(CLASSES)
    assert sum(len(ax.patches) for ax in fig.axes) == len(batch[1])
    fig.savefig(tmp_path / "batch.png")
    assert (tmp_path / "batch.png").stat().st_size > 10_000


def test_label_stats(images, tmp_path):
    fig = plot_label_stats(images, CLASSES)
    bars = fig.axes[0].patches
    assert [int(b.get_height()) for b in bars] == [sum((im.classes == k).sum() for im in images)
                                                   for k in range(len(CLASSES))]
    fig.savefig(tmp_path / "labels.png")
    assert (tmp_path / "labels.png").stat().st_size > 10_000
