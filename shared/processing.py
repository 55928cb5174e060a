"""Running one inbox event through its handler: the transaction rules of exactly-once.

One transaction per run: claim the event (a conditional UPDATE ... RETURNING that locks the row,
counts the attempt and loads it), run the handler, mark the event `succeeded`. The effects, the
attempt and the `succeeded` mark commit together or not at all, and a concurrent duplicate task
waits on the row lock, then finds the event done.

There is no committed "processing" state in between (it cost a second commit per event): a
failed run rolls back and `record_failure` counts it; a killed worker's transaction rolls back,
the event stays `received` with its old `updated_at`, and the sweeper's "received and stale"
rule re-queues it after the grace (skipping rows a live worker holds locked).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shared import inbox
from shared.dispatch import handler_for
from shared.errors import PermanentError, RetryLater, TransientError
from shared.models import WebhookEvent
from shared.models.events import EventStatus
from shared.outcome import Outcome

log = logging.getLogger("billhook.processing")

# Errors where the same work may succeed on a later try: dependencies not seen yet, lost races on
# a unique key between two workers, deadlocks, serialisation failures, a database restart.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (TransientError, OperationalError, IntegrityError)

DONE = "done"
ALREADY_DONE = "already_done"
MISSING = "missing"
# A message for an event that failed for good: left alone until an operator replays it.
DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True)
class Result:
    outcome: str
    event_type: str | None = None
    account_id: str | None = None
    # Outbox rows the handler queued: the caller enqueues their send tasks (the commit is done).
    emails: tuple[int, ...] = ()
    # Outgoing deliveries the handler's changes wrote: the caller enqueues them too.
    deliveries: tuple[int, ...] = ()


def process_event(session_factory: sessionmaker[Session], event_pk: int, *, clock: Callable[[], datetime]) -> Result:
    """Run the event's handler exactly once. Raises the handler's error after rolling back its
    effects; the caller decides between retry and failure (see `record_failure`)."""
    with session_factory.begin() as session:
        event = inbox.claim(session, event_pk, at=clock())
        if event is None:
            found = session.execute(
                select(WebhookEvent.type, WebhookEvent.account_id, WebhookEvent.status).filter_by(id=event_pk)
            ).one_or_none()
            if found is None:
                return Result(MISSING)
            return Result(
                DEAD_LETTERED if found.status == EventStatus.FAILED else ALREADY_DONE, found.type, found.account_id
            )
        handler = handler_for(event.provider, event.type)
        now = clock()
        if handler is None:
            event.status = EventStatus.IGNORED
            event.updated_at = now
            return Result(EventStatus.IGNORED, event.type)
        outcome = Outcome()
        handler(session, event, now, outcome)
        event.account_id = outcome.account_id or event.account_id
        inbox.mark_succeeded(event, at=now)
        # Returned from inside the block: the caller gets the ids only once the commit succeeded.
        return Result(DONE, event.type, event.account_id, tuple(outcome.emails), tuple(outcome.deliveries))


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, PermanentError):
        return False
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, TRANSIENT_ERRORS)


def still_waiting(
    session_factory: sessionmaker[Session], event_pk: int, exc: BaseException, *, now: datetime, wait_seconds: int
) -> bool:
    """Whether an event that failed on a dependency not seen yet (RetryLater) may still get it:
    received less than `wait_seconds` ago. Such an event keeps retrying past the retry cap instead
    of being dead-lettered while its dependency is on its way (in a backlog, in the provider's
    retry schedule, behind the sweeper's grace)."""
    if not isinstance(exc, RetryLater):
        return False
    try:
        with session_factory() as session:
            received_at = session.scalar(select(WebhookEvent.received_at).filter_by(id=event_pk))
    except Exception:  # noqa: BLE001 - the store is down: that is worth another retry too
        return True
    return received_at is not None and now - received_at < timedelta(seconds=wait_seconds)


def describe(exc: BaseException) -> str:
    """The message kept on the event: the error class and its first line, no payload."""
    text = str(exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc)
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(exc).__name__}: {first_line}"[:1000]


def record_failure(
    session_factory: sessionmaker[Session],
    event_pk: int,
    exc: BaseException,
    *,
    at: datetime,
    retry_at: datetime | None,
) -> None:
    with session_factory.begin() as session:
        inbox.record_failure(session, event_pk, describe(exc), at=at, retry_at=retry_at)


def sweep(
    session_factory: sessionmaker[Session],
    enqueue: Callable[[int], None],
    *,
    now: datetime,
    grace_seconds: int,
    limit: int = 500,
) -> list[int]:
    """Re-enqueue events that should be queued but may not be. Enqueueing twice is harmless: the
    second task finds the event done."""
    with session_factory.begin() as session:
        due = inbox.due_for_sweep(session, now=now, grace_seconds=grace_seconds, limit=limit)
    queued = []
    for event_pk in due:
        try:
            enqueue(event_pk)
        except Exception as exc:  # the broker is down: the next sweep tries again
            log.warning("sweep could not enqueue event %s: %s", event_pk, describe(exc))
            break
        queued.append(event_pk)
    with session_factory.begin() as session:
        inbox.restart_sweep_clock(session, queued, at=now)
    return queued
