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


def test_available_cores_follow_the_affinity():
    """Under ``taskset`` or a container's CPU set, the cores this process may use, not the machine's."""
    import subprocess
    import sys

    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from yolov7lib.runtime import available_cores; print(available_cores())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1"


def test_environment_names_the_kind_of_cpu():
    """CPU training is bit-exact on one kind of CPU only: a run's environment names its model and the
    instruction set PyTorch's kernels use."""
    from pathlib import Path

    from yolov7lib.runtime import environment

    env = environment(torch.device("cpu"))
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and env["device"] == "cpu"
    info = Path("/proc/cpuinfo")
    if info.exists():
        names = [line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
                 if line.startswith("model name")]
        assert env["cpu"] == (names[0] if names else env["cpu"]) and env["cpu"] not in ("", "x86_64")
