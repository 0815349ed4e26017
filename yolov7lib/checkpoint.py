"""Checkpoint I/O: the project's own format, and safe import of official YOLOv7 ``.pt`` files.

Own format: a dict ``{"format": "yolov7lib", "version", "config", "fused", "state_dict", ...}``
holding tensors and plain Python values only, written atomically and read with
``torch.load(weights_only=True)``.

Official files pickle whole ``models.yolo.Model`` objects (fp16) under ``model`` / ``ema``. They are
read here with ``weights_only=True`` and an allow-list: each official module class is replaced by
an empty stub ``nn.Module`` registered under the official name, so ``state_dict()`` yields the
official keys without the official code and without running arbitrary pickle code. A pickle that
names any other global (``os.system``, ...) is refused with :class:`UnsafeCheckpointError`.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import pickle
import re
import tempfile
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from .console import UserError
from .models import FORMS, VARIANTS, Form, ModelConfig, build_model
from .models.graph import YOLOv7
from .reparam import fuse, to_deploy

Entry = Literal["ema", "model"]  # the two weight entries of an official .pt file

FORMAT = "yolov7lib"
VERSION = 1

# Official classes that may appear in a YOLOv7 pickle (official/checkpoints.md §3).
OFFICIAL_CLASSES = {
    "models.yolo": ("Model", "Detect", "IDetect", "IAuxDetect"),
    "models.common": (
        "Conv", "Concat", "MP", "SP", "SPPCSPC", "ReOrg", "DownC", "Shortcut", "RepConv",
        "ImplicitA", "ImplicitM",
    ),
}
TORCH_CLASSES = (
    nn.Conv2d, nn.BatchNorm2d, nn.Sequential, nn.ModuleList, nn.MaxPool2d, nn.Upsample, nn.SiLU,
    nn.LeakyReLU, nn.Identity,
)


class UnsafeCheckpointError(UserError, pickle.UnpicklingError):
    """The file's pickle names a global outside the allow-list; nothing from it was executed."""


class CheckpointError(UserError, ValueError):
    """The file is not a checkpoint this library can read, or does not fit the model."""


def _stub(module: str, name: str) -> type[nn.Module]:
    return type(name, (nn.Module,), {"__module__": module, "__doc__": f"stub for {module}.{name}"})


_STUBS = [(_stub(mod, cls), f"{mod}.{cls}") for mod, classes in OFFICIAL_CLASSES.items() for cls in classes]


def _numpy_globals() -> list:
    """What numpy arrays in train.py-style checkpoints (``best_fitness``) need, numpy 1 or 2 writers."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    dtype_classes = [type(np.dtype(t)) for t in ("f8", "f4", "f2", "i8", "i4", "u1", "b1")]
    return [
        (_reconstruct, "numpy.core.multiarray._reconstruct"),
        (_reconstruct, "numpy._core.multiarray._reconstruct"),
        np.ndarray, np.dtype, *dtype_classes, (codecs.encode, "_codecs.encode"),
    ]


def _safe_globals() -> list:
    return [*_STUBS, *TORCH_CLASSES, set, *_numpy_globals()]


def _safe_load(path: str | os.PathLike) -> object:
    """``torch.load(weights_only=True)`` with the official classes allowed as stubs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is an empty file, not a checkpoint")
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic != b"PK" and magic[:1] != b"\x80":  # neither a zip (torch.save) nor a pickle (legacy torch.save)
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (it starts with {magic!r}); give one of our "
                              ".pt files or an official one")
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(
            r"(?:GLOBAL |unrecognized function |got <class ')([\w.]+)", str(err), re.IGNORECASE
        )
        name = found.group(1) if found else "an unsupported object"
        raise UnsafeCheckpointError(
            f"{path}: refused to load: its pickle names {name}, which is neither a tensor type nor an"
            " official YOLOv7 module. Nothing from the file was executed. Only load files you trust"
            " with other tools."
        ) from err
    except (RuntimeError, EOFError, IndexError, KeyError, ValueError, UnicodeDecodeError) as err:  # text, truncated
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(err).__name__}: "
                              f"{str(err)[:80]}); give one of our .pt files or an official one") from err


# ---------------------------------------------------------------------------------------------
# the project's own format


def save_checkpoint(path: str | os.PathLike, model: YOLOv7, **extra: object) -> Path:
    """Write ``model`` (state_dict, config, version) and ``extra`` entries atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": asdict(model.config),
        "fused": is_fused(model),
        "state_dict": model.state_dict(),
        **extra,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint of our format (``weights_only=True``); raise on anything else."""
    payload = _safe_load(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} checkpoint (use load_official_checkpoint?)")
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: format version {payload['version']} is newer than {VERSION}")
    return payload


def load_model(path: str | os.PathLike) -> YOLOv7:
    """Rebuild the model stored in one of our checkpoints."""
    payload = load_checkpoint(path)
    config = ModelConfig(**payload["config"])
    model = build_model(config.name, config.form, config.nc, config.width, config.depth)
    model.config = config
    if payload["fused"]:
        fuse(model)
    model.load_state_dict(payload["state_dict"])
    return model


def fingerprint(model: nn.Module) -> str:
    """The first 16 hex digits of a SHA-256 over the state_dict's names and values: equal exactly when
    two models hold the same weights (on any device)."""
    digest = hashlib.sha256()
    for name, value in model.state_dict().items():
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def is_fused(model: nn.Module) -> bool:
    return is_fused_layout(model.state_dict())


# ---------------------------------------------------------------------------------------------
# official checkpoints


def load_official_state_dict(model: YOLOv7, state_dict: Mapping[str, torch.Tensor]) -> YOLOv7:
    """Load a state_dict keyed by official names (fp16 or fp32, fused or not) into ``model``."""
    if is_fused_layout(state_dict) and not is_fused(model):
        fuse(model)
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [k for k in own if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"state_dict does not fit {model.config.name} ({model.config.form}, nc={model.config.nc}):"
            f" {len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected"
            f" (e.g. {unexpected[:2]}), {len(wrong)} with other shapes (e.g. {wrong[:2]})"
        )
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state_dict.items()})
    return model


def is_fused_layout(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return any(k.endswith(("rbr_reparam.weight", "conv.bias")) for k in state_dict)


def identify(state_dict: Mapping[str, torch.Tensor], act: str | None = None) -> ModelConfig:
    """The (variant, form, nc) whose official layout equals ``state_dict``'s keys and shapes."""
    head = max(int(k.split(".")[1]) for k in state_dict if k.startswith("model."))
    anchors = state_dict.get(f"model.{head}.anchors")
    weight = state_dict.get(f"model.{head}.m.0.weight")
    if anchors is None or weight is None:
        raise CheckpointError("no YOLO head (anchors, m.0.weight) in the last layer")
    nc = weight.shape[0] // anchors.shape[1] - 5
    layout = {k: tuple(v.shape) for k, v in state_dict.items()}
    matches = []
    for name in (n for n, v in VARIANTS.items() if not v.ablation):  # released models only
        for form in FORMS:
            with torch.device("meta"):
                model = build_model(name, form, nc)
            if is_fused_layout(layout):
                fuse(model)
            if {k: tuple(v.shape) for k, v in model.state_dict().items()} == layout:
                matches.append(ModelConfig(name, form, nc))
    if act is not None:
        matches = [c for c in matches if VARIANTS[c.name].act == act] or matches
    if not matches:
        raise CheckpointError(f"the state_dict ({len(layout)} keys, nc={nc}) matches no YOLOv7 variant")
    return matches[0]


def read_official_checkpoint(path: str | os.PathLike, first: Entry = "ema") -> tuple[dict[str, torch.Tensor], dict]:
    """The official state_dict and metadata of a ``.pt`` file: its ``first`` entry if present, else
    the other (``ema`` first for inference, as ``attempt_load``; ``model`` first to fine-tune from, as
    ``train.py``)."""
    ckpt = _safe_load(path)
    if isinstance(ckpt, dict):
        second = {"ema": "model", "model": "ema"}[first]
        model = ckpt.get(first) if ckpt.get(first) is not None else ckpt.get(second)
    else:
        model = ckpt  # train.py's weights/init.pt is the bare module
    if not isinstance(model, nn.Module):
        raise CheckpointError(f"{path}: no pickled YOLOv7 model under 'ema' or 'model'")
    acts = {type(m) for m in model.modules()}
    meta = {
        "names": [str(n) for n in getattr(model, "names", []) or []],
        "act": "leaky" if nn.LeakyReLU in acts else "silu",
        "epoch": ckpt.get("epoch") if isinstance(ckpt, dict) else None,
    }
    return model.state_dict(), meta


def load_official_checkpoint(path: str | os.PathLike, form: Form | None = None, first: Entry = "ema") -> YOLOv7:
    """Import an official YOLOv7 ``.pt`` (training or deploy cfg) into our model, in fp32.

    ``form=None`` keeps the file's form; ``"deploy"`` converts a training checkpoint (implicit
    knowledge folded, aux head dropped). Raises :class:`UnsafeCheckpointError` for pickles naming
    anything but tensors and official YOLOv7 modules. ``first``: the entry read when the file holds
    both (:func:`read_official_checkpoint`).
    """
    state_dict, meta = read_official_checkpoint(path, first)
    config = identify(state_dict, meta["act"])
    model = build_model(config.name, config.form, config.nc)
    model.config = ModelConfig(config.name, config.form, config.nc, tuple(meta["names"]) or None)
    load_official_state_dict(model, state_dict)
    if form is None or form == config.form:
        return model
    if form == "deploy":
        return to_deploy(model)
    raise CheckpointError(f"{path} holds a deploy model; a training model cannot be recovered from it")


def load_any(path: str | os.PathLike) -> YOLOv7:
    """A model from one of our checkpoints or, failing that, from an official ``.pt`` file."""
    try:
        return load_model(path)
    except CheckpointError as ours:
        try:
            return load_official_checkpoint(path)
        except CheckpointError as official:
            if str(official) == str(ours):  # the file is no checkpoint at all: one reason is enough
                raise
            raise CheckpointError(f"{path}: neither a yolov7lib checkpoint ({ours}) nor an official one "
                                  f"({official})") from official
