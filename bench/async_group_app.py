"""The async reference with group commit: bench/async_app.py, except that the webhooks waiting for
a connection are stored together, one multi-row `INSERT ... ON CONFLICT DO NOTHING RETURNING` a
batch, each request answered once its batch has committed. No linger: a request that finds a
connection free runs its batch at once; those arriving while every connection is busy are taken,
all of them (up to MAX_BATCH), by the next connection to finish. A paired measurement for issue
#19 ("group commit only where a paired measurement shows it wins"), `python -m bench.group_commit`.
"""

from __future__ import annotations

import asyncio
import os

import psycopg

from bench.async_app import make_app
from bench.lean_app import DSN

MAX_BATCH = 64
# Fewer connections than requests in flight, or no request ever waits and every batch is one row
# (at 8 a process, as the async reference keeps, the bench's 16 client connections never batch).
CONNECTIONS = int(os.environ.get("GROUP_CONNECTIONS") or 2)
_COLUMNS = "(provider, event_id, type, payload, event_created_at, received_at, updated_at, status, attempts)"
_ROW = "('stripe', %s, %s, %s, %s, %s, %s, 'received', 0)"


def _insert(rows: int) -> str:
    """The statement for `rows` rows: constants and placeholders only, the values go as parameters."""
    return (
        f"INSERT INTO webhook_events {_COLUMNS} VALUES {', '.join([_ROW] * rows)}"  # noqa: S608
        " ON CONFLICT (provider, event_id) DO NOTHING RETURNING id, event_id"
    )


class _GroupCommit:
    def __init__(self, count: int) -> None:
        self._count = count
        self._free: list[psycopg.AsyncConnection] = []
        self._pending: list[tuple[tuple, asyncio.Future]] = []

    async def open(self) -> None:
        for _ in range(self._count):
            self._free.append(await psycopg.AsyncConnection.connect(DSN, autocommit=True))

    async def insert(self, params: tuple) -> int | None:
        """The new row's id, or None for a duplicate; raises psycopg.Error when its batch failed."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((params, future))
        if self._free:
            await self._run(self._free.pop())
        return await future

    async def _run(self, connection: psycopg.AsyncConnection) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                await self._store(connection, batch)
        finally:
            self._free.append(connection)

    async def _store(self, connection, batch) -> None:
        try:
            async with connection.cursor() as cursor:
                await cursor.execute(_insert(len(batch)), [value for params, _ in batch for value in params])
                new = {event_id: pk for pk, event_id in await cursor.fetchall()}
        except psycopg.Error as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        answered: set[str] = set()  # a duplicate within the batch is answered as one
        for params, future in batch:
            event_id = params[0]
            pk = new.get(event_id) if event_id not in answered else None
            answered.add(event_id)
            if not future.done():
                future.set_result(pk)


app = make_app(_GroupCommit(CONNECTIONS))
