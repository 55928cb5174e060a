"""The durable inbox of provider events: stored once, processed until done, never lost."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from shared.db import insert_ignore
from shared.models import WebhookEvent
from shared.models.events import DONE_STATUSES, FAILED, IGNORED, PROCESSING, RECEIVED, SUCCEEDED


@dataclass(frozen=True)
class Stored:
    id: int
    new: bool
    status: str


def record_event(
    session: Session,
    *,
    provider: str,
    event_id: str,
    type: str,
    payload: dict,
    event_created_at: datetime | None,
    handled: bool,
    at: datetime,
) -> Stored:
    """Insert the event unless (provider, event_id) is already there; unhandled types are stored
    as `ignored` so they are kept but never queued."""
    status = RECEIVED if handled else IGNORED
    new_id = insert_ignore(
        session,
        WebhookEvent,
        {
            "provider": provider,
            "event_id": event_id,
            "type": type,
            "payload": payload,
            "event_created_at": event_created_at,
            "received_at": at,
            "updated_at": at,
            "status": status,
        },
        ["provider", "event_id"],
        returning=WebhookEvent.id,
    )
    if new_id is not None:
        return Stored(new_id, True, status)
    existing = session.execute(
        select(WebhookEvent.id, WebhookEvent.status).filter_by(provider=provider, event_id=event_id)
    ).one()
    return Stored(existing.id, False, existing.status)


def lock_event(session: Session, event_pk: int) -> WebhookEvent | None:
    stmt = select(WebhookEvent).filter_by(id=event_pk).with_for_update().execution_options(populate_existing=True)
    return session.scalars(stmt).one_or_none()


def mark_processing(session: Session, event_pk: int, *, at: datetime) -> bool:
    """Count an attempt; False when the event is missing or already done.

    One conditional UPDATE (it takes the row lock itself) rather than SELECT ... FOR UPDATE and
    an UPDATE: one round trip, and the payload is not loaded and decoded just to count.
    """
    stmt = (
        update(WebhookEvent)
        .where(WebhookEvent.id == event_pk, WebhookEvent.status.not_in(DONE_STATUSES))
        .values(status=PROCESSING, attempts=WebhookEvent.attempts + 1, next_attempt_at=None, updated_at=at)
        .returning(WebhookEvent.id)
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).scalar_one_or_none() is not None


def mark_succeeded(event: WebhookEvent, *, at: datetime) -> None:
    event.status = SUCCEEDED
    event.processed_at = at
    event.last_error = None
    event.updated_at = at


def record_failure(session: Session, event_pk: int, error: str, *, at: datetime, retry_at: datetime | None) -> None:
    """Keep the error; with `retry_at` the event waits for its retry, without it is dead-lettered."""
    event = lock_event(session, event_pk)
    if event is None or event.status in DONE_STATUSES:
        return
    event.last_error = error[:4000]
    event.updated_at = at
    if retry_at is None:
        event.status = FAILED
        event.next_attempt_at = None
    else:
        event.status = RECEIVED
        event.next_attempt_at = retry_at


def due_for_sweep(
    session: Session, *, now: datetime, grace_seconds: int, lease_seconds: int, limit: int = 500
) -> list[int]:
    """Events that should be in the queue but may not be: received and never picked up (the broker
    was down at intake, or a retry was lost), or processing for longer than a lease (the worker died)."""
    grace = now - timedelta(seconds=grace_seconds)
    lease = now - timedelta(seconds=lease_seconds)
    waiting = and_(
        WebhookEvent.status == RECEIVED,
        or_(
            and_(WebhookEvent.next_attempt_at.is_(None), WebhookEvent.updated_at < grace),
            WebhookEvent.next_attempt_at < grace,
        ),
    )
    stuck = and_(WebhookEvent.status == PROCESSING, WebhookEvent.updated_at < lease)
    stmt = select(WebhookEvent.id).where(or_(waiting, stuck)).order_by(WebhookEvent.id).limit(limit)
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
