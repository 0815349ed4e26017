"""Data: the embedded synthetic dataset and the YOLO / COCO dataset formats."""

from .formats import COCO80_TO_91, DataConfig, Sample, read_coco, read_yolo

__all__ = ["COCO80_TO_91", "DataConfig", "Sample", "read_coco", "read_yolo"]
