"""What the views share: the store, the intake path, the publisher (`billhook()` in a request)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from flask import current_app
from sqlalchemy.exc import DBAPIError

from shared import inbox
from shared.config import Settings
from shared.credentials import WebhookSecretCache
from shared.db import make_engine, make_sessionmaker
from shared.models.events import EventStatus


class Billhook:
    """What the views need, kept on `app.extensions['billhook']`."""

    def __init__(
        self,
        settings: Settings,
        enqueue: Callable[[int], None],
        enqueue_email: Callable[[int], None],
        enqueue_delivery: Callable[[int], None] | None = None,
    ):
        self.settings = settings
        self.engine = make_engine(settings)
        self.session_factory = make_sessionmaker(self.engine)
        # Intake stores an event with one atomic statement (INSERT ... ON CONFLICT DO NOTHING) on a
        # Core connection of its own pool (no ORM session to set up per webhook). On PostgreSQL the
        # connections are in autocommit from the start: the INSERT is a transaction of its own, no
        # BEGIN/COMMIT round trips, no isolation level set and reset per checkout; the row is still
        # committed before the 2xx. And no pre-ping, which would be a round trip on every webhook:
        # a connection the server dropped meanwhile fails its INSERT with a disconnect instead,
        # which empties the pool, and `store_event` tries once more. The INSERT runs on a DBAPI
        # cursor (`inbox.record_event_on_cursor`), without SQLAlchemy's execution layer around it.
        # The pool keeps one connection per request thread: a smaller pool closes and reopens its
        # overflow connections under load, a new PostgreSQL backend for most webhooks (measured:
        # ~100 sessions/s at 16 connections, a third of the throughput; docs/benchmarks.md).
        self._intake_engine = (
            self.engine
            if settings.is_sqlite
            else make_engine(
                settings,
                pool_pre_ping=False,
                isolation_level="AUTOCOMMIT",
                pool_size=settings.web_threads,
                max_overflow=0,
            )
        )
        self._intake_sql = None if settings.is_sqlite else inbox.IntakeSql.for_dialect(self._intake_engine.dialect)
        self._dbapi_error = self._intake_engine.dialect.loaded_dbapi.Error
        self.webhook_secrets = WebhookSecretCache(self.session_factory, ttl=settings.provider_cache_seconds)
        self.enqueue = enqueue
        self.enqueue_email = enqueue_email
        # Outgoing deliveries a request's changes wrote (None: left to the outgoing sweep).
        self.enqueue_delivery = _left_to_the_sweep if enqueue_delivery is None else enqueue_delivery

    def store_event(self, **fields: Any) -> inbox.Stored:
        """`inbox.record_event` on an intake connection, committed when it returns. A connection
        found dropped (the database restarted, a proxy timed it out) is retried once on a fresh one;
        the INSERT is idempotent, so the first try may even have committed: a `received` row found
        then is reported as new, so that it is enqueued (a second message for it is harmless)."""
        try:
            return self._store_once(fields)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        stored = self._store_once(fields)
        return replace(stored, new=True) if stored.status == EventStatus.RECEIVED else stored

    def _store_once(self, fields: dict[str, Any]) -> inbox.Stored:
        if self._intake_sql is None:  # SQLite: the store's one engine, and its BEGIN IMMEDIATE
            with self._intake_engine.begin() as connection:
                return inbox.record_event(connection, **fields)
        # PostgreSQL: the statements on a DBAPI cursor of the intake pool (autocommit). Its errors
        # reach the caller as SQLAlchemy's; on a disconnect the pool is replaced, as a Core
        # connection would (the others it holds are likely dead too: the server restarted).
        # Checking out is inside the same handling: a database refusing connections raises the
        # bare DBAPI error from the pool, which must reach the caller as SQLAlchemy's (a 503).
        dialect = self._intake_engine.dialect
        try:
            connection = self._intake_engine.raw_connection()
        except self._dbapi_error as exc:
            raise DBAPIError.instance(None, None, exc, self._dbapi_error, dialect=dialect) from exc
        cursor = None
        try:
            # One cursor a pooled connection, kept with it: making a psycopg cursor cost a webhook
            # about half what its INSERT does (~60 against ~110 µs of CPU). The pool clears `info`
            # when it replaces the connection, so a cursor never outlives the connection it is of.
            cursor = connection.info.get(_INTAKE_CURSOR)
            if cursor is None:
                cursor = connection.info[_INTAKE_CURSOR] = connection.cursor()
            return inbox.record_event_on_cursor(cursor, self._intake_sql, **fields)
        except self._dbapi_error as exc:
            dropped = dialect.is_disconnect(exc, connection.dbapi_connection, cursor)
            if dropped:
                connection.invalidate(exc)
                self._intake_engine.dispose()
            raise DBAPIError.instance(
                None, None, exc, self._dbapi_error, connection_invalidated=dropped, dialect=dialect
            ) from exc
        finally:
            connection.close()

    def dispose(self) -> None:
        """Close the pooled connections (tests, and processes that are done serving)."""
        self.engine.dispose()
        self._intake_engine.dispose()


_INTAKE_CURSOR = "billhook.intake_cursor"


def _left_to_the_sweep(_delivery_id: int) -> None:
    return None


def billhook() -> Billhook:
    return current_app.extensions["billhook"]
