"""The event-loop intake's store (web/webhooks/asgi.py): `inbox.record_event` without a thread,
and with group commit.

On PostgreSQL the intake's rows go in on a few async psycopg connections of the process, in
autocommit. A delivery that finds a connection free starts a batch task, which takes every
delivery waiting when it runs (those of the same turn of the loop too), and then, while more
have come, the next ones (up to MAX_BATCH a statement); the deliveries that arrive while every
connection is busy wait for the next to finish. One multi-row INSERT: one statement and one
commit for the group, each delivery answered once the statement has returned, so its row is
committed before its 2xx (`inbox.record_events_on_async_cursor`). There is no linger to wait
on; docs/benchmarks.md has the measurement.

One delivery's fault must not fail its neighbours: a batch the database refuses for a reason of
its own rows (a value it will not take) is tried again a delivery at a time, so only the one at
fault is a 500. A connection the server dropped (a restart, a proxy's idle timeout) fails its
statement; the idle ones are closed too (they are most likely dead as well) and the batch is
tried once more on a fresh one, as `Billhook.store_event` does: the INSERT is idempotent, so the
first try may have committed, and a `received` row found then is reported as new, so it is
enqueued. A connection that cannot be opened is a 503 at once, as a refused pool checkout is.
Batches run in tasks of their own, so a delivery whose request is cancelled takes no other
delivery's answer with it.

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
# Deliveries stored together at most: a batch's statement stays short, and a burst is stored in
# several batches across the connections rather than one long one.
MAX_BATCH = 64


class StoreUnavailable(Exception):
    """The store could not take the event now (down, restarting, not migrated): a 503."""


class StoreError(Exception):
    """The store refused the statement for another reason: a bug, a 500. Carries no parameters."""


class AsyncIntakeStore:
    def __init__(self, ext: Billhook, *, connections: int):
        self._ext = ext
        self._sqlite = ext.settings.is_sqlite
        self._sql = None if self._sqlite else inbox.BatchSql()
        url = make_url(ext.settings.database_url)
        self._conninfo = None if self._sqlite else url.set(drivername="postgresql").render_as_string(False)
        self._size = connections
        self._running = 0  # batches being stored: at most one a connection
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[inbox.Stored]]] = []
        self._tasks: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks
        self._idle: list[tuple[psycopg.AsyncConnection, psycopg.AsyncCursor]] = []

    async def store_event(self, **fields: Any) -> inbox.Stored:
        if self._sqlite:
            # Its errors reach the caller as SQLAlchemy's, answered as web/errors.py answers them.
            return await asyncio.to_thread(self._ext.store_event, **fields)
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((fields, future))
        if self._running < self._size:
            self._running += 1
            task = asyncio.ensure_future(self._store_waiting())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _store_waiting(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                await self._store_batch(batch)
        finally:
            self._running -= 1

    async def _store_batch(self, batch: list[tuple[dict[str, Any], asyncio.Future[inbox.Stored]]]) -> None:
        try:
            answers = await self._answers([fields for fields, _ in batch])
        except BaseException:  # cancelled (the process is stopping): none of them left waiting forever
            _settle(batch, [StoreUnavailable("the intake is stopping")] * len(batch))
            raise
        _settle(batch, answers)

    async def _answers(self, batch: list[dict[str, Any]]) -> list[inbox.Stored | Exception]:
        """Each delivery's row, or the error it is to be answered with."""
        try:
            return await self._store_retrying(batch)
        except StoreError as exc:
            if len(batch) == 1:
                return [exc]
        except Exception as exc:  # down, not migrated, or a bug: every delivery of the batch is told
            return [exc] * len(batch)
        # Refused, maybe for one row's value: each on its own, so only that one fails.
        return [(await self._answers([fields]))[0] for fields in batch]

    async def _store_retrying(self, batch: list[dict[str, Any]]) -> list[inbox.Stored]:
        try:
            return await self._store_once(batch)
        except _Dropped:
            pass
        try:
            stored = await self._store_once(batch)
        except _Dropped as exc:
            raise StoreUnavailable(exc.reason) from None
        return [replace(s, new=True) if s.status == EventStatus.RECEIVED else s for s in stored]

    async def _store_once(self, batch: list[dict[str, Any]]) -> list[inbox.Stored]:
        connection, cursor = self._idle.pop() if self._idle else await self._connect()
        try:
            stored = await inbox.record_events_on_async_cursor(cursor, self._sql, batch)
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


def _settle(batch: list[tuple[dict[str, Any], asyncio.Future]], answers: list) -> None:
    """Each delivery its row or its error (one whose request is already gone is skipped)."""
    for (_fields, future), answer in zip(batch, answers, strict=True):
        if future.done():
            continue
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)


class _Dropped(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


async def _close(connection: psycopg.AsyncConnection) -> None:
    with contextlib.suppress(psycopg.Error):
        await connection.close()
