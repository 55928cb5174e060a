"""Running one inbox event through its handler: the transaction rules of exactly-once.

One transaction per run: claim the event (a SELECT ... FOR UPDATE, which locks and loads it; the
run goes on when it is `received`), run the handler, mark the event `succeeded` with its attempt
counted (one UPDATE: the row is written once a run). The effects, the attempt and the
`succeeded` mark commit together or not at all, and a concurrent duplicate task waits on the row
lock, then finds the event done.

There is no committed "processing" state in between (it cost a second commit per event): a
failed run rolls back and `record_failure` counts it; a killed worker's transaction rolls back,
the event stays `received` with its old `updated_at`, and the sweeper's "received and stale"
rule re-queues it after the grace (skipping rows a live worker holds locked).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shared import handoff, inbox
from shared.dispatch import handler_for
from shared.errors import PermanentError, RetryLater, TransientError
from shared.models import WebhookEvent
from shared.models.events import EventStatus
from shared.outcome import Outcome

log = logging.getLogger("billhook.processing")

# Errors where the same work may succeed on a later try are races and outages only: a dependency
# not seen yet, a unique key two workers raced for, a deadlock, a serialisation failure, a
# dropped connection or a database restart. A NOT NULL, CHECK or foreign-key violation fails the
# same way every time: it fails the event at once instead of nine retries later.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (TransientError, OperationalError)
UNIQUE_VIOLATION = "23505"
DEADLOCK_DETECTED = "40P01"
SERIALIZATION_FAILURE = "40001"
RACE_SQLSTATES = frozenset({UNIQUE_VIOLATION, DEADLOCK_DETECTED, SERIALIZATION_FAILURE})
# SQLite's extended result codes for the same races (it has no sqlstate).
RACE_SQLITE_ERRORS = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})
# SQLite's constraint messages that name only columns or constraints (a CHECK's may quote its
# expression: left out).
_SQLITE_CONSTRAINT_MESSAGE = re.compile(r"^(UNIQUE|NOT NULL|FOREIGN KEY) constraint failed(: [\w.]+(, [\w.]+)*)?$")

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
        event = inbox.lock_event(session, event_pk)
        if event is None:
            return Result(MISSING)
        if not inbox.claimed(event):
            return Result(
                DEAD_LETTERED if event.status == EventStatus.FAILED else ALREADY_DONE, event.type, event.account_id
            )
        handler = handler_for(event.provider, event.type)
        now = clock()
        if handler is None:
            inbox.mark_ignored(session, event, at=now)
            return Result(EventStatus.IGNORED, event.type)
        outcome = Outcome()
        handler(session, event, now, outcome)
        inbox.mark_succeeded(session, event, at=now, account_id=outcome.account_id)
    # After the commit: the caller gets the ids only once it succeeded, and the outgoing
    # deliveries are written just before it (shared/outgoing/events.py).
    return Result(DONE, event.type, event.account_id, tuple(outcome.emails), tuple(outcome.deliveries))


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, PermanentError):
        return False
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc, OperationalError):
            return True
        return sqlstate(exc) in RACE_SQLSTATES or _sqlite_error(exc) in RACE_SQLITE_ERRORS
    return isinstance(exc, TRANSIENT_ERRORS)


def sqlstate(exc: DBAPIError) -> str | None:
    """PostgreSQL's SQLSTATE for the error (psycopg's `sqlstate`), None elsewhere."""
    return getattr(exc.orig, "sqlstate", None)


def _sqlite_error(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlite_errorname", None)


def _constraint(exc: DBAPIError) -> str | None:
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None)


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
    """The message kept on the event and logged: the error class and its first line. A database
    error is described by its classes, SQLSTATE and constraint only: its text quotes values (a
    unique violation's DETAIL, PostgreSQL's context quoting part of a JSON body, SQLAlchemy's
    parameters), and those may be personal data or a payload."""
    if isinstance(exc, DBAPIError):
        return describe_database_error(exc)
    text = str(exc).strip()
    first_line = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first_line}"[:1000]


def describe_database_error(exc: DBAPIError) -> str:
    orig = exc.orig
    parts = [f"{type(exc).__name__}: {type(orig).__name__}" if orig is not None else type(exc).__name__]
    if (state := sqlstate(exc)) is not None:
        parts.append(f"sqlstate {state}")
    if (constraint := _constraint(exc)) is not None:
        parts.append(f"constraint {constraint}")
    if (sqlite_error := _sqlite_error(exc)) is not None:
        parts.append(sqlite_error)
        message = str(orig).strip()
        if _SQLITE_CONSTRAINT_MESSAGE.match(message):
            parts.append(message)
    if exc.connection_invalidated:
        parts.append("connection invalidated")
    return ", ".join(parts)[:1000]


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
    """Re-enqueue events that should be queued but may not be (`inbox.due_for_sweep`)."""
    return handoff.sweep(
        session_factory,
        enqueue,
        find_due=inbox.due_for_sweep,
        restart_clock=inbox.restart_sweep_clock,
        now=now,
        grace_seconds=grace_seconds,
        what="event",
        limit=limit,
    )
