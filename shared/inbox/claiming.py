"""Claiming an event for a run, and recording how the run ended."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from shared.db import for_update
from shared.models import WebhookEvent
from shared.models.events import DONE_STATUSES, EventStatus

_LOCK_EVENT = for_update(select(WebhookEvent).where(WebhookEvent.id == bindparam("event_pk")))
_CLAIM = (
    update(WebhookEvent)
    # Only a `received` event: a done one is done, and a dead-lettered (`failed`) one runs again
    # when an operator replays it (which makes it `received`), not on a stray duplicate message.
    .where(WebhookEvent.id == bindparam("event_pk"), WebhookEvent.status == EventStatus.RECEIVED)
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


def mark_succeeded(event: WebhookEvent, *, at: datetime) -> None:
    event.status = EventStatus.SUCCEEDED
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
        event.status = EventStatus.FAILED
        event.next_attempt_at = None
    else:
        event.status = EventStatus.RECEIVED
        event.next_attempt_at = retry_at
