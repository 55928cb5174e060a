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

A worker's batch message runs its events in one transaction (`process_batch`): the same rules for
each event, its effects and its mark committing together, with what every transaction pays once
(BEGIN and COMMIT, the lock and the marks of the inbox rows, the outgoing events' writes and
snapshot, the invoice numbers) paid once for the batch. One failing event rolls the batch back,
and its events run one transaction each.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shared import handoff, inbox
from shared.billing.invoices import number_at_commit
from shared.dispatch import handler_for
from shared.errors import PermanentError, RetryLater, TransientError
from shared.logs import log_line
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
        (run,) = _run(session, [event_pk], {event_pk: event} if event is not None else {}, clock)
    return run.result()


def process_batch(
    session_factory: sessionmaker[Session], event_pks: list[int], *, clock: Callable[[], datetime]
) -> list[Result] | None:
    """Run several events in one transaction, each exactly as `process_event` would: the events'
    effects and their marks commit together, so each event's effects commit with its own mark.
    The rows are locked in one statement, in id order (two batches sharing an event wait, never
    deadlock on it), and marked in one; at the commit, the outgoing events are written in a
    multi-row INSERT with one snapshot query for all their accounts, and the invoices the batch
    issued are numbered together (`invoices.number_at_commit`): the series' counter row, which
    every issuer queues on, is held for the commit only, not for the batch.

    The events' Results, in order; None when an event raised or the transaction could not
    commit: it rolled back whole, and the caller runs each event in a transaction of its own, so
    one failing event costs the others only the repeat of their work. On PostgreSQL a lock waited
    on longer than `BATCH_LOCK_TIMEOUT` gives up the same way: holding its locks for several
    events, a batch could otherwise deadlock with another (two batches' accounts in opposite
    orders) and wait out the server's deadlock check."""
    try:
        with session_factory.begin() as session:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(_BATCH_LOCK_TIMEOUT)
            number_at_commit(session)
            runs = _run(session, event_pks, inbox.lock_events(session, event_pks), clock)
    except Exception as exc:  # noqa: BLE001 - each event runs again alone, and its error is handled there
        log_line(log, "batch ran singly", level=logging.INFO, events=len(event_pks), error=describe(exc))
        return None
    return [run.result() for run in runs]


# How long a batch's statement waits on a lock before the batch gives up (its events then run one
# transaction each): longer than another batch holds its locks (a few ms an event, eight events),
# far less than PostgreSQL's deadlock check (1 s).
BATCH_LOCK_TIMEOUT = "200ms"
_BATCH_LOCK_TIMEOUT = text(f"SET LOCAL lock_timeout = '{BATCH_LOCK_TIMEOUT}'")


@dataclass
class _Run:
    """One event's run inside a transaction; its Result is read after the commit."""

    outcome: str
    event_type: str | None = None
    account_id: str | None = None
    effects: Outcome | None = None

    def result(self) -> Result:
        # After the commit: the caller gets the ids only once it succeeded, and the outgoing
        # deliveries are written just before it (shared/outgoing/events.py).
        if self.effects is None:
            return Result(self.outcome, self.event_type, self.account_id)
        effects = self.effects
        return Result(self.outcome, self.event_type, self.account_id, tuple(effects.emails), tuple(effects.deliveries))


def _run(
    session: Session,
    event_pks: list[int],
    events: dict[int, WebhookEvent],
    clock: Callable[[], datetime],
) -> list[_Run]:
    """Each of `event_pks` whose row `events` holds locked through its handler, in order, and
    their marks written together (an id given twice runs once)."""
    runs: list[_Run] = []
    marks: list[tuple[WebhookEvent, dict]] = []
    ran: dict[int, _Run] = {}
    for event_pk in event_pks:
        event = events.get(event_pk)
        if event is None:
            runs.append(_Run(MISSING))
            continue
        if event_pk in ran:  # its mark is written below: it is done as the first run left it
            runs.append(_Run(ALREADY_DONE, event.type, ran[event_pk].account_id))
            continue
        if not inbox.claimed(event):
            done = DEAD_LETTERED if event.status == EventStatus.FAILED else ALREADY_DONE
            runs.append(_Run(done, event.type, event.account_id))
            continue
        handler = handler_for(event.provider, event.type)
        now = clock()
        if handler is None:
            marks.append((event, inbox.ignored(event, at=now)))
            run = _Run(EventStatus.IGNORED, event.type)
        else:
            outcome = Outcome()
            handler(session, event, now, outcome)
            marks.append((event, inbox.succeeded(event, at=now, account_id=outcome.account_id)))
            run = _Run(DONE, event.type, outcome.account_id or event.account_id, outcome)
        runs.append(run)
        ran[event_pk] = run
    inbox.mark(session, marks)
    return runs


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
