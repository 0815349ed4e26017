"""YOLOv7 networks: building blocks, the variant table and the builder."""

from .graph import YOLOv7
from .zoo import FORMS, VARIANTS, ModelConfig, build_model

__all__ = ["FORMS", "VARIANTS", "ModelConfig", "YOLOv7", "build_model"]
