"""YOLOv7 networks: building blocks, the model schema, the zoo and ablation rows, and the builder."""

from .build import VARIANTS, build_model
from .graph import YOLOv7
from .variant import FORMS, Form, ModelConfig, Variant

__all__ = ["FORMS", "VARIANTS", "Form", "ModelConfig", "Variant", "YOLOv7", "build_model"]
