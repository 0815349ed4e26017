"""The paper pipeline: profiles, tables beside the paper, and every notebook under the smoke profile."""

from __future__ import annotations

import hashlib
import math
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import nbformat
import pytest

from yolov7lib import checkpoint, pipeline
from yolov7lib.console import UserError
from yolov7lib.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_profiles():
    params = pipeline.load_params(ROOT / "params.yaml")
    assert {"smoke", "cpu", "gpu", "paper"} <= set(params["profiles"])
    smoke = pipeline.profile("smoke", ROOT / "params.yaml")
    assert smoke["name"] == "smoke" and smoke["seeds"] == [0]
    assert pipeline.data_yaml(smoke) == "data/synthetic/data.yaml"
    assert pipeline.data_yaml(pipeline.profile("paper", ROOT / "params.yaml")) == "coco/coco.yaml"
    with pytest.raises(UserError, match="choose from"):
        pipeline.profile("nope", ROOT / "params.yaml")


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu", "paper"])
def test_every_profile_gives_valid_training_runs(name):
    """What `dvc exp run -S profile=NAME` trains: every `train` key is a TrainConfig field (none is
    dropped silently), the hyp preset and its overrides exist, and the models build."""
    from dataclasses import fields

    from yolov7lib import VARIANTS
    from yolov7lib.hyp import load_hyp
    from yolov7lib.train import TrainConfig

    prof = pipeline.profile(name, ROOT / "params.yaml")
    assert set(prof["train"]) <= {f.name for f in fields(TrainConfig)}
    cfg = pipeline.train_config(prof, pipeline.Arm("base", "yolor-w6"), 0, Path("runs"), pipeline.data_yaml(prof))
    load_hyp(cfg.hyp, cfg.overrides)
    for model in [*prof.get("speed", {}).get("models", []), prof["learn"]["model"], prof["reparam_model"]]:
        assert model in VARIANTS


def test_paper_tables_ship_with_the_package():
    rows = pipeline.paper_table(6)
    assert rows[3]["model"] == "coarse-to-fine lead guided" and rows[3]["ap_val"] == "55.9"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_sources_have_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs: clear them"


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory):
    """A scratch copy of the project's pipeline inputs with the smoke dataset generated."""
    root = tmp_path_factory.mktemp("repo")
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    prof = pipeline.profile("smoke", root / "params.yaml")
    from yolov7lib.data.synthetic import generate

    d = prof["data"]
    generate(root / "data" / "synthetic", train=d["train"], val=d["val"], size=d["size"], seed=d["seed"], workers=1)
    return root


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_under_the_smoke_profile(path, smoke_root, monkeypatch):
    papermill = pytest.importorskip("papermill")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{smoke_root / 'mlflow.db'}")
    out = smoke_root / "executed" / path.name
    out.parent.mkdir(exist_ok=True)
    papermill.execute_notebook(str(path), str(out), parameters={"profile": "smoke"}, kernel_name="python3",
                               cwd=str(smoke_root), progress_bar=False)
    produced = list((smoke_root / "results" / path.stem).iterdir())
    assert produced, f"{path.name} wrote nothing to results/{path.stem}"


def test_finished_runs_saved_before_a_new_setting_are_reused(tmp_path, monkeypatch):
    """A run saved before a TrainConfig field existed used that field's default: it still counts as
    finished for a config at the default, and not for one that changes it."""
    cfg = TrainConfig(epochs=3, project=str(tmp_path), name="run")
    old = {k: v for k, v in asdict(cfg).items() if k != "cache_images"}
    monkeypatch.setattr(checkpoint, "load_checkpoint",
                        lambda path: {"epoch": 2, "train_config": old, "metrics": {"val/AP": 0.5}})
    assert pipeline.finished_metrics(cfg) == {"val/AP": 0.5}
    assert pipeline.finished_metrics(replace(cfg, cache_images=True)) is None
    assert pipeline.finished_metrics(replace(cfg, epochs=4)) is None


def _tree_digest(folder: Path) -> str:
    """What DVC hashes of a folder output: every file's path relative to it and its bytes."""
    digest = hashlib.md5()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def test_the_data_stage_output_does_not_depend_on_where_the_repository_lies(tmp_path, monkeypatch):
    """The dataset and its label caches are the same bytes under two different paths, so a fresh clone
    elsewhere does not rewrite dvc.lock."""
    monkeypatch.chdir(ROOT)
    outs = [tmp_path / "a" / "synthetic", tmp_path / "b" / "deeper" / "synthetic"]
    for out in outs:
        assert pipeline.main(["data", "--profile", "smoke", "--out", str(out)]) == 0
    assert (outs[0] / "labels" / "train.cache.json").exists()
    assert _tree_digest(outs[0]) == _tree_digest(outs[1])


def test_table10_takes_fp16_cells_measured_on_the_same_weights(tiny_data, tmp_path):
    """On the CPU, Table 10's FP16 cells come from make gpu-check's CSV when its weights are these."""
    from yolov7lib import build_model
    from yolov7lib.checkpoint import fingerprint
    from yolov7lib.data.check import load_split
    from yolov7lib.data.dataset import DetectionDataset
    from yolov7lib.data.formats import DataConfig

    data = DataConfig.load(tiny_data)
    val = DetectionDataset(load_split(data.val, data.nc, warn=False).images, 64, rect=True, batch_size=4, stride=32)
    model = build_model("yolov7-tiny", "training", nc=data.nc, width=0.25)
    gpu_csv = tmp_path / "table10.csv"
    gpu_csv.write_text("precision,iou,AP,status,weights\n"
                       f"FP16,0.65,12.5,\"reduced-scale, NVIDIA H200\",{fingerprint(model)}\n"
                       "FP16,0.7,99.0,\"reduced-scale, NVIDIA H200\",0000000000000000\n")
    rows = {(r["precision"], r["iou"]): r for r in pipeline.table10_rows(model, val, data.names, gpu_csv)}
    assert rows[("FP16", 0.65)]["AP"] == 12.5 and rows[("FP16", 0.65)]["status"] == "reduced-scale, NVIDIA H200"
    assert math.isnan(rows[("FP16", 0.70)]["AP"]) and rows[("FP16", 0.70)]["status"] == "needs GPU"  # other weights
    assert rows[("FP32", 0.65)]["status"] == "reduced-scale, CPU" and not math.isnan(rows[("FP32", 0.65)]["AP"])


def test_arms_in_a_pool_of_processes_train_as_in_one_process(tiny_data, tmp_path):
    """Arms and seeds are independent jobs: two arms trained side by side in two processes end with the
    metrics and weights of the same arms trained one at a time here, as the last run left would be:
    every run gets cores / jobs threads, however many are left."""
    import torch

    prof = {"name": "test", "seeds": [0], "train": {"img_size": 64, "batch_size": 4, "epochs": 1, "workers": 0,
                                                    "hyp": "tiny", "warmup_min_iters": 2, "width": 0.25}}
    arms = [pipeline.Arm("a", "yolov7-tiny"), pipeline.Arm("b", "yolov7-tiny", {"width": 0.125})]
    threads = torch.get_num_threads()
    here = [row for arm in arms
            for row in pipeline.TableRun(99, prof, tmp_path / "one", str(tiny_data), tracking=False, jobs=2).run([arm])]
    assert torch.get_num_threads() == threads  # this process's setting is left as it was
    pool = pipeline.TableRun(99, prof, tmp_path / "two", str(tiny_data), tracking=False, jobs=2)
    assert pool.run(arms) == here
    for _, _, cfg in pool.configs(arms):
        one = checkpoint.load_checkpoint(tmp_path / "one" / "runs" / cfg.name / "weights" / "last.pt")
        two = checkpoint.load_checkpoint(cfg.save_dir / "weights" / "last.pt")
        assert all(torch.equal(one["model_state"][k], v) for k, v in two["model_state"].items())


def test_an_interrupted_run_resumes_from_its_last_epoch(tiny_data, tmp_path, monkeypatch):
    """A run stopped after its first epoch (the stage killed there) goes on from its ``last.pt`` at the
    next :meth:`TableRun.run` and ends with the metrics and weights of a run never stopped."""
    import torch

    from yolov7lib.hooks import Hook
    from yolov7lib.runtime import available_cores

    class Stop(Hook):
        def on_epoch_end(self, trainer, metrics):
            raise KeyboardInterrupt

    prof = {"name": "test", "seeds": [0], "train": {"img_size": 64, "batch_size": 4, "epochs": 2, "workers": 0,
                                                    "hyp": "tiny", "warmup_min_iters": 2, "width": 0.25}}
    arm = pipeline.Arm("a", "yolov7-tiny")
    whole = pipeline.TableRun(99, prof, tmp_path / "whole", str(tiny_data), tracking=False, jobs=1)
    cut = pipeline.TableRun(99, prof, tmp_path / "cut", str(tiny_data), tracking=False, jobs=1)
    (_, _, cfg), = cut.configs([arm])
    with pytest.raises(KeyboardInterrupt):
        pipeline.train_job(cfg, available_cores(), [Stop()])
    assert pipeline.finished_metrics(cfg) is None and pipeline.interrupted(cfg) == cfg.save_dir / "weights" / "last.pt"
    assert pipeline.interrupted(replace(cfg, epochs=3)) is None  # another schedule starts over
    assert pipeline.interrupted(cfg, available_cores() + 1) is None  # so do other thread counts
    monkeypatch.setattr(pipeline, "cpu_kind", lambda: "another CPU (AVX2)")
    assert pipeline.interrupted(cfg) is None  # and another kind of CPU
    monkeypatch.undo()
    resumed, train_job = [], pipeline.train_job
    monkeypatch.setattr(pipeline, "train_job", lambda *a: resumed.append(a[3]) or train_job(*a))
    assert cut.run([arm]) == whole.run([arm]) and resumed == [cfg.save_dir / "weights" / "last.pt", None]
    one = checkpoint.load_checkpoint(tmp_path / "whole" / "runs" / cfg.name / "weights" / "last.pt")
    two = checkpoint.load_checkpoint(cfg.save_dir / "weights" / "last.pt")
    assert all(torch.equal(one["model_state"][k], v) for k, v in two["model_state"].items())
    assert (cfg.save_dir / "results.csv").read_text().count("\n") == 3  # the header and both epochs


def test_a_run_that_two_tables_share_trains_once(tiny_data, tmp_path, monkeypatch):
    """Table 7's base is Table 6's: the second table links the first one's finished run (same settings
    but the folder) instead of training it again; other settings are not shared."""
    prof = {"name": "test", "seeds": [0], "train": {"img_size": 64, "batch_size": 4, "epochs": 1, "workers": 0,
                                                    "hyp": "tiny", "warmup_min_iters": 2, "width": 0.25}}
    arm = pipeline.Arm("base", "yolov7-tiny")
    first = pipeline.TableRun(6, prof, tmp_path / "table6", str(tiny_data), tracking=False, jobs=1).run([arm])
    monkeypatch.setattr(pipeline, "train_job", lambda *a, **k: pytest.fail("trained again"))
    second = pipeline.TableRun(7, prof, tmp_path / "table7", str(tiny_data), tracking=False, jobs=1)
    assert second.run([arm]) == first
    (_, _, cfg), = second.configs([arm])
    assert cfg.save_dir.is_symlink() and pipeline.finished_metrics(cfg) is not None
    other = pipeline.TableRun(8, prof, tmp_path / "table8", str(tiny_data), tracking=False, jobs=1)
    (_, _, wider), = other.configs([pipeline.Arm("base", "yolov7-tiny", {"width": 0.5})])
    assert pipeline.share_finished(wider, tmp_path) is None and not wider.save_dir.exists()


def test_a_table_names_the_kinds_of_cpu_its_runs_trained_on(tiny_data, tmp_path, capsys):
    """Training is bit-exact on one kind of CPU only: a table's header names the kind of its runs, and
    a table whose finished runs come from several kinds (copied from another machine) says so."""
    import torch

    from yolov7lib.runtime import cpu_kind

    prof = {"name": "test", "seeds": [0], "train": {"img_size": 64, "batch_size": 4, "epochs": 1, "workers": 0,
                                                    "hyp": "tiny", "warmup_min_iters": 2, "width": 0.125}}
    arms = [pipeline.Arm("a", "yolov7-tiny"), pipeline.Arm("b", "yolov7-tiny", {"depth": 0.5})]
    table = pipeline.TableRun(99, prof, tmp_path, str(tiny_data), tracking=False, jobs=1)
    table.run(arms)
    assert table.cpus == {cpu_kind(): 2} and pipeline.trained_on(table.cpus) == cpu_kind()
    assert "kinds of CPU" not in capsys.readouterr().out
    (_, _, cfg), _ = table.configs(arms)
    last = cfg.save_dir / "weights" / "last.pt"
    torch.save({**checkpoint.load_checkpoint(last), "cpu": "another CPU (AVX2)"}, last)  # trained elsewhere
    table.run(arms)
    assert table.cpus == {cpu_kind(): 1, "another CPU (AVX2)": 1}
    assert "Table 99: its runs trained on 2 kinds of CPU" in capsys.readouterr().out
    assert pipeline.trained_on(table.cpus).count(" (1 run)") == 2


def test_a_tables_changes_keep_the_profiles_other_settings():
    prof = {"name": "p", "train": {"epochs": 4, "width": 0.5, "overrides": {"lr0": 0.002, "mosaic": 0.0}},
            "tables": {3: {"epochs": 8, "overrides": {"lr0": 0.004}}}}
    assert pipeline.table_profile(prof, 3)["train"] == {"epochs": 8, "width": 0.5,
                                                        "overrides": {"lr0": 0.004, "mosaic": 0.0}}
    assert pipeline.table_profile(prof, 4) is prof


def test_one_command_per_arm_and_seed_for_a_scheduler(capsys):
    prof = pipeline.profile("cpu", ROOT / "params.yaml")
    commands = pipeline.job_commands(prof, 6)
    assert len(commands) == 4 * 3 and len(set(commands)) == 12
    assert commands[6] == "python -m yolov7lib.pipeline train 6 --arm 'lead guided' --seed 0 --profile cpu"
    assert pipeline.main(["jobs", "8", "--profile", "smoke"]) == 0
    assert capsys.readouterr().out.splitlines() == pipeline.job_commands(pipeline.profile("smoke"), 8)
    paper = pipeline.job_commands(pipeline.profile("paper", ROOT / "params.yaml"), 3)
    assert paper[0] == "torchrun --nproc_per_node 8 -m yolov7lib.pipeline train 3 --arm base --seed 0 --profile paper"
    with pytest.raises(SystemExit):
        pipeline.main(["train", "6", "--arm", "nope", "--profile", "smoke"])
    assert "table 6 has no arm 'nope'; its arms: 'base', 'independent'" in capsys.readouterr().err


def _block_depths(variant) -> list[int]:
    """The depth of every computational block: ELAN (or E-ELAN) convs, CSP repeats."""
    blocks = [s.block for s in variant.stages] + [lv.block for lv in variant.top_down + variant.bottom_up]
    return [getattr(getattr(b, "elan", b), "depth", getattr(b, "n", 0)) for b in blocks]


@pytest.mark.parametrize("number", sorted(pipeline.ABLATIONS))
def test_the_cpu_profile_keeps_each_tables_structural_point(number):
    """At the cpu profile's reduction each arm differs from its base as at full scale: the same arms are
    distinct networks, RepConv placements all exist, and block depths keep their ratios to the base."""
    import torch

    from yolov7lib.models import VARIANTS, build_model
    from yolov7lib.models.scaling import multiply

    train = pipeline.table_profile(pipeline.profile("cpu", ROOT / "params.yaml"), number)["train"]
    arms = pipeline.ABLATIONS[number]
    full = [VARIANTS[a.model] for a in arms]
    reduced = [multiply(v, train["width"], train["depth"]) for v in full]

    def layers(name: str, width: float = 1.0, depth: float = 1.0) -> list[str]:
        """The built network's layer types in order (the structure, whatever the widths)."""
        with torch.device("meta"):
            model = build_model(name, "training", 3, width, depth)
        return [type(m).__name__ for m in model.modules()]

    full_layers = [layers(a.model) for a in arms]
    reduced_layers = [layers(a.model, train["width"], train["depth"]) for a in arms]
    same = [[a == b for b in full_layers] for a in full_layers]
    assert [[a == b for b in reduced_layers] for a in reduced_layers] == same
    for f, r in zip(full_layers, reduced_layers):  # RepConv placements survive the reduction
        assert f.count("RepConv") == 0 or r.count("RepConv") > 0
    base_full, base_reduced = _block_depths(full[0]), _block_depths(reduced[0])
    for f, r in zip(full, reduced):
        if len(_block_depths(f)) == len(base_full):
            assert [a / b for a, b in zip(_block_depths(f), base_full)] == \
                [a / b for a, b in zip(_block_depths(r), base_reduced)], f.name


def test_each_finished_run_says_how_long_the_table_has_left(capsys, monkeypatch):
    cfg = TrainConfig(name="(a)/seed1")
    monkeypatch.setattr(pipeline.time, "perf_counter", lambda: 1000.0)
    pipeline._report(2, 6, cfg, {"val/AP50": 0.612, "val/AP": 0.3}, started=880.0)
    pipeline._report(6, 6, cfg, {"val/AP50": 0.612, "val/AP": 0.3}, started=880.0)
    assert capsys.readouterr().out.splitlines() == [
        "[2/6] (a)/seed1: AP50 61.2 %, AP 30.0 % (2 min 00 s so far, about 4 min 00 s to go)",
        "[6/6] (a)/seed1: AP50 61.2 %, AP 30.0 % (2 min 00 s so far)"]
