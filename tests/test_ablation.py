"""Ablation tables: paired statistics, verdicts, files; arms under one seed see the same batches."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
from scipy import stats

from yolov7lib import ablation, pipeline
from yolov7lib.train import Trainer

PAPER = [{"model": "base", "ap_val": "50.0", "ap50_val": "70.0", "ap75_val": "55.0"},
         {"model": "better", "ap_val": "51.0", "ap50_val": "71.0", "ap75_val": "56.0"},
         {"model": "worse", "ap_val": "49.0", "ap50_val": "69.0", "ap75_val": "54.0"},
         {"model": "same", "ap_val": "50.0", "ap50_val": "70.0", "ap75_val": "55.0"}]
BASE = [0.30, 0.31, 0.29]


def runs(**offsets: list[float]) -> list[dict]:
    rows = [{"label": "base", "seed": s, "AP": ap, "AP50": ap + 0.2, "AP75": ap - 0.1} for s, ap in enumerate(BASE)]
    for label, deltas in offsets.items():
        rows += [{"label": label, "seed": s, "AP": ap + d, "AP50": ap + 0.2 + d, "AP75": ap - 0.1}
                 for s, (ap, d) in enumerate(zip(BASE, deltas))]
    return rows


def test_means_intervals_paired_differences_and_verdicts():
    # "better" gains 2-4 points on every seed; "worse" differs by a point either way
    summary = ablation.summarize(runs(better=[0.02, 0.03, 0.04], worse=[0.01, -0.01, 0.005]), PAPER, {})
    base, better, worse = summary.to_dict("records")
    assert base["seeds"] == 3 and base["AP"] == pytest.approx(30.0)
    half = stats.t.ppf(0.975, 2) * pd.Series([30.0, 31.0, 29.0]).std() / math.sqrt(3)
    assert base["AP_ci95"] == pytest.approx(half)
    assert better["AP_diff"] == pytest.approx(3.0) and better["AP_diff_ci95"] == pytest.approx(
        stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3))
    assert better["AP_p"] == pytest.approx(stats.ttest_rel([32.0, 34.0, 33.0], [30.0, 31.0, 29.0]).pvalue)
    assert better["AP_paper_diff"] == pytest.approx(1.0) and worse["AP_paper_diff"] == pytest.approx(-1.0)
    assert [r["verdict"] for r in (base, better, worse)] == ["base", "paper's direction, significant",
                                                             "opposite, not significant"]


def test_verdicts_without_spread_or_paper_difference():
    summary = ablation.summarize(runs(worse=[0.02, 0.02, 0.02], same=[0.0, 0.0, 0.0]), PAPER, {})
    worse, same = summary.to_dict("records")[1:]
    assert worse["AP_p"] == 0.0 and worse["verdict"] == "opposite, significant"
    assert same["AP_p"] == 1.0 and same["verdict"] == "n/a"  # the paper shows no difference
    assert ablation.verdict_counts(summary) == {"opposite, significant": 1, "n/a": 1}


def test_edge_cases_say_what_they_are():
    """An arm equal to the base on every seed: no difference; one pair: untested; seeds the base lacks
    leave fewer pairs than seeds, and the markdown says over how many pairs."""
    summary = ablation.summarize(runs(better=[0.0, 0.0, 0.0]), PAPER, {})
    assert summary.loc[1, "verdict"] == "no difference"
    one = [r for r in runs(better=[0.02, 0.03, 0.04]) if r["label"] == "better" or r["seed"] == 0]
    summary = ablation.summarize(one, PAPER, {})
    assert summary.loc[1, "AP_pairs"] == 1 and summary.loc[1, "seeds"] == 3
    assert summary.loc[1, "verdict"] == "paper's direction, untested"
    assert "over 1 pair(s)" in ablation.markdown(summary, "T")


def test_paper_values_keep_their_hundredths():
    paper = [{"model": "base", "ap_val": "52.26"}, {"model": "better", "ap_val": "52.30"}]
    summary = ablation.summarize(runs(better=[0.02, 0.03, 0.04]), paper, {}, metrics=("AP",))
    md = ablation.markdown(summary, "T", metrics=("AP",))
    assert "/ 52.26 |" in md and "/ 52.3 |" in md and "/ +0.04 |" in md


def test_undefined_metrics_are_left_out(tmp_path):
    """pycocotools gives -1 for an area range without objects: no number from it."""
    paper = [{"model": "base", "ap_val": "50.0", "apl_val": "65.0"}, {"model": "other", "ap_val": "51.0",
                                                                      "apl_val": "66.0"}]
    rows = [{"label": label, "seed": 0, "AP": ap, "APl": -1.0} for label, ap in (("base", 0.3), ("other", 0.2))]
    summary = ablation.summarize(rows, paper, {}, metrics=("AP", "APl"))
    assert math.isnan(summary.loc[1, "APl"]) and math.isnan(summary.loc[1, "AP_p"])  # one seed: no test
    ablation.write_table(summary, tmp_path / "t", "T", metrics=("AP", "APl"))
    assert "| – / 66.0 |" in (tmp_path / "t.md").read_text()


def test_table_files(tmp_path):
    summary = ablation.summarize(runs(better=[0.02, 0.03, 0.04]), PAPER, {})
    paths = ablation.write_table(summary, tmp_path / "tableX", "Table X", setup="Run (test): tiny.")
    assert [p.name for p in paths] == ["tableX.csv", "tableX.md", "tableX.png", "metrics.json"]
    assert all(p.stat().st_size > 0 for p in paths)
    md = (tmp_path / "tableX.md").read_text()
    assert "Run (test): tiny." in md and "paired t-test" in md
    assert "| better | 3 | 33.0 ± 2.5 / 51.0 |" in md and "+3.00 (± 2.48) / +1.0" in md
    table = pd.read_csv(tmp_path / "tableX.csv")
    assert {"seeds", "AP", "AP_ci95", "AP50", "AP50_ci95", "AP_diff", "AP_diff_ci95", "AP_p",
            "verdict"} <= set(table.columns)
    assert json.loads((tmp_path / "metrics.json").read_text())["better"]["AP"] == pytest.approx(33.0)
    assert table["AP_by_seed"].tolist() == ["30 31 29", "32 34 33"]  # each seed's AP and paired difference
    assert table["AP_diff_by_seed"].tolist() == ["0 0 0", "2 3 4"]


def test_the_figure_shows_each_seed_beside_the_interval():
    summary = ablation.summarize(runs(better=[0.02, 0.03, 0.04]), PAPER, {})
    ap, diff = (ax for ax in ablation.figure(summary, "T").axes if ax.get_ylabel())
    seeds = {ax.get_ylabel(): next(line for line in ax.lines if line.get_label() == "ours, each seed").get_xydata()
             for ax in (ap, diff)}
    assert seeds["AP (%)"].ravel().tolist() == pytest.approx([-0.25, 30, -0.25, 31, -0.25, 29,
                                                              0.75, 32, 0.75, 34, 0.75, 33])
    assert seeds["AP Δ to the base"][3:, 1].tolist() == pytest.approx([2, 3, 4])


def test_two_arms_under_one_seed_see_the_same_batches(tiny_data, tmp_path):
    """Paired seeds: the arms of a table differ in the model only; the data order and augmentation of
    seed s are the same for every arm."""
    prof = {"name": "test", "train": {"img_size": 64, "batch_size": 4, "workers": 0, "hyp": "tiny",
                                      "tracking": False, "progress": False}}
    batches = []
    for arm in (pipeline.Arm("a", "yolov7-tiny", {"width": 0.25}), pipeline.Arm("b", "yolov7", {"width": 0.125})):
        cfg = pipeline.train_config(prof, arm, 3, tmp_path, str(tiny_data))
        trainer = Trainer(cfg)
        seen = []
        for epoch in (0, 1):
            trainer.sampler.set_epoch(epoch)
            trainer.train_set.set_epoch(epoch)
            seen += [(images.clone(), targets.clone()) for images, targets, _, _ in trainer.loader]
        batches.append(seen)
    assert len(batches[0]) == len(batches[1]) > 2
    for (ia, ta), (ib, tb) in zip(*batches):
        assert torch.equal(ia, ib) and torch.equal(ta, tb)


def test_describe_names_what_was_run():
    text = pipeline.describe(pipeline.profile("cpu"))
    assert "cpu profile" in text and "width × 0.125" in text and "3 paired seeds" in text
    assert "3072 synthetic images (3 classes, 128 px)" in text and "Adam" in text and "lr0 0.002" in text


def test_table_run_logs_the_table_and_final_metrics_to_mlflow(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    prof = {"name": "test", "train": {"img_size": 64, "epochs": 1}, "seeds": [0]}
    summary = ablation.summarize(runs(better=[0.02, 0.03, 0.04]), PAPER, {})
    with pipeline.TableRun(99, prof, tmp_path / "runs", data="data.yaml") as table:
        arm = pipeline.Arm("better", "yolov7-tiny")
        cfg = pipeline.train_config(prof, arm, 0, tmp_path, "data.yaml")
        table._log_final(cfg, arm, 0, {"val/AP": 0.33}, reused=True)  # no results.csv: the final metrics
        trained = pipeline.train_config(prof, arm, 1, tmp_path, "data.yaml")  # with one: every epoch's
        trained.save_dir.mkdir(parents=True)
        for epoch in range(3):
            Trainer._write_results(trained, epoch, {"train/loss": 1.0 / (epoch + 1), "val/AP": 0.1 * epoch})
        table._log_final(trained, arm, 1, {"val/AP": 0.2}, reused=False)
        table.write(summary, tmp_path / "out" / "tableX", "Table X")
        parent = table.parent.run_id
    client = mlflow.MlflowClient()
    assert {a.path for a in client.list_artifacts(parent, "table")} == {
        "table/tableX.csv", "table/tableX.md", "table/tableX.png", "table/metrics.json"}
    assert client.get_run(parent).data.metrics["verdicts_paper_direction_significant"] == 1
    nested = client.search_runs([client.get_run(parent).info.experiment_id],
                                f"tags.mlflow.parentRunId = '{parent}'")
    assert sorted(r.data.metrics["val_AP"] for r in nested) == [0.2, 0.33]
    curve = next(r for r in nested if r.data.metrics["val_AP"] == 0.2)
    history = client.get_metric_history(curve.info.run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3, rel=1e-5))]
