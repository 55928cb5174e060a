"""The event-loop intake's store (web/webhooks/asgi.py): `inbox.record_event` without a thread.

On PostgreSQL the intake's INSERT runs on a few async psycopg connections of the process, in
autocommit, so the row is committed when the statement returns, before the 2xx; the statements
are the Flask intake's own (`inbox.IntakeSql`). A request waits for a free connection rather than
open one of its own. A connection the server dropped (a restart, a proxy's idle timeout) fails its
statement; the idle ones are closed too (they are most likely dead as well) and the event is tried
once more on a fresh one, as `Billhook.store_event` does: the INSERT is idempotent, so the first
try may have committed, and a `received` row found then is reported as new, so it is enqueued. A
connection that cannot be opened is a 503 at once, as a refused pool checkout is.

On SQLite (a development machine) the store is the Flask intake's own, `Billhook.store_event`,
run in a thread: SQLite has no async driver worth the name, and a laptop's webhooks are few.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from shared import inbox
from shared.models.events import EventStatus
from web.context import Billhook
from web.errors import UNDEFINED_TABLE

# Seconds to open a connection: a database that does not answer costs a webhook a bounded wait
# and a 503, never a request held open until the provider gives up.
CONNECT_TIMEOUT_SECONDS = 5
# How ops (and pg_stat_activity) tell the intake's connections from the others.
APPLICATION_NAME = "billhook-intake"


class StoreUnavailable(Exception):
    """The store could not take the event now (down, restarting, not migrated): a 503."""


class StoreError(Exception):
    """The store refused the statement for another reason: a bug, a 500. Carries no parameters."""


class AsyncIntakeStore:
    def __init__(self, ext: Billhook, *, connections: int):
        self._ext = ext
        self._sqlite = ext.settings.is_sqlite
        self._sql = None if self._sqlite else inbox.IntakeSql.for_dialect(ext.engine.dialect)
        url = make_url(ext.settings.database_url)
        self._conninfo = None if self._sqlite else url.set(drivername="postgresql").render_as_string(False)
        self._size = connections
        self._slots: asyncio.Semaphore | None = None
        self._idle: list[tuple[psycopg.AsyncConnection, psycopg.AsyncCursor]] = []

    async def store_event(self, **fields: Any) -> inbox.Stored:
        if self._sqlite:
            # Its errors reach the caller as SQLAlchemy's, answered as web/errors.py answers them.
            return await asyncio.to_thread(self._ext.store_event, **fields)
        if self._slots is None:  # made on the loop that serves (uvicorn's, after start-up)
            self._slots = asyncio.Semaphore(self._size)
        async with self._slots:
            try:
                return await self._store_once(fields)
            except _Dropped:
                pass
            try:
                stored = await self._store_once(fields)
            except _Dropped as exc:
                raise StoreUnavailable(exc.reason) from None
        return replace(stored, new=True) if stored.status == EventStatus.RECEIVED else stored

    async def _store_once(self, fields: dict[str, Any]) -> inbox.Stored:
        connection, cursor = self._idle.pop() if self._idle else await self._connect()
        try:
            stored = await inbox.record_event_on_async_cursor(cursor, self._sql, **fields)
        except psycopg.Error as exc:
            if connection.broken or isinstance(exc, psycopg.OperationalError):
                await _close(connection)
                await self.close()  # the others are most likely gone too: fresh ones from here
                raise _Dropped(type(exc).__name__) from None
            self._idle.append((connection, cursor))
            if exc.sqlstate == UNDEFINED_TABLE:  # up, but not migrated (or being restored)
                raise StoreUnavailable("the events table is missing") from None
            # The message only: never the statement's parameters (a webhook body).
            raise StoreError(f"{type(exc).__name__} (sqlstate {exc.sqlstate})") from None
        except BaseException:  # cancelled mid-statement: the connection's state is unknown
            await _close(connection)
            raise
        self._idle.append((connection, cursor))
        return stored

    async def _connect(self) -> tuple[psycopg.AsyncConnection, psycopg.AsyncCursor]:
        try:
            connection = await psycopg.AsyncConnection.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                application_name=APPLICATION_NAME,
            )
        except psycopg.Error as exc:  # refused or timed out: not tried again, as the pool's checkout is not
            raise StoreUnavailable(type(exc).__name__) from None
        return connection, connection.cursor()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection, _cursor in idle:
            await _close(connection)


class _Dropped(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


async def _close(connection: psycopg.AsyncConnection) -> None:
    with contextlib.suppress(psycopg.Error):
        await connection.close()
