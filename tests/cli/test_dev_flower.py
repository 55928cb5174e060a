"""`billhook dev flower`: Flower behind basic auth when FLOWER_BASIC_AUTH is set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from cli.embedded_redis import free_port
from shared.config import PROJECT_ROOT


def start_flower(tmp_path, port: int, basic_auth: str | None, **extra_env: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "BILLHOOK_", "DATABASE_URL"))}
    env.update(BILLHOOK_VAR_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path / 'b.db'}")
    env["REDIS_URL"] = "redis://127.0.0.1:1/0"  # Flower serves its pages without a broker
    if basic_auth:
        env["FLOWER_BASIC_AUTH"] = basic_auth
    env.update(extra_env)
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "billhook"), "dev", "flower", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_answering(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "flower exited"
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError("flower did not answer")


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_flower_asks_for_the_configured_basic_auth(tmp_path):
    port = free_port()
    process = start_flower(tmp_path, port, "ops:flower-pass")
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_answering(url, process)
        assert requests.get(url, timeout=5).status_code == 401
        assert requests.get(url, auth=("ops", "wrong"), timeout=5).status_code == 401
        assert requests.get(url, auth=("ops", "flower-pass"), timeout=5).status_code == 200
        assert "flower-pass" not in Path(f"/proc/{process.pid}/cmdline").read_text()
    finally:
        stop(process)


def test_flower_runs_without_billhooks_metrics_directory_and_serves_its_own(tmp_path):
    """`make run` gives every process PROMETHEUS_MULTIPROC_DIR; Flower must not write its series
    into the files web's /metrics adds up."""
    port = free_port()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    process = start_flower(tmp_path, port, None, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    try:
        wait_answering(f"http://127.0.0.1:{port}/", process)
        environ = Path(f"/proc/{process.pid}/environ").read_bytes().split(b"\0")
        assert not any(item.startswith(b"PROMETHEUS_MULTIPROC_DIR=") for item in environ)
        assert "flower_" in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert list(metrics_dir.iterdir()) == []
    finally:
        stop(process)
