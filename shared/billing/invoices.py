"""billhook's numbered invoices and credit notes.

Numbers run without gaps per year and series (`2026-000123`, `CN-2026-000007`): a counter row per
(series, year) is bumped by an upsert ... RETURNING inside the transaction that issues the
document, so concurrent issuers queue on the row lock and a rollback gives the number back. A
transaction of several events numbers its invoices at its commit (`number_at_commit`), so it holds
that lock for the commit, not for all its events.
Invoices numbered before the counter existed (`BH-2026-000042`, from the row id) keep their number.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, bindparam, event, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shared.db import flushed_connection, held_in_transaction, insert_ignore_row, insert_row, update_loaded_many
from shared.models import CreditNote, EmailOutbox, Invoice, InvoiceCounter, Payment

INVOICE_SERIES = "invoice"
CREDIT_NOTE_SERIES = "credit_note"
REFUND = "refund"
DISPUTE_LOST = "dispute_lost"
REJECTED = "rejected"
REVERSAL = "reversal"  # the provider took the money back without a dispute (PayPal's reversals)
_PREFIX = {INVOICE_SERIES: "", CREDIT_NOTE_SERIES: "CN-"}


@functools.cache
def _take_stmt(dialect_name: str):
    """One statement taking `n` numbers: the year's first ones start the counter at `n`, any later
    ones bump it by `n` (INSERT ... ON CONFLICT DO UPDATE ... RETURNING the last number taken,
    PostgreSQL and SQLite alike)."""
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect_name]
    stmt = insert(InvoiceCounter).values(series=bindparam("s"), year=bindparam("y"), last_number=bindparam("n"))
    return stmt.on_conflict_do_update(
        index_elements=[InvoiceCounter.series, InvoiceCounter.year],
        set_={"last_number": InvoiceCounter.last_number + stmt.excluded.last_number},
    ).returning(InvoiceCounter.last_number)


def take_number(session: Session, series: str, year: int) -> str:
    """The next number of the series for the year, held by this transaction until it ends."""
    (number,) = take_numbers(session, series, year, 1)
    return number


def take_numbers(session: Session, series: str, year: int, count: int) -> list[str]:
    """The next `count` numbers of the series for the year, in order, in one statement."""
    connection = flushed_connection(session)
    last = connection.execute(_take_stmt(connection.dialect.name), {"s": series, "y": year, "n": count}).scalar_one()
    return [f"{_PREFIX[series]}{year}-{taken:06d}" for taken in range(last - count + 1, last + 1)]


# In the transaction's record (`held_in_transaction`): the invoices awaiting their number at the
# commit, when the transaction asked for that (`number_at_commit`).
_AT_COMMIT = (Invoice, "numbered_at_commit")


@dataclass
class _Unnumbered:
    invoice: Invoice
    year: int
    # Queued emails that show the number: (outbox id, its context), filled in with it.
    emails: list[tuple[int, dict]] = field(default_factory=list)


def number_at_commit(session: Session) -> None:
    """The invoices this transaction issues get their numbers at its commit, all in one statement,
    in the order issued: the series' counter row, which every issuer queues on, is then held for
    the commit only. For a transaction of several events (the worker's batches); until the
    commit such an invoice's `number` is None, and the emails that show it get it then
    (`show_number_in_email`)."""
    held_in_transaction(session)[_AT_COMMIT] = {}


def show_number_in_email(session: Session, invoice: Invoice, outbox_id: int, context: dict) -> None:
    """The queued email `outbox_id`, whose `context` shows the invoice's number, gets it at the
    commit if the invoice is numbered then (nothing to do otherwise: it has it)."""
    awaiting = held_in_transaction(session).get(_AT_COMMIT)
    if awaiting and invoice.id in awaiting:
        awaiting[invoice.id].emails.append((outbox_id, context))


@event.listens_for(Session, "before_commit")
def _number_invoices(session: Session) -> None:
    """Before the commit of a transaction that numbers at its commit: its invoices' numbers, one
    statement a year (one in practice), written to them and to the emails that show them."""
    if session.in_nested_transaction():
        return
    awaiting = held_in_transaction(session).pop(_AT_COMMIT, None)
    if not awaiting:
        return
    numbered, emails = [], []
    for year in sorted({pending.year for pending in awaiting.values()}):
        pending = [p for p in awaiting.values() if p.year == year]
        for p, number in zip(pending, take_numbers(session, INVOICE_SERIES, year, len(pending)), strict=True):
            numbered.append((p.invoice, {"number": number}))
            emails += [
                {"row_key": outbox_id, "new_context": {**context, "invoice_number": number}}
                for outbox_id, context in p.emails
            ]
    update_loaded_many(session, numbered)
    if emails:
        session.connection().execute(_EMAIL_CONTEXT, emails if len(emails) > 1 else emails[0])


_OUTBOX = EmailOutbox.__table__
_EMAIL_CONTEXT = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_key"))
    .values(context=bindparam("new_context", type_=_OUTBOX.c.context.type))
)


def issue_invoice(
    session: Session,
    payment: Payment,
    *,
    provider: str,
    provider_invoice_id: str | None,
    amount_cents: int,
    line_items: list,
    at: datetime,
    hosted_url: str | None = None,
) -> Invoice:
    """The payment's invoice, numbered now (or at the commit: `number_at_commit`). The caller
    makes sure the payment has none yet."""
    awaiting = held_in_transaction(session).get(_AT_COMMIT)
    invoice = insert_row(
        session,
        Invoice,
        {
            "number": None if awaiting is not None else take_number(session, INVOICE_SERIES, at.year),
            "account_id": payment.account_id,
            "payment_id": payment.id,
            "provider": provider,
            "provider_invoice_id": provider_invoice_id,
            "amount_cents": amount_cents,
            "currency": payment.currency,
            "line_items": line_items,
            "hosted_url": _safe_link(hosted_url),
            "issued_at": at,
        },
    )
    held_in_transaction(session)[(Invoice, payment.id)] = invoice  # the receipt email reads it next
    if awaiting is not None:
        awaiting[invoice.id] = _Unnumbered(invoice, at.year)
    return invoice


def _safe_link(url: str | None) -> str | None:
    """Only an https link that fits is shown to the customer; anything else is left out."""
    if isinstance(url, str) and url.startswith("https://") and len(url) <= 500:
        return url
    return None


def issue_credit_note(
    session: Session, invoice: Invoice, *, reason: str, amount_cents: int, idempotency_key: str, at: datetime
) -> CreditNote | None:
    """A credit note against the invoice, once per key; numbered only when it is new (a duplicate
    takes no number, so none is skipped). The notes of an invoice never add up to more than it (a
    reversal and a lost dispute of one payment credit it once). Returns the new note, or None when
    the key was used or nothing is left to credit. The caller holds the invoice's account lock."""
    amount_cents = min(amount_cents, invoice.amount_cents - credited(session, invoice.id))
    if amount_cents <= 0:
        return None
    note = insert_ignore_row(
        session,
        CreditNote,
        {
            "invoice_id": invoice.id,
            "account_id": invoice.account_id,
            "reason": reason,
            "amount_cents": amount_cents,
            "currency": invoice.currency,
            "idempotency_key": idempotency_key[:200],
            "issued_at": at,
        },
        ["idempotency_key"],
    )
    if note is not None:
        note.number = take_number(session, CREDIT_NOTE_SERIES, at.year)
    return note


_CREDITED = select(func.coalesce(func.sum(CreditNote.amount_cents), 0)).where(
    CreditNote.invoice_id == bindparam("invoice_id")
)


def credited(session: Session, invoice_id: int) -> int:
    """What the invoice's credit notes add up to."""
    return session.scalar(_CREDITED, {"invoice_id": invoice_id})


def invoices_of_account(
    session: Session, account_id: str, limit: int = 100, *, before: tuple[datetime, int] | None = None
) -> list[Invoice]:
    """The account's invoices, newest first; with `before` = (issued_at, id) of the previous
    page's last invoice, those after it in that order (keyset paging: an invoice issued while a
    client pages through shifts nothing)."""
    stmt = select(Invoice).filter_by(account_id=account_id)
    if before is not None:
        issued_at, invoice_id = before
        stmt = stmt.where(
            or_(Invoice.issued_at < issued_at, and_(Invoice.issued_at == issued_at, Invoice.id < invoice_id))
        )
    stmt = stmt.order_by(Invoice.issued_at.desc(), Invoice.id.desc())
    return list(session.scalars(stmt.limit(limit)))


def find_by_number(session: Session, account_id: str, number: str) -> Invoice | None:
    """The account's invoice with this number; another account's is not found."""
    return session.scalars(select(Invoice).filter_by(account_id=account_id, number=number)).one_or_none()


def credit_notes_of(session: Session, invoice_ids: list[int]) -> dict[int, list[CreditNote]]:
    notes: dict[int, list[CreditNote]] = {i: [] for i in invoice_ids}
    if invoice_ids:
        stmt = select(CreditNote).where(CreditNote.invoice_id.in_(invoice_ids)).order_by(CreditNote.id)
        for note in session.scalars(stmt):
            notes[note.invoice_id].append(note)
    return notes
