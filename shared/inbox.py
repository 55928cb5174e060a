"""The durable inbox of provider events: stored once, processed until done, never lost."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, or_, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from shared.db import JsonText, for_update, held_in_transaction, insert_ignore, insert_ignore_sql, serialize_json
from shared.models import WebhookEvent
from shared.models.events import DONE_STATUSES, FAILED, IGNORED, RECEIVED, SUCCEEDED


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
        "status": RECEIVED if handled else IGNORED,
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
    PostgreSQL, where SQLAlchemy's execution layer around the one INSERT cost a sixth of a
    webhook's CPU. The statements are `record_event`'s own, compiled once."""
    values = _event_values(**fields)
    values["payload"] = serialize_json(values["payload"])  # the body as received stays as it is
    cursor.execute(sql.insert, values)
    row = cursor.fetchone()
    if row is not None:
        return Stored(row[0], True, values["status"])
    cursor.execute(sql.find, {"provider": values["provider"], "event_id": values["event_id"]})
    pk, status = cursor.fetchone()
    return Stored(pk, False, status)


# The worker's per-event statements are built once, with bound parameters: building an ORM
# statement costs about as much CPU as running it.
_LOCK_EVENT = for_update(select(WebhookEvent).where(WebhookEvent.id == bindparam("event_pk")))
_CLAIM = (
    update(WebhookEvent)
    # Only a `received` event: a done one is done, and a dead-lettered (`failed`) one runs again
    # when an operator replays it (which makes it `received`), not on a stray duplicate message.
    .where(WebhookEvent.id == bindparam("event_pk"), WebhookEvent.status == RECEIVED)
    .values(
        attempts=WebhookEvent.attempts + 1,
        next_attempt_at=None,
        updated_at=bindparam("at", type_=WebhookEvent.__table__.c.updated_at.type),
    )
    .returning(WebhookEvent)
    # The claim opens the transaction: no object in the session to synchronise.
    .execution_options(populate_existing=True, synchronize_session=False)
)


def lock_event(session: Session, event_pk: int) -> WebhookEvent | None:
    return session.scalars(_LOCK_EVENT, {"event_pk": event_pk}).one_or_none()


def claim(session: Session, event_pk: int, *, at: datetime) -> WebhookEvent | None:
    """Take a `received` event for this transaction: lock its row, count the attempt and load it,
    in one statement. None when the event is missing, already done (a duplicate task that waited
    on the lock finds the first one's commit) or dead-lettered.

    The count commits only with the handler's effects: a run that fails rolls it back, and
    `record_failure` counts it instead; a killed worker's run leaves no trace at all, the event
    stays `received` with its old `updated_at`, and the sweeper re-queues it after the grace.
    """
    return session.scalars(_CLAIM, {"event_pk": event_pk, "at": at}).one_or_none()


def note_account(session: Session, event: WebhookEvent, account_id: str | None) -> None:
    """Name the account an event concerns (ops views, logs). Kept aside until the run marks the
    event done: assigned to the row now, the next query's autoflush would spend a second UPDATE
    of the event row on it."""
    held_in_transaction(session)[(WebhookEvent, event.id, "account_id")] = account_id


def noted_account(session: Session, event: WebhookEvent) -> str | None:
    return held_in_transaction(session).get((WebhookEvent, event.id, "account_id"))


def mark_succeeded(event: WebhookEvent, *, at: datetime) -> None:
    event.status = SUCCEEDED
    event.processed_at = at
    event.last_error = None
    event.updated_at = at


def record_failure(session: Session, event_pk: int, error: str, *, at: datetime, retry_at: datetime | None) -> None:
    """Count the failed attempt (its own transaction rolled back) and keep the error; with
    `retry_at` the event waits for its retry, without it is dead-lettered."""
    event = lock_event(session, event_pk)
    if event is None or event.status in DONE_STATUSES:
        return
    event.attempts += 1
    event.last_error = error[:4000]
    event.updated_at = at
    if retry_at is None:
        event.status = FAILED
        event.next_attempt_at = None
    else:
        event.status = RECEIVED
        event.next_attempt_at = retry_at


def due_for_sweep(session: Session, *, now: datetime, grace_seconds: int, limit: int = 500) -> list[int]:
    """Events that should be in the queue but may not be: `received` and untouched for longer than
    the grace (the broker was down at intake, a retry was lost, or a worker died mid-run: its
    transaction rolled back and left the event as it was). Rows locked right now are being
    processed and are skipped (PostgreSQL; SQLite has no row locks to skip)."""
    grace = now - timedelta(seconds=grace_seconds)
    stmt = (
        select(WebhookEvent.id)
        .where(
            WebhookEvent.status == RECEIVED,
            or_(
                and_(WebhookEvent.next_attempt_at.is_(None), WebhookEvent.updated_at < grace),
                WebhookEvent.next_attempt_at < grace,
            ),
        )
        .order_by(WebhookEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(stmt))


def touch(session: Session, event_pks: list[int], *, at: datetime) -> None:
    """Restart the sweep clock for events just re-queued, so the next sweep does not queue them
    again. A scheduled retry's time is cleared too: the sweeper measures a waiting event from
    `next_attempt_at` when it is set, which this re-queue has superseded."""
    if event_pks:
        session.execute(
            update(WebhookEvent).where(WebhookEvent.id.in_(event_pks)).values(updated_at=at, next_attempt_at=None)
        )


def requeue(session: Session, event_pk: int, *, at: datetime) -> bool:
    """Make a failed (or any not-done) event eligible again; effects stay exactly once because
    every effect is keyed. Returns False for events already done."""
    event = lock_event(session, event_pk)
    if event is None or event.status in DONE_STATUSES:
        return False
    event.status = RECEIVED
    event.next_attempt_at = None
    event.updated_at = at
    return True


def counts_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(WebhookEvent.status, func.count()).group_by(WebhookEvent.status))
    return {status: count for status, count in rows}


def now_utc() -> datetime:
    return datetime.now(UTC)
