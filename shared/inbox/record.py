"""Recording a provider event: the intake writer. One atomic INSERT ... ON CONFLICT DO NOTHING,
unique on (provider, event_id), so a redelivered event is found, never stored twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from shared.db import JsonText, insert_ignore, insert_ignore_sql, serialize_json
from shared.models import WebhookEvent
from shared.models.events import EventStatus


@dataclass(frozen=True)
class Stored:
    id: int
    new: bool
    status: str


def record_event(
    session: Session | Connection,
    *,
    provider: str,
    event_id: str,
    type: str,
    payload: dict | JsonText,
    event_created_at: datetime | None,
    handled: bool,
    at: datetime,
) -> Stored:
    """Insert the event unless (provider, event_id) is already there; unhandled types are stored
    as `ignored` so they are kept but never queued. The payload is the parsed event, or its body
    as received (`JsonText`), which is stored as it is."""
    values = _event_values(provider, event_id, type, payload, event_created_at, handled, at)
    new_id = insert_ignore(session, WebhookEvent, values, _EVENT_KEY, returning=WebhookEvent.id)
    if new_id is not None:
        return Stored(new_id, True, values["status"])
    existing = session.execute(_FIND_EVENT, {"provider": provider, "event_id": event_id}).one()
    return Stored(existing.id, False, existing.status)


def _event_values(provider, event_id, type, payload, event_created_at, handled, at) -> dict:
    return {
        "provider": provider,
        "event_id": event_id,
        "type": type,
        "payload": payload,
        "event_created_at": event_created_at,
        "received_at": at,
        "updated_at": at,
        "status": EventStatus.RECEIVED if handled else EventStatus.IGNORED,
        "attempts": 0,
    }


_EVENT_COLUMNS = list(_event_values(None, None, None, None, None, True, None))  # what the INSERT writes
_EVENT_KEY = ["provider", "event_id"]
_FIND_EVENT = select(WebhookEvent.id, WebhookEvent.status).where(
    WebhookEvent.provider == bindparam("provider"), WebhookEvent.event_id == bindparam("event_id")
)


@dataclass(frozen=True)
class IntakeSql:
    """`record_event`'s two statements as the dialect's SQL text, for `record_event_on_cursor`."""

    insert: str
    find: str

    @classmethod
    def for_dialect(cls, dialect: Dialect) -> IntakeSql:
        return cls(
            insert=insert_ignore_sql(dialect, WebhookEvent, _EVENT_COLUMNS, _EVENT_KEY, WebhookEvent.id),
            find=str(_FIND_EVENT.compile(dialect=dialect)),
        )


def record_event_on_cursor(cursor: Any, sql: IntakeSql, **fields: Any) -> Stored:
    """`record_event` on a DBAPI cursor (named parameters, autocommit): webhook intake's path on
    PostgreSQL, one INSERT without SQLAlchemy's execution layer around it (see docs/benchmarks.md).
    The statements are `record_event`'s own, compiled once."""
    values = _cursor_values(fields)
    cursor.execute(sql.insert, values)
    row = cursor.fetchone()
    if row is not None:
        return Stored(row[0], True, values["status"])
    cursor.execute(sql.find, {"provider": values["provider"], "event_id": values["event_id"]})
    return _found(cursor.fetchone())


class BatchSql:
    """`record_events_on_async_cursor`'s statements on PostgreSQL, with positional parameters:
    the multi-row INSERT and the look-up of the rows already there, compiled by SQLAlchemy once
    for each number of rows (a batch holds at most a few dozen)."""

    def __init__(self) -> None:
        self._dialect = postgresql.psycopg.dialect(paramstyle="format")
        self._inserts: dict[int, str] = {}
        self._finds: dict[int, str] = {}
        compiled = self._compile(_insert_rows(1))
        # The columns in the order the statement takes their values (the table's, not ours).
        self.columns = [name.removesuffix("_m0") for name in compiled.positiontup]

    def insert(self, rows: int) -> str:
        if rows not in self._inserts:
            self._inserts[rows] = str(self._compile(_insert_rows(rows)))
        return self._inserts[rows]

    def find(self, keys: int) -> str:
        if keys not in self._finds:
            self._finds[keys] = str(self._compile(_find_rows(keys)))
        return self._finds[keys]

    def _compile(self, stmt):
        # The IN list's placeholders written out (SQLAlchemy would otherwise expand them per call).
        return stmt.compile(dialect=self._dialect, compile_kwargs={"render_postcompile": True})


def _insert_rows(rows: int):
    return (
        postgresql.insert(WebhookEvent)
        .values([dict.fromkeys(_EVENT_COLUMNS)] * rows)
        .on_conflict_do_nothing(index_elements=_EVENT_KEY)
        .returning(WebhookEvent.id, WebhookEvent.provider, WebhookEvent.event_id)
    )


def _find_rows(keys: int):
    key = tuple_(WebhookEvent.provider, WebhookEvent.event_id)
    return select(WebhookEvent.id, WebhookEvent.provider, WebhookEvent.event_id, WebhookEvent.status).where(
        key.in_([(None, None)] * keys)
    )


async def record_events_on_async_cursor(cursor: Any, sql: BatchSql, batch: list[dict[str, Any]]) -> list[Stored]:
    """`record_event` for each of `batch` (its keyword arguments) on psycopg's async cursor in
    autocommit: the event-loop intake's path. One multi-row INSERT ... ON CONFLICT DO NOTHING, so
    the new rows commit together when it returns, and one SELECT for those already there; the
    answers in the batch's order. An event twice in one batch is new once, then found."""
    rows = [_cursor_values(fields) for fields in batch]
    keys = [(row["provider"], row["event_id"]) for row in rows]
    await cursor.execute(sql.insert(len(rows)), [row[column] for row in rows for column in sql.columns])
    new = {(provider, event_id): pk for pk, provider, event_id in await cursor.fetchall()}
    stored: list[Stored | None] = []
    for key, row in zip(keys, rows, strict=True):
        pk = new.pop(key, None)  # popped: the event's second delivery in the batch is found
        stored.append(None if pk is None else Stored(pk, True, row["status"]))
    if None not in stored:
        return stored
    # Those that conflicted are committed by now (ON CONFLICT waits for the other transaction).
    there = list(dict.fromkeys(key for key, s in zip(keys, stored, strict=True) if s is None))
    await cursor.execute(sql.find(len(there)), [value for key in there for value in key])
    found_rows = await cursor.fetchall()
    found = {(provider, event_id): Stored(pk, False, status) for pk, provider, event_id, status in found_rows}
    return [s or found[key] for key, s in zip(keys, stored, strict=True)]


def _cursor_values(fields: dict[str, Any]) -> dict[str, Any]:
    values = _event_values(**fields)
    values["payload"] = serialize_json(values["payload"])  # the body as received stays as it is
    return values


def _found(row: tuple) -> Stored:
    pk, status = row
    return Stored(pk, False, status)
