"""Sending one outbox row, exactly once.

The row is locked (SELECT ... FOR UPDATE) while it is sent and marked, so two tasks for the
same row (a duplicate enqueue, the sweep) serialise: the second finds it `sent` and does
nothing. Should the process die between the provider's accept and the commit, the row stays
pending and is sent again with the same key: Resend's `Idempotency-Key` turns that into the
same email, SMTP carries the same Message-ID. A batch of rows (`send_outbox_emails`) is locked,
sent and marked in one transaction, and a death before its commit sends each of its rows again
the same way.

Backends, chosen per send: Resend when the providers table has an active `resend` row with an
API key; else SMTP when `settings.smtp_host` is set; else the log (development).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from jinja2 import TemplateError
from sqlalchemy.orm import Session, sessionmaker

from shared.config import Settings
from shared.credentials import get_provider
from shared.email import outbox
from shared.email import resend as resend_provider
from shared.email.render import render
from shared.email.resend import OutgoingEmail, ResendMailer
from shared.email.smtp import DEFAULT_SENDER, SmtpMailer
from shared.errors import ProviderError
from shared.logs import log_line
from shared.models import Account, EmailOutbox, IntegrationProvider

log = logging.getLogger("billhook.emails")

SENT = "sent"
ALREADY_DONE = "already_done"
MISSING = "missing"
FAILED = "failed"
RETRY = "retry"


class Mailer(Protocol):
    name: str

    def send(self, email: OutgoingEmail) -> str: ...


class LogMailer:
    """No Resend, no SMTP: say so in the log. The body (links, names) only at debug level."""

    name = "log"

    def send(self, email: OutgoingEmail) -> str:
        message_id = f"log-{email.tags.get('outbox') if email.tags else email.idempotency_key}"
        log_line(
            log,
            "email written to the log (no Resend or SMTP configured)",
            backend=self.name,
            subject=email.subject,
            key=email.idempotency_key,
            message_id=message_id,
        )
        log_line(log, "email body", level=logging.DEBUG, to=email.recipient, text=email.text)
        return message_id


@dataclass(frozen=True)
class SendResult:
    outcome: str
    backend: str | None = None
    template: str | None = None
    account_id: str | None = None
    message_id: str | None = None
    error: str | None = None


def mailer_for(provider: IntegrationProvider | None, settings: Settings) -> Mailer:
    """The backend for a send, given the `resend` providers row (or None)."""
    if resend_provider.is_configured(provider):
        return ResendMailer.from_provider(provider, settings)
    if settings.smtp_host:
        config = (provider.config if provider else None) or {}
        return SmtpMailer(
            settings.smtp_host,
            settings.smtp_port,
            sender=config.get("from") or DEFAULT_SENDER,
            reply_to=config.get("reply_to") or None,
        )
    return LogMailer()


class _Unread:
    """`send_outbox_email`'s default: the providers row is read in the send's transaction."""


UNREAD = _Unread()


def read_provider(session_factory: sessionmaker[Session]) -> IntegrationProvider | None:
    """The `resend` providers row (or None), read once for a batch of sends: it is loaded, then
    detached, and names the backend of every send of the batch."""
    with session_factory() as session:
        return get_provider(session, resend_provider.PROVIDER)


def send_outbox_email(
    session_factory: sessionmaker[Session],
    outbox_id: int,
    *,
    settings: Settings,
    clock: Callable[[], datetime],
    provider: IntegrationProvider | None | _Unread = UNREAD,
) -> SendResult:
    """Send a pending row once. A retryable failure leaves it pending with the error and returns
    RETRY (the caller schedules the retry); a permanent one marks it failed. `provider` is the
    providers row a batch read once (`read_provider`); by default the send reads it."""
    with session_factory.begin() as session:
        row = outbox.lock_row(session, outbox_id)
        result, changes = _send(session, row, settings=settings, clock=clock, provider=provider)
        if changes:
            outbox.write_send(session, row, **changes)
    return result


def send_outbox_emails(
    session_factory: sessionmaker[Session],
    outbox_ids: list[int],
    *,
    settings: Settings,
    clock: Callable[[], datetime],
    provider: IntegrationProvider | None,
) -> dict[int, SendResult] | None:
    """`send_outbox_email` for several rows in one transaction: locked in one statement (in id
    order, so two batches sharing a row wait for each other, never deadlock), sent one after the
    other, their outcomes written together and committed once, where a row of its own costs a
    BEGIN, a lock, an UPDATE and a COMMIT. A death before the commit leaves every row of the batch
    pending, each sent again later with the same key (which the module's docstring says of one
    row). The results by id, in order, each id once; None when the transaction failed (it rolled
    back, and the caller sends each row alone)."""
    results: dict[int, SendResult] = {}
    try:
        with session_factory.begin() as session:
            rows = outbox.lock_rows(session, outbox_ids)
            writes = []
            for outbox_id in dict.fromkeys(outbox_ids):  # a row given twice is sent once
                row = rows.get(outbox_id)
                results[outbox_id], changes = _send(session, row, settings=settings, clock=clock, provider=provider)
                if changes:
                    writes.append((row, changes))
            outbox.write_sends(session, writes)
    except Exception as exc:  # noqa: BLE001 - each row is sent again alone, and its error handled there
        log_line(log, "email batch sent singly", level=logging.INFO, emails=len(outbox_ids), error=type(exc).__name__)
        return None
    return results


def _send(
    session: Session,
    row: EmailOutbox | None,
    *,
    settings: Settings,
    clock: Callable[[], datetime],
    provider: IntegrationProvider | None | _Unread,
) -> tuple[SendResult, dict | None]:
    """The send of a locked row, and the columns its outcome writes (None: nothing to write).

    The outcome is written by one UPDATE (`outbox.write_send`), never an ORM flush: a second
    UPDATE of a row this transaction already updated makes PostgreSQL re-check its account
    foreign key (FOR KEY SHARE on the account), which deadlocks with a handler that holds the
    account's lock while queuing the same idempotency key."""
    if row is None:
        return SendResult(MISSING), None
    if row.status != outbox.PENDING:
        return SendResult(ALREADY_DONE, row.backend, row.template, row.account_id, row.provider_message_id), None
    attempt = {"attempts": row.attempts + 1}
    now = clock()
    try:
        if isinstance(provider, _Unread):
            provider = get_provider(session, resend_provider.PROVIDER)  # read once: it names the backend too
        if not row.recipient:
            attempt["recipient"] = _account_address(session, row)
        email = _outgoing(row, attempt.get("recipient", row.recipient), settings, provider)
        mailer = mailer_for(provider, settings)
        message_id = mailer.send(email)
    except ProviderError as exc:
        error = str(exc)[:4000]  # names the backend: "resend: 429 rate_limit_exceeded: ..."
        outcome, written = (RETRY, {"last_error": error}) if exc.retryable else (FAILED, _failed(error))
        return SendResult(outcome, exc.provider, row.template, row.account_id, error=error), {**attempt, **written}
    except (TemplateError, KeyError) as exc:
        error = f"cannot render {row.template}: {type(exc).__name__}: {exc}"[:4000]
        return SendResult(FAILED, None, row.template, row.account_id, error=error), {**attempt, **_failed(error)}
    sent = {
        **attempt,
        "status": outbox.SENT,
        "backend": mailer.name,
        "provider_message_id": message_id[:200],
        "sent_at": now,
        "last_error": None,
        "next_attempt_at": None,
    }
    return SendResult(SENT, mailer.name, row.template, row.account_id, message_id), sent


def schedule_retry(session_factory: sessionmaker[Session], outbox_id: int, *, at: datetime) -> None:
    """Note when the retry is due, so the sweep leaves the row to its countdown."""
    with session_factory.begin() as session:
        row = outbox.lock_row(session, outbox_id)
        if row is not None and row.status == outbox.PENDING:
            outbox.write_send(session, row, next_attempt_at=at)


def mark_failed(session_factory: sessionmaker[Session], outbox_id: int, error: str) -> None:
    """Give up on a row (retries exhausted); `billhook emails retry` can make it pending again."""
    with session_factory.begin() as session:
        row = outbox.lock_row(session, outbox_id)
        if row is not None and row.status == outbox.PENDING:
            outbox.write_send(session, row, **_failed(error))


def _failed(error: str) -> dict:
    """A send's columns for a row that failed for good."""
    return {"status": outbox.FAILED, "last_error": error[:4000], "next_attempt_at": None}


def _account_address(session: Session, row: EmailOutbox) -> str:
    """The address of a row queued before billhook knew it, from the account."""
    account = session.get(Account, row.account_id) if row.account_id else None
    if account is None or not account.email:
        # The event naming the address may still be on its way: retry, then fail for ops to see.
        raise ProviderError("outbox", "no email address known for the account yet", retryable=True)
    return account.email


def _outgoing(
    row: EmailOutbox, recipient: str, settings: Settings, provider: IntegrationProvider | None
) -> OutgoingEmail:
    product_name = ((provider.config if provider else None) or {}).get("product_name") or "billhook"
    rendered = render(row.template, row.context or {}, product_name=product_name, app_url=settings.frontend_url)
    return OutgoingEmail(
        recipient=recipient,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        idempotency_key=row.idempotency_key,
        tags={"template": row.template, "outbox": str(row.id)},
    )
