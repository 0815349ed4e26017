"""MLflow tracking against a real ``mlflow server`` on 127.0.0.1, and tracking failures."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import tiny_config

from yolov7lib.tracking import Tracker, default_uri, flatten, tracking_hooks
from yolov7lib.train import train

mlflow = pytest.importorskip("mlflow")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "art"),
           "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("mlflow server did not start")
    yield uri
    proc.terminate()
    proc.wait(timeout=30)


def test_training_run_is_logged(server, tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    cfg = tiny_config(tiny_data, tmp_path, name="tracked", tracking=True, experiment="engine-test")
    train(cfg, hooks=tracking_hooks(cfg))
    client = mlflow.tracking.MlflowClient(server)
    exp = client.get_experiment_by_name("engine-test")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "tracked"
    assert run.data.params["train.img_size"] == "64" and run.data.params["hyp.lr0"] == "0.01"
    assert {"git_commit", "torch", "device", "gpu"} <= set(run.data.tags)
    history = client.get_metric_history(run.info.run_id, "val_AP50")
    assert [m.step for m in history] == [0, 1]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"results.csv", "results.png", "weights", "eval"} <= artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "eval")} >= {"eval/pr_curve.png"}


def test_tracking_failure_never_stops_training(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "bogus-scheme://nowhere")
    cfg = tiny_config(tiny_data, tmp_path, name="untracked", tracking=True, epochs=1)
    with pytest.warns(RuntimeWarning, match="MLflow tracking failed"):
        metrics = train(cfg, hooks=tracking_hooks(cfg))
    assert "val/AP" in metrics and (tmp_path / "untracked" / "weights" / "best.pt").exists()


def test_defaults_and_flatten(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert default_uri(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert flatten({"a": {"b": 1}, "c": [1, 2]}) == {"a.b": "1", "c": "[1, 2]"}


def test_local_sqlite_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = Tracker("local", "r")
    run.log_metrics({"val/AP": 0.5}, step=0)
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    run.log_artifact(tmp_path / "table.csv")
    run.end()
    assert run.run_id and (tmp_path / "mlflow.db").exists()
    assert list((tmp_path / "mlartifacts").rglob("table.csv"))


def test_an_unreachable_server_costs_seconds(tiny_data, tmp_path, monkeypatch):
    """A server that does not answer: one warning within seconds, the run goes on untracked."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_free_port()}")
    start = time.perf_counter()
    with pytest.warns(RuntimeWarning, match="no MLflow server answers"):
        run = Tracker("engine-test", "offline")
    assert not run.active and time.perf_counter() - start < 10
