"""The CUDA path: loss and assignment, mixed-precision training, resume, FP16 evaluation, the fast
inference paths, DDP with NCCL. ``pytest -m cuda``; ``make gpu-check`` runs them on a GPU.

``YOLOV7LIB_REFERENCE`` may name a trained checkpoint and ``YOLOV7LIB_REFERENCE_DATA`` its data
YAML (``make gpu-check`` passes Table 10's reference model); otherwise the FP16 evaluation test
trains a small model on a generated dataset first.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

if not torch.cuda.is_available():
    pytest.skip("CUDA is not available: the GPU path is checked by `make gpu-check` on a GPU machine",
                allow_module_level=True)

from conftest import tiny_config
from test_loss_golden import CASES, golden_predictions, load_case, positives

from yolov7lib.bench import CUDAGraphed, deploy_model, prepare, relative_error
from yolov7lib.checkpoint import load_checkpoint, load_model
from yolov7lib.loss import compute_loss
from yolov7lib.train import Trainer

pytestmark = pytest.mark.cuda
CUDA = torch.device("cuda")
FP16_LOSS_RTOL = 1e-2  # the loss of FP16-rounded predictions against FP32, relative
FP16_OUTPUT_RTOL = 1e-2  # inference outputs of one path against another, relative to 1 + |output|


# -- loss and assignment -----------------------------------------------------------------------
def _loss(case: dict, device: torch.device, half: bool = False):
    preds = [p.detach().to(device) for p in golden_predictions(case)]
    if half:
        preds = [p.half().float() for p in preds]  # what an FP16 forward pass hands the loss
    targets = torch.tensor(case["targets_normalised"], dtype=torch.float32, device=device)
    anchors = [torch.tensor(a, device=device) for a in case["anchors_grid_units"]]
    with torch.autocast("cuda", dtype=torch.float16, enabled=half):
        out = compute_loss([p.requires_grad_() for p in preds], targets, anchors, case["strides"], case["nc"],
                           case["hyp"], (case["height"], case["width"]))
    return out, targets


@pytest.mark.parametrize("name", CASES)
def test_loss_and_assignment_on_cuda_equal_the_cpu(name):
    case = load_case(name)
    cpu, cpu_targets = _loss(case, torch.device("cpu"))
    gpu, gpu_targets = _loss(case, CUDA)
    assert positives(gpu.lead, gpu_targets.cpu()) == positives(cpu.lead, cpu_targets)
    if cpu.aux is not None:
        assert positives(gpu.aux, gpu_targets.cpu()) == positives(cpu.aux, cpu_targets)
    for term in ("loss", "lbox", "lobj", "lcls"):
        assert getattr(gpu, term).item() == pytest.approx(getattr(cpu, term).item(), rel=1e-5, abs=1e-9), term
    half, _ = _loss(case, CUDA, half=True)
    assert half.loss.item() == pytest.approx(cpu.loss.item(), rel=FP16_LOSS_RTOL)
    half.loss.backward()


# -- training ----------------------------------------------------------------------------------
def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _moved(before, model) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_mixed_precision_steps_are_finite_and_move_the_weights(amp, tiny_data, tmp_path):
    trainer = Trainer(tiny_config(tiny_data, tmp_path, device="cuda", amp=amp, epochs=1, nominal_batch=4))
    dtypes = set()
    handle = trainer.model.head.register_forward_hook(lambda m, i, o: dtypes.add(i[0][0].dtype))
    before = _weights(trainer.model)
    metrics = trainer.train_epoch(0)
    handle.remove()
    assert dtypes == {torch.float16 if amp == "fp16" else torch.bfloat16}
    assert trainer.scaler.is_enabled() == (amp == "fp16")
    assert torch.isfinite(torch.tensor(metrics["train/loss"])) and _moved(before, trainer.model)
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_grad_scaler_skips_a_step_with_infinite_gradients(tiny_data, tmp_path):
    """An overflowing FP16 gradient: the optimizer step is skipped (weights unchanged), the scale
    halves; the next batch steps again."""
    trainer = Trainer(tiny_config(tiny_data, tmp_path, device="cuda", amp="fp16", epochs=1, nominal_batch=4,
                                  limit_batches=1))
    param = next(trainer.model.parameters())
    handle = param.register_hook(lambda g: torch.full_like(g, float("inf")))
    before, scale = _weights(trainer.model), trainer.scaler.get_scale()
    trainer.train_epoch(0)
    handle.remove()
    assert not _moved(before, trainer.model)
    assert trainer.scaler.get_scale() == scale / 2
    trainer.train_epoch(1)
    assert _moved(before, trainer.model)


def test_resume_on_cuda_is_bit_exact(tiny_data, tmp_path):
    """Two epochs, then a new trainer resuming from last.pt for two more, end with the weights of
    four uninterrupted epochs (deterministic kernels), as on the CPU."""
    settings = dict(device="cuda", epochs=4, deterministic=True, val_interval=100)
    try:
        Trainer(tiny_config(tiny_data, tmp_path, "whole", **settings)).fit()
        Trainer(tiny_config(tiny_data, tmp_path, "cut", **{**settings, "epochs": 2})).fit()
        cut = tmp_path / "cut" / "weights" / "last.pt"
        resumed = Trainer(tiny_config(tiny_data, tmp_path, "cut", **settings))
        resumed.resume(cut)
        resumed.fit()
    finally:  # deterministic kernels are a process-wide setting
        torch.use_deterministic_algorithms(False)
    a = load_checkpoint(tmp_path / "whole" / "weights" / "last.pt")
    b = load_checkpoint(cut)
    assert a["epoch"] == b["epoch"] == 3
    for key in ("model_state", "state_dict"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}/{name} differs"


# -- evaluation --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(checkpoint, data YAML) of a trained model: Table 10's when given, else a small one."""
    if os.environ.get("YOLOV7LIB_REFERENCE"):
        return os.environ["YOLOV7LIB_REFERENCE"], os.environ["YOLOV7LIB_REFERENCE_DATA"]
    from yolov7lib.data.synthetic import generate
    from yolov7lib.train import TrainConfig, train

    root = tmp_path_factory.mktemp("reference")
    data = generate(root / "data", train=256, val=64, size=256, seed=0, workers=4)
    cfg = TrainConfig(model="yolov7-tiny", width=0.5, data=str(data), hyp="tiny", img_size=256, batch_size=32,
                      epochs=15, workers=4, device="cuda", warmup_min_iters=0, nominal_batch=32,
                      val_interval=100, tracking=False, progress=False, project=str(root), name="run",
                      overrides={"lr0": 0.04, "mixup": 0.0})
    train(cfg)
    return str(cfg.save_dir / "weights" / "last.pt"), str(data)


def test_fp16_and_fp32_evaluation_agree(reference):
    from yolov7lib.data.dataset import validation_dataset
    from yolov7lib.data.formats import DataConfig
    from yolov7lib.evaluate import evaluate

    weights, data_yaml = reference
    model = load_model(weights).to(CUDA)
    img_size = load_checkpoint(weights)["train_config"]["img_size"]
    data = DataConfig.load(data_yaml)
    val = validation_dataset(data, img_size, int(max(model.head.strides)))
    ap = {half: 100 * evaluate(model, val, data.names, half=half, progress=False).metrics["AP"]
          for half in (True, False)}
    assert ap[False] > 1.0, f"the reference model has not learnt (AP {ap[False]:.2f} %)"
    assert abs(ap[True] - ap[False]) <= 0.2, ap


# -- inference paths ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def deploy():
    return deploy_model("yolov7-tiny-silu", CUDA, half=True)


@pytest.mark.parametrize("batch", [1, 32])
@pytest.mark.parametrize("path", ["channels_last", "compile", "cuda_graph", "channels_last+cuda_graph"])
def test_fast_paths_agree_with_eager(deploy, path, batch):
    x = torch.rand(batch, 3, 256, 320, device=CUDA, dtype=torch.float16)
    with torch.no_grad():
        reference = deploy(x)[0]
        out = prepare(deploy, path, x)(x)
    assert out.shape == reference.shape
    assert relative_error(out, reference) <= FP16_OUTPUT_RTOL


def test_cuda_graph_follows_a_batch_size_change(deploy):
    runner = CUDAGraphed(deploy)
    with torch.no_grad():
        outs = {}
        for batch in (1, 32, 1):
            x = torch.rand(batch, 3, 256, 320, device=CUDA, dtype=torch.float16, generator=torch.Generator(
                CUDA).manual_seed(batch))
            outs[batch] = runner(x)[0].clone()
            assert relative_error(outs[batch], deploy(x)[0]) <= FP16_OUTPUT_RTOL
    assert len(runner.graphs) == 2


# -- distributed -------------------------------------------------------------------------------
def test_ddp_with_nccl_and_sync_bn_runs_a_step(tiny_data, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port", "29531",
           "-m", "yolov7lib.train", "--cfg", "yolov7-tiny", "--hyp", "tiny", "--img", "64", "--batch", "4",
           "--workers", "0", "--warmup-min-iters", "2", "--no-tracking", "--no-progress", "--device", "cuda",
           "--data", str(tiny_data), "--project", str(tmp_path), "--name", "ddp", "--epochs", "1",
           "--limit-batches", "2", "--sync-bn"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)  # a hang must not eat the GPU run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "backend nccl" in proc.stdout and "SyncBatchNorm:" in proc.stdout, proc.stdout[-2000:]
    assert load_checkpoint(tmp_path / "ddp" / "weights" / "last.pt")["epoch"] == 0


# -- the benchmark peer ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["yolov7", "yolov7-e6e"])  # ComputeLossOTA, ComputeLossAuxOTA
def test_the_official_loss_runs_on_cuda(name):
    """The training-step section's official loss (the peer, upstream's CUDA fix applied) on CUDA: the
    CPU's loss within float tolerance."""
    pytest.importorskip("yolov7_package")
    from test_peer import HYP, loss_case

    from yolov7lib.peer import official_loss

    losses = {}
    for device in ("cpu", CUDA):
        model, preds, targets, images = loss_case(name, device)
        losses[device] = official_loss(model, HYP)(preds, targets, images)[0].item()
    assert losses[CUDA] == pytest.approx(losses["cpu"], rel=1e-4)
