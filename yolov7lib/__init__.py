"""yolov7lib: a faithful, readable re-implementation of YOLOv7 (Wang, Bochkovskiy, Liao, 2022).

Public API::

    build_model(name, form="training", nc=80)    # the model zoo (VARIANTS)
    reparameterize(model)                        # training -> fused deploy model
    load_official_checkpoint(path, form=None)    # official .pt files, read safely
    load_official_state_dict(model, state_dict)  # dicts keyed by official names
    save_checkpoint(path, model) / load_model(path)
"""

from .checkpoint import (
    load_model,
    load_official_checkpoint,
    load_official_state_dict,
    save_checkpoint,
)
from .models import VARIANTS, ModelConfig, YOLOv7, build_model
from .reparam import fuse, reparameterize

__version__ = "0.1.0"
__all__ = [
    "VARIANTS",
    "ModelConfig",
    "YOLOv7",
    "__version__",
    "build_model",
    "fuse",
    "load_model",
    "load_official_checkpoint",
    "load_official_state_dict",
    "reparameterize",
    "save_checkpoint",
]
