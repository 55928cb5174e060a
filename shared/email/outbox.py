"""The email outbox: an email to send is a row written in the same transaction as the effect it
tells about, under a unique idempotency key, so a replayed event never queues it twice.

The ids of the rows a transaction queued are reported on its `Outcome`; whoever commits that
transaction enqueues their send tasks afterwards (`shared.handoff`), and the worker's sweep
finds any whose enqueue was lost (`due_for_sweep`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from shared.db import for_update, insert_ignore, lock_by_ids, update_loaded_many
from shared.email.render import TEMPLATES
from shared.models import Account, EmailOutbox
from shared.outcome import Outcome

log = logging.getLogger("billhook.outbox")


class OutboxStatus(StrEnum):
    """An outbox row's `status`: pending until sent, or failed for good."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


PENDING = OutboxStatus.PENDING
SENT = OutboxStatus.SENT
FAILED = OutboxStatus.FAILED


def queue_email(
    session: Session,
    outcome: Outcome,
    *,
    account_id: str | None,
    recipient: str | None,
    template: str,
    context: dict,
    idempotency_key: str,
    at: datetime | None = None,
) -> bool:
    """Queue one email in the caller's transaction; False when this key was queued before.

    The caller never commits here: the row and its effect commit (or roll back) together.
    """
    if template not in TEMPLATES:
        raise ValueError(f"unknown email template {template!r}")
    if not recipient and not account_id:
        raise ValueError("an email needs a recipient, or an account whose address is filled in at send time")
    values = {
        "account_id": account_id,
        "recipient": recipient or "",
        "template": template,
        "context": context,
        "idempotency_key": idempotency_key,
        "status": PENDING,
        "attempts": 0,
    }
    if at is not None:
        values["created_at"] = at
    new_id = insert_ignore(session, EmailOutbox, values, ["idempotency_key"], returning=EmailOutbox.id)
    if new_id is None:
        return False
    outcome.queued_email(new_id)
    return True


def queue_account_email(
    session: Session,
    outcome: Outcome,
    account_id: str,
    *,
    template: str,
    context: dict,
    idempotency_key: str,
    queued: Callable[[int, dict], None] | None = None,
) -> bool:
    """Queue an email to an account. Events arrive in any order: when billhook does not know the
    address yet (an invoice before its checkout), the send task reads it from the account later.
    `queued` is called with the new row's id and the context it holds, when one was queued."""
    account = session.get(Account, account_id)
    if account is None:
        return False
    context = {"name": account.name, **context}
    new = queue_email(
        session,
        outcome,
        account_id=account_id,
        recipient=account.email,
        template=template,
        context=context,
        idempotency_key=idempotency_key,
    )
    if new and queued is not None:
        queued(outcome.emails[-1], context)
    return new


_LOCK_ROW = for_update(select(EmailOutbox).where(EmailOutbox.id == bindparam("outbox_id")))


def lock_row(session: Session, outbox_id: int) -> EmailOutbox | None:
    return session.scalars(_LOCK_ROW, {"outbox_id": outbox_id}).one_or_none()


def lock_rows(session: Session, outbox_ids: list[int]) -> dict[int, EmailOutbox]:
    """`lock_row` for several rows in one statement, by id, locked in id order (`lock_by_ids`)."""
    return lock_by_ids(session, EmailOutbox, outbox_ids)


# What a send writes, whatever its outcome.
_SEND_COLUMNS = frozenset(
    {"recipient", "status", "attempts", "backend", "provider_message_id", "last_error", "next_attempt_at", "sent_at"}
)


def write_send(session: Session, row: EmailOutbox, **changes) -> None:
    """A send's outcome on its locked row: one UPDATE of the send's columns (`write_sends`)."""
    write_sends(session, [(row, changes)])


def write_sends(session: Session, sends: list[tuple[EmailOutbox, dict]]) -> None:
    """Several sends' outcomes on their locked rows: one UPDATE for the rows that write the same
    columns (`update_loaded_many`), each row written once."""
    by_columns: dict[tuple[str, ...], list[tuple[EmailOutbox, dict]]] = {}
    for row, changes in sends:
        unknown = set(changes) - _SEND_COLUMNS
        if unknown:
            raise ValueError(f"a send does not write {sorted(unknown)}")
        by_columns.setdefault(tuple(sorted(changes)), []).append((row, changes))
    for group in by_columns.values():
        update_loaded_many(session, group)


def due_for_sweep(session: Session, *, now: datetime, grace_seconds: int, limit: int = 500) -> list[int]:
    """Pending rows whose send task may have been lost: queued (or last retried/swept) longer
    than a grace ago. A row waiting on a retry countdown has `next_attempt_at` in the future."""
    cutoff = now - timedelta(seconds=grace_seconds)
    last_touch = func.coalesce(EmailOutbox.next_attempt_at, EmailOutbox.created_at)
    stmt = (
        select(EmailOutbox.id)
        .where(EmailOutbox.status == PENDING, last_touch < cutoff)
        .order_by(EmailOutbox.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def restart_sweep_clock(session: Session, outbox_ids: list[int], *, at: datetime) -> None:
    """Restart the sweep clock for rows just re-queued, so the next sweep does not queue them again."""
    if outbox_ids:
        session.execute(
            update(EmailOutbox)
            .where(EmailOutbox.id.in_(outbox_ids), EmailOutbox.status == PENDING)
            .values(next_attempt_at=at)
        )


def pending_or_failed(session: Session, *, status: str | None = None, limit: int = 50) -> list[EmailOutbox]:
    stmt = select(EmailOutbox).order_by(EmailOutbox.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(EmailOutbox.status == status)
    else:
        stmt = stmt.where(or_(EmailOutbox.status == PENDING, EmailOutbox.status == FAILED))
    return list(session.scalars(stmt))
