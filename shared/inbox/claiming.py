"""Claiming an event for a run, and recording how the run ended."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from shared.db import for_update, lock_by_ids, update_loaded_many
from shared.models import WebhookEvent
from shared.models.events import DONE_STATUSES, EventStatus

_LOCK_EVENT = for_update(select(WebhookEvent).where(WebhookEvent.id == bindparam("event_pk")))


def lock_events(session: Session, event_pks: list[int]) -> dict[int, WebhookEvent]:
    """`lock_event` for several events in one statement, by id; the rows are locked in id order,
    so two transactions locking overlapping sets wait for each other instead of deadlocking."""
    return lock_by_ids(session, WebhookEvent, event_pks)


def lock_event(session: Session, event_pk: int) -> WebhookEvent | None:
    """The event's row locked for this transaction and loaded, in one statement, whatever its
    status; None when it is missing. A task that waited on the lock finds the row as the holder
    committed it (`for_update` loads it afresh)."""
    return session.scalars(_LOCK_EVENT, {"event_pk": event_pk}).one_or_none()


def claimed(event: WebhookEvent) -> bool:
    """Whether a run of the event locked by `lock_event` goes on: only for a `received` event. A
    done one is done (a duplicate task that waited on the lock finds the first one's commit), and
    a dead-lettered (`failed`) one runs again when an operator replays it (which makes it
    `received`), not on a stray duplicate message. The lock and this check are one statement: a
    duplicate's message, a fifth of a busy worker's, learns why from the row it locked.

    The run's attempt is counted by the mark of its outcome (`mark_succeeded`, `mark_ignored`),
    in the same transaction and the same UPDATE: the row is written once a run. A run that fails
    rolls back, and `record_failure` counts it instead; a killed worker's run leaves no trace at
    all, the event stays `received` with its old `updated_at`, and the sweeper re-queues it after
    the grace.
    """
    return event.status == EventStatus.RECEIVED


def mark_succeeded(session: Session, event: WebhookEvent, *, at: datetime, account_id: str | None = None) -> None:
    """The run succeeded: its attempt counted, `succeeded` with the account it touched."""
    mark(session, [(event, succeeded(event, at=at, account_id=account_id))])


def mark_ignored(session: Session, event: WebhookEvent, *, at: datetime) -> None:
    """A claimed event of a type billhook does not handle: done, with nothing to do."""
    mark(session, [(event, ignored(event, at=at))])


def succeeded(event: WebhookEvent, *, at: datetime, account_id: str | None = None) -> dict:
    """The values of `mark_succeeded`, for `mark`."""
    return _finished(event, at=at, status=EventStatus.SUCCEEDED, processed_at=at, account_id=account_id)


def ignored(event: WebhookEvent, *, at: datetime) -> dict:
    """The values of `mark_ignored`, for `mark`."""
    return _finished(event, at=at, status=EventStatus.IGNORED, processed_at=event.processed_at)


def mark(session: Session, marks: list[tuple[WebhookEvent, dict]]) -> None:
    """Each claimed event's outcome (`succeeded`, `ignored`) and its attempt: one UPDATE of its
    row, all of them one statement executed for each (`update_loaded_many`)."""
    update_loaded_many(session, marks)


def _finished(
    event: WebhookEvent, *, at: datetime, status: str, processed_at: datetime | None, account_id: str | None = None
) -> dict:
    """The run's outcome and its attempt, the same columns for every outcome (one statement)."""
    return {
        "attempts": event.attempts + 1,  # under the row lock: no other run changes it meanwhile
        "status": status,
        "processed_at": processed_at,
        "account_id": account_id or event.account_id,
        "last_error": None,
        "next_attempt_at": None,
        "updated_at": at,
    }


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
