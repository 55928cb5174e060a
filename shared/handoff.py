"""Handing committed rows' ids to the broker: after a commit (what the transaction's `Outcome`
queued) and from the sweepers (rows whose message may have been lost). Publishing an id twice is
harmless, since every task finds its row done, locked or not due; so a failure only stops the
hand-over, logged: the rows are committed, and the next sweep publishes them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from shared.logs import log_line

log = logging.getLogger("billhook.handoff")

Enqueue = Callable[[int], None]


def hand_over(enqueue: Enqueue, ids: Iterable[int], *, what: str) -> list[int]:
    """`enqueue` each id in order; on the first failure (the broker is down) stop. The ids handed over."""
    handed = []
    for pk in ids:
        try:
            enqueue(pk)
        except Exception as exc:  # noqa: BLE001 - any broker failure: the sweep has the rows
            log_line(
                log,
                "enqueue failed; the sweep will retry",
                level=logging.WARNING,
                what=what,
                id=pk,
                error=type(exc).__name__,
            )
            break
        handed.append(pk)
    return handed


class Queued(Protocol):
    """What a committed transaction queued: an `Outcome`, or the processor's `Result` of one."""

    @property
    def emails(self) -> Iterable[int]: ...

    @property
    def deliveries(self) -> Iterable[int]: ...


def after_commit(outcome: Queued, *, email: Enqueue, delivery: Enqueue) -> None:
    """Publish what a committed transaction queued: its emails' send tasks, its outgoing deliveries."""
    hand_over(email, outcome.emails, what="email")
    hand_over(delivery, outcome.deliveries, what="delivery")


class FindDue(Protocol):
    def __call__(self, session: Session, *, now: datetime, grace_seconds: int, limit: int) -> list[int]: ...


class RestartClock(Protocol):
    def __call__(self, session: Session, ids: list[int], *, at: datetime) -> None: ...


def sweep(
    session_factory: sessionmaker[Session],
    enqueue: Enqueue,
    *,
    find_due: FindDue,
    restart_clock: RestartClock,
    now: datetime,
    grace_seconds: int,
    what: str,
    limit: int = 500,
) -> list[int]:
    """Publish the rows `find_due` says should be queued but may not be, then restart the sweep
    clock of those published, so the next sweep does not queue them again."""
    with session_factory.begin() as session:
        due = find_due(session, now=now, grace_seconds=grace_seconds, limit=limit)
    queued = hand_over(enqueue, due, what=what)
    with session_factory.begin() as session:
        restart_clock(session, queued, at=now)
    return queued
