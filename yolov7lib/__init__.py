"""yolov7lib: a faithful, readable re-implementation of YOLOv7 (arXiv 2207.02696)."""

from .models import VARIANTS, ModelConfig, YOLOv7, build_model

__version__ = "0.1.0"
__all__ = ["VARIANTS", "ModelConfig", "YOLOv7", "build_model", "__version__"]
