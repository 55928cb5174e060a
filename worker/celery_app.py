"""The Celery application, configured in one place from the same Settings as web."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from shared.config import Settings
from shared.db import make_engine, make_sessionmaker
from worker.config import new_celery
from worker.interrupted_runs import StartCounter
from worker.publisher import Publisher


class Runtime:
    """What tasks need, built lazily in each worker process (after the prefork fork)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._pid: int | None = None
        self._session_factory: sessionmaker[Session] | None = None
        self.publisher: Publisher | None = None  # set by make_celery: after-commit publishing in tasks
        self.starts = StartCounter(settings.redis_url)  # the bound on poison messages

    @property
    def session_factory(self) -> sessionmaker[Session]:
        if self._session_factory is None or self._pid != os.getpid():
            # No pre-ping: it costs a round trip on each of a task's two transactions. A connection
            # that died meanwhile fails the task with an invalidated-connection error, which is
            # transient (retried with backoff), and SQLAlchemy then recycles the whole pool.
            self._session_factory = make_sessionmaker(make_engine(self.settings, pool_pre_ping=False))
            self._pid = os.getpid()
        return self._session_factory

    @staticmethod
    def clock() -> datetime:
        return datetime.now(UTC)


TASK_MODULES = (
    "worker.tasks.events",
    "worker.tasks.emails",
    "worker.tasks.paypal",
    "worker.tasks.manual",
    "worker.tasks.outgoing",
)


def make_celery(settings: Settings) -> Celery:
    """The worker's (and beat's and Flower's) app: billhook's tasks and their runtime."""
    app = new_celery(settings, include=TASK_MODULES)
    app.billhook = Runtime(settings)
    app.billhook.publisher = Publisher(app)
    return app


def runtime(app: Celery) -> Runtime:
    return app.billhook
