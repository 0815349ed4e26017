"""``make lab``: JupyterLab serves the notebooks folder (started on localhost, listed through the
server's REST API, stopped)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("make") is None or not (ROOT / ".venv" / "bin" / "jupyter").exists(),
                    reason="make lab runs the project's .venv (created by make install / make test)")
def test_make_lab_serves_the_notebooks(tmp_path):
    port, token = free_port(), secrets.token_hex(8)
    args = f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token}"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path), "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    proc = subprocess.Popen(["make", "-s", "-C", str(ROOT), "lab", f"LAB_ARGS={args}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        listing = None
        deadline = time.monotonic() + 90
        while listing is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token={token}", timeout=5) as r:
                    listing = json.load(r)
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        assert listing is not None, proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no answer"
        served = sorted(item["name"] for item in listing["content"] if item["type"] == "notebook")
        assert served == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
