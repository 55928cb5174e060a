"""Recording a provider event: the intake writer. One atomic INSERT ... ON CONFLICT DO NOTHING,
unique on (provider, event_id), so a redelivered event is found, never stored twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select
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


async def record_event_on_async_cursor(cursor: Any, sql: IntakeSql, **fields: Any) -> Stored:
    """`record_event_on_cursor` on psycopg's async cursor: the event-loop intake's path."""
    values = _cursor_values(fields)
    await cursor.execute(sql.insert, values)
    row = await cursor.fetchone()
    if row is not None:
        return Stored(row[0], True, values["status"])
    await cursor.execute(sql.find, {"provider": values["provider"], "event_id": values["event_id"]})
    return _found(await cursor.fetchone())


def _cursor_values(fields: dict[str, Any]) -> dict[str, Any]:
    values = _event_values(**fields)
    values["payload"] = serialize_json(values["payload"])  # the body as received stays as it is
    return values


def _found(row: tuple) -> Stored:
    pk, status = row
    return Stored(pk, False, status)
