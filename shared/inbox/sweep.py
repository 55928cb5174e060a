"""Finding events that should be queued but may not be, and restarting their sweep clock."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.orm import Session

from shared.models import WebhookEvent
from shared.models.events import EventStatus


def due_for_sweep(session: Session, *, now: datetime, grace_seconds: int, limit: int = 500) -> list[int]:
    """Events that should be in the queue but may not be: `received` and untouched for longer than
    the grace (the broker was down at intake, a retry was lost, or a worker died mid-run: its
    transaction rolled back and left the event as it was). Rows locked right now are being
    processed and are skipped (PostgreSQL; SQLite has no row locks to skip)."""
    return list(session.scalars(due_statement(now, grace_seconds=grace_seconds, limit=limit)))


def due_statement(now: datetime, *, grace_seconds: int, limit: int) -> Select:
    """`due_for_sweep`'s query (its plan is checked at scale in tests/integration)."""
    grace = now - timedelta(seconds=grace_seconds)
    return (
        select(WebhookEvent.id)
        .where(
            WebhookEvent.status == EventStatus.RECEIVED,
            or_(
                and_(WebhookEvent.next_attempt_at.is_(None), WebhookEvent.updated_at < grace),
                WebhookEvent.next_attempt_at < grace,
            ),
        )
        .order_by(WebhookEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def restart_sweep_clock(session: Session, event_pks: list[int], *, at: datetime) -> None:
    """Restart the sweep clock for events just re-queued, so the next sweep does not queue them
    again. A scheduled retry's time is cleared too: the sweeper measures a waiting event from
    `next_attempt_at` when it is set, which this re-queue has superseded."""
    if event_pks:
        session.execute(
            update(WebhookEvent).where(WebhookEvent.id.in_(event_pks)).values(updated_at=at, next_attempt_at=None)
        )


def counts_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(WebhookEvent.status, func.count()).group_by(WebhookEvent.status))
    return {status: count for status, count in rows}
