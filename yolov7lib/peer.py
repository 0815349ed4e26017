"""The official implementation (``yolov7-package==0.0.13``, ``make bench-install``) as a benchmark peer.

Only benchmarks use this module; the package never depends on the official code.

The package ships the official code but no model YAMLs, and the project copies none. The peer's
model is therefore described to the official ``parse_model`` from *our* layer graph: one
``[from, 1, module, args]`` row per layer, in the official layer order (which ours follows), so
the official code builds the same network (same state_dict keys and shapes) with its own modules.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

import numpy as np
import torch
from torch import nn

from yolov7lib import VARIANTS, build_model
from yolov7lib.models.blocks import MP, SP, SPPCSPC, Concat, Conv, DownC, ReOrg, Shortcut, Upsample
from yolov7lib.models.graph import IMAGE
from yolov7lib.models.heads import Detect
from yolov7lib.models.repconv import RepConv


def _shim() -> None:
    try:
        import yolov7_package  # noqa: F401
    except ImportError as err:
        raise ImportError("the official peer needs yolov7-package==0.0.13: run `make bench-install`") from err
    if not hasattr(np, "int"):  # the official code predates numpy 1.24
        np.int = int


def _row(i: int, layer: nn.Module, src: tuple[int, ...], nc: int, anchors, act: str) -> list:
    frm = -1 if src in ((i - 1,), (IMAGE,)) else (src[0] if len(src) == 1 else list(src))
    if isinstance(layer, Conv):
        conv = layer.conv
        return [frm, 1, "Conv", [conv.out_channels, conv.kernel_size[0], conv.stride[0], None, 1, act]]
    if isinstance(layer, RepConv):
        return [frm, 1, "RepConv", [layer.rbr_dense[0].out_channels, 3, 1]]
    if isinstance(layer, SPPCSPC):
        return [frm, 1, "SPPCSPC", [layer.cv7.conv.out_channels]]
    if isinstance(layer, DownC):
        return [frm, 1, "DownC", [layer.cv2.conv.out_channels + layer.cv3.conv.out_channels]]  # c2, halved per branch
    if isinstance(layer, Detect):
        return [list(src), 1, type(layer).__name__, [nc, anchors]]
    if isinstance(layer, MP | SP):
        return [frm, 1, type(layer).__name__, [layer.m.kernel_size]]
    simple = {Concat: ("Concat", [1]), Shortcut: ("Shortcut", [1]), ReOrg: ("ReOrg", []),
              Upsample: ("nn.Upsample", [None, 2, "nearest"])}
    for cls, (name, args) in simple.items():
        if isinstance(layer, cls):
            return [frm, 1, name, args]
    raise TypeError(f"no official module for layer {i}: {type(layer).__name__}")


def official_cfg(name: str, nc: int = 80, form: str = "training") -> dict:
    """The official model dict (as its YAML would give it) of our variant ``name`` in ``form``."""
    with torch.device("meta"):
        model = build_model(name, form, nc)
    v = VARIANTS[name]
    act = "nn.LeakyReLU(0.1)" if v.act == "leaky" else "nn.SiLU()"
    anchors = np.asarray(v.anchors, dtype=float).reshape(len(model.head.strides), -1).tolist()  # flat per level
    rows = [_row(i, layer, src, nc, anchors, act) for i, (layer, src) in enumerate(zip(model.model, model.inputs))]
    return {"nc": nc, "depth_multiple": 1.0, "width_multiple": 1.0, "anchors": anchors, "backbone": rows,
            "head": []}


def official_model(name: str, nc: int = 80, form: str = "training") -> nn.Module:
    """The official ``models.yolo.Model`` built from :func:`official_cfg`."""
    _shim()
    from yolov7_package.models.yolo import Model

    return Model(official_cfg(name, nc, form), ch=3, nc=nc)


def official_loss(model: nn.Module, hyp: dict):
    """``ComputeLossOTA`` / ``ComputeLossAuxOTA`` for ``model`` (ours or the official one), runnable on
    CUDA (:func:`_on_targets_device`)."""
    _shim()
    from yolov7_package.utils.loss import ComputeLossAuxOTA, ComputeLossOTA

    model.hyp, model.gr = hyp, 1.0
    head = model.model[-1]
    return _on_targets_device(ComputeLossAuxOTA if type(head).__name__ == "IAuxDetect" else ComputeLossOTA)(model)


_CPU_ONLY = "torch.ones(size=(len(b),)) * i"


def _on_targets_device(cls: type) -> type:
    """``cls`` with the upstream fix for CUDA (WongKinYiu/yolov7 #1224, PR #1283) applied to its own
    ``build_targets*`` methods, as a subclass: each builds a per-candidate layer index on the CPU and
    indexes it with a mask on the targets' device, which PyTorch refuses on CUDA. On the CPU the
    results are the same."""
    fixed = {}
    for name, method in vars(cls).items():
        if not name.startswith("build_targets"):
            continue
        source = textwrap.dedent(inspect.getsource(method))
        if _CPU_ONLY not in source:
            raise RuntimeError(f"{cls.__name__}.{name} of this yolov7-package differs from 0.0.13: no {_CPU_ONLY!r}")
        namespace: dict = {}
        tree = ast.parse(source.replace(_CPU_ONLY, "torch.ones(size=(len(b),), device=b.device) * i"))
        ast.increment_lineno(tree, inspect.getsourcelines(method)[1] - 1)  # tracebacks name the official lines
        code = compile(tree, inspect.getsourcefile(method) or "<official>", "exec")
        exec(code, method.__globals__, namespace)  # the official method with that one argument added
        fixed[name] = namespace[name]
    return type(cls.__name__, (cls,), fixed)
