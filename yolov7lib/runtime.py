"""Where and how a run executes: the device, the processes of a torchrun launch, the per-epoch
sampler every rank shares, random-number state for exact resumes, the model inside DDP, and FP32
without TensorFloat-32.
"""

from __future__ import annotations

import math
import os
import platform
import random
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .console import UserError


@dataclass(frozen=True)
class Processes:
    """This process's place in a launch (torchrun's ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``; one
    process without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> Processes:
        env = os.environ
        return cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))

    @property
    def distributed(self) -> bool:
        """Under torchrun, even with one process: one GPU runs the same code path (NCCL, SyncBN) as eight."""
        return self.world > 1 or dist.is_torchelastic_launched()


class EpochSampler(torch.utils.data.Sampler[int]):
    """A permutation per epoch fixed by ``(seed, epoch)``, split across ranks (padded to equal size)."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.n, self.seed, self.rank, self.world, self.epoch = n, seed, rank, world, 0
        self.per_rank = math.ceil(n / world)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100003 + self.epoch))
        order = torch.cat((order, order[: self.per_rank * self.world - self.n]))
        return iter(order[self.rank::self.world].tolist())

    def __len__(self) -> int:
        return self.per_rank


def select_device(name: str, local_rank: int = 0) -> torch.device:
    """``--device`` as the official scripts read it: '' (CUDA if present, else CPU), 'cpu', 'cuda',
    a GPU index ('0') or any torch device string; under DDP '' and 'cuda' pick the local rank's GPU.
    A device that is not a device, or CUDA where there is none, is a :class:`UserError`."""
    if name in ("", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    try:
        device = torch.device("cuda", int(name)) if name.isdigit() else torch.device(name or "cpu")
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device: '' (CUDA if available), cpu, cuda, cuda:N or a GPU "
                        "index N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": repr(random.getstate())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / DataParallel."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel) else model


def environment(device: torch.device | None = None) -> dict[str, str]:
    """What a measurement or a run was made on: library versions, host, CPU and threads, and (keys
    only there) the GPU, CUDA, cuDNN and driver where ``device`` (default: the first GPU, if any) is one."""
    if device is None:
        device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    env = {"torch": torch.__version__, "python": platform.python_version(), "host": platform.node(),
           "cpu": cpu_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "threads": str(torch.get_num_threads()), "device": device.type}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, cuda=str(torch.version.cuda), cudnn=str(torch.backends.cudnn.version()),
                   driver=_driver())
    return env


def cpu_name() -> str:
    """The CPU's model name (Linux's ``/proc/cpuinfo``; elsewhere what :mod:`platform` knows). With
    the kernels' instruction set (``torch.backends.cpu.get_cpu_capability()``) it tells on which kind
    of CPU a run was trained: CPU training is bit-exact on one kind only."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def cpu_kind() -> str:
    """``model name (instruction set)``: runs on another kind of CPU round differently."""
    return f"{cpu_name()} ({torch.backends.cpu.get_cpu_capability()})"


def _driver() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity: a container's or ``taskset``'s share, where
    ``os.cpu_count()`` counts the whole machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (CUDA runs asynchronously), so that a clock read next
    measures it; nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def full_fp32() -> Iterator[None]:
    """FP32 convolutions and matrix products in full precision: without TensorFloat-32, whose inputs
    keep 10 mantissa bits and which cuDNN uses for FP32 convolutions by default on Ampere and newer
    GPUs (the paper's FP32 is a V100's). No effect on the CPU; the settings are restored after."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
