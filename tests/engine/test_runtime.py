"""Where a run executes: FP32 without TensorFloat-32 for the FP32 cells of Table 10."""

from __future__ import annotations

import pytest
import torch

from yolov7lib.runtime import full_fp32


def test_full_fp32_turns_tf32_off_and_restores_it():
    flags = (torch.backends.cudnn, "allow_tf32"), (torch.backends.cuda.matmul, "allow_tf32")
    before = [getattr(obj, name) for obj, name in flags]
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True  # an Ampere default and more
        with full_fp32():
            assert [getattr(obj, name) for obj, name in flags] == [False, False]
        assert [getattr(obj, name) for obj, name in flags] == [True, True]
        with pytest.raises(ValueError), full_fp32():  # restored after an error too
            raise ValueError
        assert [getattr(obj, name) for obj, name in flags] == [True, True]
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
