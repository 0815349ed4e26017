"""Training: the paper's recipe end to end (§5; algorithms.md §7), small and readable.

One loop serves every model: the loss is picked from the model's head (an auxiliary head gets the
coarse-to-fine lead-guided loss, :class:`~yolov7lib.loss.YOLOv7Loss`). Per epoch: warm-up, then the
one-cycle schedule; nominal batch 64 by gradient accumulation; AMP on CUDA; EMA of the weights, which
is validated and saved; ``last.pt`` and ``best.pt`` written atomically with everything needed to
resume exactly (model, EMA, optimizer, scheduler, scaler, RNG states, config); a row of
``results.csv`` per epoch, and its curves in ``results.png`` at the end. Hooks receive
the trainer at the start, after each epoch and at the end (MLflow tracking is one).

Run it as ``yolov7 train ...``, ``python -m yolov7lib.train ...`` or, on several processes,
``torchrun --nproc_per_node N -m yolov7lib.train ...`` (ranks from the environment; gloo on the CPU,
NCCL on GPUs).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import os
import random
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from torch import nn

from .autoanchor import check_anchors
from .checkpoint import CheckpointError, load_checkpoint, load_official_checkpoint, save_checkpoint
from .console import IMG_MIN, HelpFormatter, UserError, duration, run, stride_multiple
from .data.check import load_split
from .data.dataset import DetectionDataset, validation_dataset
from .data.formats import DataConfig
from .ema import ModelEMA
from .evaluate import METRICS, EvalResult, evaluate
from .hooks import Hook
from .hyp import HYPS, Hyp, load_hyp
from .loss import YOLOv7Loss
from .models import VARIANTS, ModelConfig, build_model
from .optim import accumulation, build_optimizer, linear, one_cycle, warmup, warmup_iterations
from .runtime import EpochSampler, Processes, cpu_kind, rng_state, select_device, set_rng_state, unwrap
from .tracking import tracking_hooks

FORMAT_VERSION = 1


@dataclass
class TrainConfig:
    """Every setting of a run (flags of ``yolov7 train``, explained in :data:`HELP`; logged to MLflow
    and stored in checkpoints)."""

    model: str = "yolov7-tiny"
    width: float = 1.0
    depth: float = 1.0
    data: str = "data/synthetic/data.yaml"
    hyp: str = "p5"
    img_size: int = 640
    batch_size: int = 16
    epochs: int = 300
    device: str = ""
    workers: int = 2
    cache_images: bool = False
    project: str = "runs/train"
    name: str = "exp"
    weights: str = ""
    amp: str = "auto"
    multi_scale: bool = False
    autoanchor: bool = True
    channels_last: bool = True
    sync_bn: bool = False
    adam: bool = False
    linear_lr: bool = False
    seed: int = 0
    deterministic: bool = False
    aux_strategy: str = ""
    aux_decoder: str = "constrained"
    warmup_min_iters: int = 1000
    nominal_batch: int = 64
    val_interval: int = 1
    conf_thres: float = 0.001
    iou_thres: float = 0.65
    limit_batches: int = 0
    max_nonfinite: int = 10
    tracking: bool = True
    experiment: str = "yolov7lib"
    progress: bool = True
    overrides: dict[str, float] = field(default_factory=dict)

    @property
    def save_dir(self) -> Path:
        return Path(self.project) / self.name

    def check(self) -> None:
        """Raise :class:`~yolov7lib.console.UserError` for a setting that cannot be right or a file
        that is not there, before any data is read or the run folder is made."""
        if self.model not in VARIANTS:
            raise UserError(f"--model {self.model!r} is not a model; choose from {', '.join(VARIANTS)}")
        for flag, value in (("--batch", self.batch_size), ("--epochs", self.epochs),
                            ("--val-interval", self.val_interval), ("--nominal-batch", self.nominal_batch)):
            if value < 1:
                raise UserError(f"{flag} must be at least 1, got {value}")
        if self.img_size < IMG_MIN:
            raise UserError(f"--img must be at least {IMG_MIN} pixels, got {self.img_size}")
        if min(self.workers, self.limit_batches, self.warmup_min_iters, self.seed) < 0:
            raise UserError("--workers, --limit-batches, --warmup-min-iters and --seed cannot be negative")
        if self.width <= 0 or self.depth <= 0:
            raise UserError(f"--width and --depth must be positive, got {self.width}, {self.depth}")
        for flag, value, choices in (("--amp", self.amp, AMP), ("--aux-strategy", self.aux_strategy, AUX_STRATEGIES),
                                     ("--aux-decoder", self.aux_decoder, AUX_DECODERS)):
            if value not in choices:
                raise UserError(f"{flag} {value!r} is not one of {', '.join(repr(c) for c in choices)}")
        if not 0 <= self.conf_thres <= 1 or not 0 <= self.iou_thres <= 1:
            raise UserError("--conf-thres and --iou-thres must lie in [0, 1]")
        if self.hyp not in HYPS and not Path(self.hyp).is_file():
            raise UserError(f"--hyp {self.hyp!r} is neither a preset ({', '.join(HYPS)}) nor a hyp YAML file")
        unknown = set(self.overrides) - {f.name for f in fields(Hyp)}
        if unknown:
            raise UserError(f"--set {', '.join(sorted(unknown))}: no such hyp value; the hyp values are "
                            + ", ".join(f.name for f in fields(Hyp)))
        hyp = load_hyp(self.hyp, self.overrides)
        missing = [f"{k} {getattr(hyp, k):g}" for k in ("fl_gamma", "copy_paste") if getattr(hyp, k)]
        if missing:
            raise UserError(f"hyp {', '.join(missing)}: focal loss (fl_gamma) and copy-paste are not implemented "
                            "(every official hyp file sets both to 0)")
        if hyp.loss_ota not in (0, 1):
            raise UserError(f"hyp loss_ota {hyp.loss_ota:g}: 1 for the OTA losses, 0 for the loss without SimOTA")
        select_device(self.device)  # a device that is not one, or CUDA where there is none
        if self.weights and not Path(self.weights).is_file():
            raise UserError(f"--weights {self.weights!r}: no such checkpoint")
        if not Path(self.data).exists():
            raise UserError(f"--data {self.data!r}: no such data YAML or dataset folder")


AMP = ("auto", "fp16", "bf16", "off")
AUX_STRATEGIES = ("", "none", "independent", "lead_guided", "coarse_to_fine")
AUX_DECODERS = ("constrained", "free")


HELP: dict[str, str] = {  # what each TrainConfig field does (the --help of yolov7 train)
    "model": "model to build: a released YOLOv7 (yolov7-tiny, yolov7, yolov7x, yolov7-w6, yolov7-e6, yolov7-d6, "
             "yolov7-e6e) or an ablation row (python -m yolov7lib.models --table lists them)",
    "width": "multiply every channel count of the model (reduced-scale runs; 1 = the paper's model)",
    "depth": "multiply the depth of every computational block (ELAN convs, CSP repeats)",
    "data": "data YAML (official format: train, val, nc, names)",
    "hyp": "hyper-parameters: p5, p6, tiny (the official hyp.scratch files) or a hyp YAML",
    "img_size": "training and validation image size in pixels",
    "batch_size": "images per step, over all processes",
    "epochs": "epochs to train",
    "device": "'' (CUDA if available), 'cpu', 'cuda', a GPU index, or a torch device",
    "workers": "data-loading processes per training process",
    "cache_images": "decode and resize every image once into RAM (the official --cache-images)",
    "project": "folder of the runs",
    "name": "this run's folder under the project",
    "weights": "initial weights: one of our checkpoints or an official .pt (entries of equal shape are loaded)",
    "amp": "mixed precision: auto (fp16 on CUDA, off on the CPU), fp16, bf16 or off",
    "multi_scale": "random image size from 0.5x to 1.5x per batch",
    "autoanchor": "recompute the anchors (k-means, then genetic evolution) when they fit the training labels "
                  "poorly (best possible recall below 0.98), as officially; --no-autoanchor: the official "
                  "--noautoanchor",
    "channels_last": "NHWC activations (faster convolutions on CPUs and tensor cores)",
    "sync_bn": "SyncBatchNorm across the processes of a torchrun launch (CUDA)",
    "adam": "Adam instead of SGD with Nesterov momentum",
    "linear_lr": "linear learning-rate decay instead of the one-cycle cosine",
    "seed": "seed of the initialization, data order and augmentation",
    "deterministic": "deterministic kernels: bit-exact reruns and resumes on CUDA (slower)",
    "aux_strategy": "auxiliary-head assignment: '' (the head's own), none, independent, lead_guided or "
                    "coarse_to_fine (Table 6)",
    "aux_decoder": "coarse labels of the aux head: constrained (the paper's) or free (Table 7)",
    "warmup_min_iters": "warm-up lasts at least this many iterations (the official 1000)",
    "nominal_batch": "gradients accumulate up to this batch (the official 64)",
    "val_interval": "validate every this many epochs (and after the last)",
    "conf_thres": "validation: lowest score kept before NMS",
    "iou_thres": "validation: NMS IoU threshold",
    "limit_batches": "at most this many batches per epoch (0 = all; smoke runs)",
    "max_nonfinite": "stop after this many consecutive non-finite losses",
    "tracking": "log the run to MLflow (mlflow.db beside the runs, or MLFLOW_TRACKING_URI)",
    "experiment": "MLflow experiment name",
    "progress": "progress bars",
}


class Trainer:
    """Holds the state of a run; :meth:`fit` runs it. Rank and world size come from the environment."""

    def __init__(self, cfg: TrainConfig, hooks: Sequence[Hook] = ()) -> None:
        cfg.check()
        self.cfg, self.hooks, self.save_dir = cfg, list(hooks), cfg.save_dir
        self.data = DataConfig.load(cfg.data)  # a mistaken path fails before the run folder is made
        self.hyp = load_hyp(cfg.hyp, cfg.overrides)
        self.device = self._start_processes()
        self.model = self._build_model()
        self.criterion = YOLOv7Loss(self.model, self.hyp.loss().scaled(self.data.nc, cfg.img_size, self.model.head.nl),
                                    cfg.aux_strategy or None, cfg.aux_decoder, ota=bool(self.hyp.loss_ota))
        self._build_optimization()
        self.ema = ModelEMA(self.model)
        self.start_epoch, self.best_fitness, self.epoch, self.epochs_saved = 0, -1.0, 0, 0
        self.metrics: dict[str, float] = {}
        self.last_eval: EvalResult | None = None
        self._build_data()
        if self.rank == 0 and cfg.autoanchor:  # other ranks get its anchors from the DDP broadcast
            self._check_anchors()
        round_to_fp16(self.model)  # as the official start (after the EMA's copy): its weights and anchors
        if self.distributed:
            self.model = self._distribute(self.model)

    # -- the parts of a run, built in this order (the random draws of a seed depend on it) ------
    def _start_processes(self) -> torch.device:
        """Rank and world from torchrun, the device, the process group, determinism and the seeds; on
        rank 0 the run folder, which must be writable."""
        cfg = self.cfg
        if int(os.environ.get("RANK", 0)) == 0:
            try:
                (self.save_dir / "weights").mkdir(parents=True, exist_ok=True)
                tempfile.TemporaryFile(dir=self.save_dir / "weights").close()
            except OSError as err:
                raise UserError(f"cannot write the run to {self.save_dir} ({err.strerror}); choose another "
                                "--project or --name") from None
        processes = Processes.from_environment()
        self.rank, self.world, self.local_rank = processes.rank, processes.world, processes.local_rank
        self.distributed = processes.distributed
        device = select_device(cfg.device, self.local_rank)
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if cfg.batch_size % self.world:
            raise ValueError(f"batch size {cfg.batch_size} is not a multiple of the {self.world} processes")
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's deterministic workspace
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        torch.manual_seed(cfg.seed + self.rank)
        random.seed(cfg.seed + self.rank)
        return device

    def _build_model(self) -> nn.Module:
        """The training-form model for the data's classes, with ``--weights`` loaded where they fit."""
        cfg, nc = self.cfg, self.data.nc
        model = build_model(cfg.model, "training", nc, cfg.width, cfg.depth).to(self.device)
        model.config = ModelConfig(cfg.model, "training", nc, tuple(self.data.names), cfg.width, cfg.depth)
        if cfg.weights:
            self._load_weights(model, cfg.weights)
        return model.to(memory_format=torch.channels_last) if cfg.channels_last else model

    def _build_optimization(self) -> None:
        """Gradient accumulation to the nominal batch, the optimizer, the lr schedule, AMP and its scaler."""
        cfg = self.cfg
        self.accumulate = accumulation(cfg.batch_size, cfg.nominal_batch)
        self.optimizer = build_optimizer(self.model, self.hyp, cfg.batch_size, cfg.adam, cfg.nominal_batch)
        self.lf = (linear if cfg.linear_lr else one_cycle)(self.hyp.lrf, cfg.epochs)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lf)
        self.amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
            cfg.amp, torch.float16 if cfg.amp == "auto" and self.device.type == "cuda" else None)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

    def _build_data(self) -> None:
        """The augmented training set and its loader (one shard per rank); the validation set on rank 0."""
        cfg = self.cfg
        train_split = load_split(self.data.train, self.data.nc, warn=self.rank == 0, data_yaml=cfg.data,
                                 names=self.data.names)
        if not any(len(im.classes) for im in train_split.images):
            raise UserError(f"the training split of {cfg.data} has no objects: nothing to learn "
                            f"(python -m yolov7lib.data.check {cfg.data} shows why)")
        self.train_set = DetectionDataset(train_split.images, cfg.img_size, self.hyp, augment=True, seed=cfg.seed,
                                          cache_images=cfg.cache_images, progress=cfg.progress and self.rank == 0)
        self.sampler = EpochSampler(len(self.train_set), cfg.seed, self.rank, self.world)
        self.loader = torch.utils.data.DataLoader(
            self.train_set, batch_size=cfg.batch_size // self.world, sampler=self.sampler, num_workers=cfg.workers,
            collate_fn=DetectionDataset.collate, pin_memory=self.device.type == "cuda",
            persistent_workers=cfg.workers > 0)
        if self.rank == 0:
            stride = int(max(self.model.head.strides))
            self.val_batch = 2 * (cfg.batch_size // self.world)  # officially twice the batch of one process
            self.val_set = validation_dataset(self.data, cfg.img_size, stride, self.val_batch, warn=True,
                                              cache_images=cfg.cache_images, progress=cfg.progress)

    def _check_anchors(self) -> None:
        """Autoanchor on the training labels (:func:`yolov7lib.autoanchor.check_anchors`); a line when
        the anchors change, or with ``progress``."""
        images = self.train_set.images
        changed, message = check_anchors(self.model.head, np.array([im.size for im in images]),
                                         [im.boxes for im in images], self.cfg.img_size, self.hyp.anchor_t,
                                         np.random.default_rng(self.cfg.seed), self.cfg.progress)
        if changed or self.cfg.progress:
            print(message, flush=True)

    def _distribute(self, model: nn.Module) -> nn.Module:
        """SyncBatchNorm (on CUDA, with ``--sync-bn``) and the DistributedDataParallel wrapper."""
        if self.cfg.sync_bn and self.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            if self.rank == 0:
                n = sum(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
                print(f"SyncBatchNorm: {n} layers synchronised over {self.world} process(es)")
        elif self.cfg.sync_bn and self.rank == 0:
            warnings.warn("SyncBatchNorm needs CUDA; training on the CPU with per-process BatchNorm",
                          RuntimeWarning, stacklevel=3)
        ids = [self.device.index] if self.device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if self.rank == 0:
            print(f"DistributedDataParallel: {self.world} process(es), backend {dist.get_backend()}")
        return model

    # -- weights and checkpoints ---------------------------------------------------------------
    def _load_weights(self, model: nn.Module, path: str) -> None:
        """Initial weights: entries of the same name and shape (anchors excluded), as officially; what
        differs between the checkpoint's model and this run's, and what was not transferred, is said."""
        try:
            ckpt = load_checkpoint(path)
            state, theirs = ckpt["state_dict"], ModelConfig(**ckpt["config"])
        except CheckpointError:
            source = load_official_checkpoint(path, "training", first="model")  # as train.py, not the EMA
            state, theirs = source.state_dict(), source.config
        own = model.state_dict()
        usable = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape and "anchor" not in k}
        model.load_state_dict(usable, strict=False)
        if self.rank != 0:
            return
        ours = model.config
        pairs = (("model", theirs.name, ours.name), ("nc", theirs.nc, ours.nc), ("width", theirs.width, ours.width),
                 ("depth", theirs.depth, ours.depth))
        differs = [f"{name} {a} -> {b}" for name, a, b in pairs if a != b]
        layers = sorted({".".join(k.split(".")[:2]) for k in own if k not in usable and "anchor" not in k},
                        key=lambda name: int(name.split(".")[1]))
        print(f"--weights {path}: transferred {len(usable)} of {len(own)} tensors"
              + (f" ({', '.join(differs)})" if differs else "")
              + (f"; not transferred (kept at their initialization): {', '.join(layers)}" if layers else ""))
        if len(usable) < len(own) // 2:
            warnings.warn(f"--weights {path} fits less than half of {ours.name}: most layers start from scratch",
                          RuntimeWarning, stacklevel=3)

    def state(self, epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "best_fitness": self.best_fitness,
            "model_state": unwrap(self.model).state_dict(),
            "ema_updates": self.ema.updates,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "train_config": asdict(self.cfg),
            "hyp": asdict(self.hyp),
            "metrics": self.metrics,
            "trainer_version": FORMAT_VERSION,
            "threads": torch.get_num_threads(),  # a resume on as many threads goes on bit for bit
            "cpu": cpu_kind(),  # and on the same kind of CPU
            "data_path": str(Path(self.cfg.data).resolve()),  # a resume from another folder finds the data
        }

    def save(self, epoch: int, best: bool) -> None:
        """``last.pt`` (and ``best.pt``): the EMA weights as the model, plus the training state."""
        weights = self.save_dir / "weights"
        save_checkpoint(weights / "last.pt", self.ema.ema, **self.state(epoch))
        self.epochs_saved = epoch + 1
        if best:
            save_checkpoint(weights / "best.pt", self.ema.ema, epoch=epoch, metrics=self.metrics,
                            train_config=asdict(self.cfg))

    def resume(self, path: str | os.PathLike) -> None:
        """Continue from ``last.pt``: the run goes on exactly as if never interrupted."""
        ckpt = load_checkpoint(path)
        unwrap(self.model).load_state_dict(ckpt["model_state"])
        self.ema.ema.load_state_dict(ckpt["state_dict"])
        self.ema.updates = ckpt["ema_updates"]
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        self.start_epoch, self.best_fitness = ckpt["epoch"] + 1, ckpt["best_fitness"]
        self.epochs_saved = self.start_epoch
        self.metrics = ckpt.get("metrics", {})
        self._trim_results(ckpt["epoch"])
        here = {"threads": torch.get_num_threads(), "cpu": cpu_kind()}
        changed = [f"{key} {ckpt[key]} -> {value}" for key, value in here.items() if ckpt.get(key, value) != value]
        if changed:
            warnings.warn(f"{path} trained elsewhere ({', '.join(changed)}): the resume goes on, but not bit for "
                          "bit as it would have (float sums in another order)", RuntimeWarning, stacklevel=2)
        if self.start_epoch >= self.cfg.epochs:
            warnings.warn(f"{path}: training already finished ({self.cfg.epochs} epochs)", stacklevel=2)

    # -- the loop ------------------------------------------------------------------------------
    def _multi_scale(self, images: torch.Tensor, ni: int) -> torch.Tensor:
        """The batch resized so that its longer side is :func:`multi_scale_size`."""
        gs = int(max(unwrap(self.model).head.strides))
        size = multi_scale_size(self.cfg.img_size, gs, self.cfg.seed, self.rank, ni)
        sf = size / max(images.shape[2:])
        if sf == 1:
            return images
        shape = [math.ceil(x * sf / gs) * gs for x in images.shape[2:]]
        return F.interpolate(images, size=shape, mode="bilinear", align_corners=False)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        from tqdm import tqdm

        cfg, model, device = self.cfg, self.model, self.device
        model.train()
        self.sampler.set_epoch(epoch)
        self.train_set.set_epoch(epoch)
        nb = len(self.loader) if not cfg.limit_batches else min(cfg.limit_batches, len(self.loader))
        nw = warmup_iterations(self.hyp, nb, cfg.warmup_min_iters)
        accumulate, failures = self.accumulate, 0
        mean = torch.zeros(4)
        bar = tqdm(self.loader, total=nb, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=not cfg.progress or self.rank != 0, leave=False)
        self.optimizer.zero_grad()
        for i, (images, targets, _, _) in enumerate(bar):
            if i >= nb:
                break
            ni = i + nb * epoch
            images = images.to(device, non_blocking=True).float() / 255
            if cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            if ni <= nw:
                accumulate = warmup(self.optimizer, ni, nw, self.hyp, self.lf(epoch), cfg.batch_size, cfg.nominal_batch)
            if cfg.multi_scale:
                images = self._multi_scale(images, ni)
            with torch.autocast(device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
                preds = model(images)
            out = self.criterion([p.float() for p in preds], targets.to(device))
            loss = out.loss * self.world
            if not torch.isfinite(loss):
                failures += 1
                warnings.warn(f"non-finite loss at epoch {epoch}, batch {i}: step skipped", RuntimeWarning,
                              stacklevel=2)
                self.optimizer.zero_grad()
                if failures >= cfg.max_nonfinite:
                    raise FloatingPointError(f"{failures} consecutive non-finite losses; stopping")
                continue
            failures = 0
            self.scaler.scale(loss).backward()
            if ni % accumulate == 0:
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad()
                self.ema.update(model)
            mean = (mean * i + out.components.cpu()) / (i + 1)
            bar.set_postfix(box=f"{mean[0]:.4f}", obj=f"{mean[1]:.4f}", cls=f"{mean[2]:.4f}", n=len(targets))
        lrs = {f"lr{j}": g["lr"] for j, g in enumerate(self.optimizer.param_groups)}
        return {"train/box": float(mean[0]), "train/obj": float(mean[1]), "train/cls": float(mean[2]),
                "train/loss": float(mean[3]), **lrs}

    def validate(self) -> dict[str, float]:
        result = evaluate(self.ema.ema, self.val_set, self.data.names, batch_size=self.val_batch,
                          conf_thres=self.cfg.conf_thres, iou_thres=self.cfg.iou_thres,
                          progress=self.cfg.progress)
        self.last_eval = result
        return {f"val/{k}": v for k, v in result.metrics.items()}

    def fit(self) -> dict[str, float]:
        cfg = self.cfg
        if self.rank == 0:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            (self.save_dir / "config.yaml").write_text(yaml.safe_dump(asdict(cfg), sort_keys=False))
            for hook in self.hooks:
                hook.on_train_start(self)
        started = time.perf_counter()
        for epoch in range(self.start_epoch, cfg.epochs):
            self.epoch = epoch
            t0 = time.perf_counter()
            metrics = self.train_epoch(epoch)
            self.scheduler.step()
            if self.rank == 0:
                if (epoch + 1) % cfg.val_interval == 0 or epoch + 1 == cfg.epochs:
                    metrics.update(self.validate())
                fitness = 0.1 * metrics.get("val/AP50", 0.0) + 0.9 * metrics.get("val/AP", 0.0)
                # as officially, a validated epoch that ties the best becomes the best
                best = fitness > self.best_fitness or (fitness == self.best_fitness and "val/AP" in metrics)
                self.best_fitness = max(self.best_fitness, fitness)
                metrics.update({"fitness": fitness, "epoch_seconds": time.perf_counter() - t0})
                self.metrics = metrics
                self._write_results(epoch, metrics)  # before the checkpoint: a resume drops rows past it
                self.save(epoch, best)
                if cfg.progress:
                    shown = ("train/loss", "val/AP", "val/AP50", "epoch_seconds")
                    print(f"epoch {epoch + 1}/{cfg.epochs} " + " ".join(
                        f"{k.split('/')[-1]} {metrics[k]:.4g}" for k in shown if k in metrics), flush=True)
                for hook in self.hooks:
                    hook.on_epoch_end(self, metrics)
            if self.distributed:
                dist.barrier()
        if self.rank == 0:
            if cfg.progress and self.last_eval is not None and self.data.nc < 50:  # as the official final test
                print(self.last_eval.class_table(), flush=True)
            try:
                results_figure(self.save_dir / "results.csv").savefig(self.save_dir / "results.png", dpi=100)
            except Exception as err:  # a figure never costs the run
                warnings.warn(f"no results.png: {type(err).__name__}: {err}", RuntimeWarning, stacklevel=2)
            for hook in self.hooks:
                hook.on_train_end(self)
            if cfg.progress:
                print(f"{cfg.epochs - self.start_epoch} epoch(s) in {duration(time.perf_counter() - started)}; "
                      f"{self.save_dir}: weights/last.pt, weights/best.pt, results.csv, results.png", flush=True)
        return self.metrics

    def _trim_results(self, last_epoch: int) -> None:
        """Drop the rows of ``results.csv`` after ``last_epoch`` (written before a stop that came ahead
        of their checkpoint): the resumed run writes them again."""
        path = self.save_dir / "results.csv"
        if self.rank != 0 or not path.exists():
            return
        lines = path.read_text().splitlines(keepends=True)
        kept = lines[:1] + [line for line in lines[1:] if int(line.split(",", 1)[0]) <= last_epoch]
        if len(kept) < len(lines):
            path.write_text("".join(kept))

    def _write_results(self, epoch: int, metrics: dict[str, float]) -> None:
        """Append the epoch's row to ``results.csv``. The columns are fixed (every ``val/`` metric
        included), so that epochs without validation (``val_interval`` > 1) leave those cells empty
        instead of shifting the row."""
        path = self.save_dir / "results.csv"
        new = not path.exists() or epoch == 0
        val = [f"val/{k}" for k in METRICS]
        columns = ["epoch", *(k for k in metrics if k not in val), *val]
        with open(path, "w" if new else "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            if new:
                writer.writeheader()
            writer.writerow({"epoch": epoch, **{k: f"{v:.6g}" for k, v in metrics.items()}})


CURVES = (("train/box", "box loss (CIoU)"), ("train/obj", "objectness loss"), ("train/cls", "class loss"),
          ("train/loss", "loss"), ("lr", "learning rate per group"), ("val/AP", "AP@[.5:.95]"), ("val/AP50", "AP50"),
          ("val/AP75", "AP75"), ("val/AR100", "AR100"), ("epoch_seconds", "seconds per epoch"))


def read_results(path: str | os.PathLike) -> list[tuple[int, dict[str, float]]]:
    """The rows of a run's ``results.csv``: (epoch from 0, its metrics), without the empty cells of
    epochs that were not validated."""
    with open(path, newline="") as f:
        return [(int(r.pop("epoch")), {k: float(v) for k, v in r.items() if v}) for r in csv.DictReader(f)]


def results_figure(path: str | os.PathLike):
    """A run's curves from its ``results.csv``: the training losses, learning rates and epoch times per
    epoch, and the validation metrics at the epochs that were validated."""
    from matplotlib.figure import Figure

    rows = read_results(path)
    lrs = [k for k in (rows[0][1] if rows else {}) if k.startswith("lr") and k[2:].isdigit()]  # one per group
    fig = Figure(figsize=(16, 6), layout="constrained")
    for ax, (key, title) in zip(fig.subplots(2, 5, sharex=True).flat, CURVES):
        for column in lrs if key == "lr" else [key]:
            points = [(epoch + 1, m[column]) for epoch, m in rows if column in m]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=column)
        if key == "lr" and ax.lines:
            ax.legend(fontsize=7)
        ax.set_title(title, fontsize=10)
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in fig.axes[5:]:
        ax.set_xlabel("epoch")
    fig.suptitle(str(Path(path).parent))
    return fig


def train(cfg: TrainConfig, hooks: Sequence[Hook] = (), resume: str | os.PathLike | None = None):
    """Run (or resume) a training; returns the last epoch's metrics. MLflow tracking is a hook
    (:func:`yolov7lib.tracking.tracking_hooks`), attached by the command line and the pipeline."""
    trainer = Trainer(cfg, list(hooks))
    if resume:
        trainer.resume(resume)
    try:
        return trainer.fit()
    except KeyboardInterrupt:
        if trainer.rank != 0 or not trainer.epochs_saved:
            raise
        last = trainer.save_dir / "weights" / "last.pt"  # Ctrl-C: say what is kept and how to go on
        raise KeyboardInterrupt(f"{trainer.epochs_saved} of {cfg.epochs} epochs are saved in {last}; "
                                f"continue with: yolov7 train --resume {last}") from None
    finally:
        if trainer.distributed and dist.is_initialized():
            dist.destroy_process_group()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags familiar to users of the official train.py, one per :class:`TrainConfig` field. A flag
    not given parses to None (its default is the field's, named in the help), so that ``--resume``
    can tell the flags given from the defaults."""
    aliases = {"model": ["--model", "--cfg"], "img_size": ["--img", "--img-size"], "batch_size": ["--batch",
               "--batch-size"]}
    for f in fields(TrainConfig):
        if f.name == "overrides":
            continue
        flags = aliases.get(f.name, [f"--{f.name.replace('_', '-')}"])
        default = f.default
        text = HELP[f.name] + ("" if default == "" else f" (default: {default})")
        if isinstance(default, bool):
            parser.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, help=text)
        else:
            parser.add_argument(*flags, dest=f.name, type=type(default), help=text)
    parser.add_argument("--resume", nargs="?", const="last", default=None,
                        help="continue a run exactly: its last.pt, or (no value) PROJECT/NAME/weights/last.pt")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="change hyp values for this run, e.g. --set lr0=0.02 mosaic=0")
    parser.add_argument("--exist-ok", action="store_true",
                        help="write into PROJECT/NAME even if it exists (default: the next free NAME2, NAME3, ...)")


def multi_scale_size(img_size: int, gs: int, seed: int, rank: int, ni: int) -> int:
    """``--multi-scale``'s image size at iteration ``ni``: a multiple of ``gs`` in 0.5-1.5x ``img_size``,
    drawn as officially (``randrange(0.5·img, 1.5·img + gs) // gs · gs``), by each process for itself,
    from the seed, the rank and the iteration (so a resume draws the same)."""
    rng = random.Random(f"multi-scale {seed} {rank} {ni}")
    return rng.randrange(int(img_size * 0.5), int(img_size * 1.5) + gs) // gs * gs


@torch.no_grad()
def round_to_fp16(model: nn.Module) -> None:
    """Every floating parameter and buffer rounded to FP16 precision, in place (the official
    ``model.half().float()`` before training, which "pre-reduces anchor precision")."""
    for t in itertools.chain(model.parameters(), model.buffers()):
        if t.is_floating_point():
            t.copy_(t.half())


def next_free(run: Path) -> Path:
    """``run`` if no such folder exists, else the first free ``run2``, ``run3``, ... (as officially)."""
    if not run.exists():
        return run
    return next(p for n in itertools.count(2) if not (p := run.with_name(f"{run.name}{n}")).exists())


def _overrides(items: Sequence[str]) -> dict[str, float]:
    """``--set KEY=VALUE ...`` as numbers."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        try:
            out[key] = float(value)
        except ValueError:
            raise UserError(f"--set {item!r}: write KEY=NUMBER, e.g. --set lr0=0.02") from None
        if not eq or not key:
            raise UserError(f"--set {item!r}: write KEY=NUMBER, e.g. --set lr0=0.02")
    return out


def config_from_args(args: argparse.Namespace) -> tuple[TrainConfig, str | None]:
    """The run a ``yolov7 train`` command line asks for, checked: a new run gets the next free name
    unless ``--exist-ok``; ``--resume PATH`` continues in PATH's run folder with the run's own settings,
    except those this command line gives (``--set`` values added to the run's)."""
    given: dict[str, Any] = {f.name: value for f in fields(TrainConfig)
                             if f.name != "overrides" and (value := getattr(args, f.name, None)) is not None}
    cfg = TrainConfig(**given, overrides=_overrides(args.set))
    resume = args.resume
    if resume == "last":
        resume = str(cfg.save_dir / "weights" / "last.pt")
    if resume:
        ckpt = load_checkpoint(resume)
        if "model_state" not in ckpt:
            raise UserError(f"--resume {resume}: this checkpoint holds weights only (a best.pt?); resume from "
                            "the run's weights/last.pt, or start a new run with --weights")
        saved = ckpt.get("train_config") or {}
        run = Path(resume).resolve().parent.parent  # PROJECT/NAME/weights/last.pt: the run's own folder
        data = saved.get("data", cfg.data)
        if "data_path" in ckpt and not Path(data).exists() and Path(ckpt["data_path"]).exists():  # other cwd
            data = ckpt["data_path"]
        overrides = {**saved.get("overrides", {}), **cfg.overrides}
        cfg = TrainConfig(**{**saved, "data": data, **given, "overrides": overrides, "project": str(run.parent),
                             "name": run.name})
    cfg.check()
    cfg = replace(cfg, img_size=stride_multiple(cfg.img_size, 64 if VARIANTS[cfg.model].p6 else 32, "training"))
    if not resume and not args.exist_ok:
        cfg = replace(cfg, name=next_free(cfg.save_dir).name)
    return cfg, resume


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="yolov7 train", description=__doc__, formatter_class=HelpFormatter)
    add_arguments(parser)
    cfg, resume = config_from_args(parser.parse_args(argv))
    print(f"run folder: {cfg.save_dir}")
    return train(cfg, hooks=tracking_hooks(cfg), resume=resume)


if __name__ == "__main__":
    raise SystemExit(run(main))
