"""billhook's numbered invoices and credit notes.

Numbers run without gaps per year and series (`2026-000123`, `CN-2026-000007`): a counter row per
(series, year) is bumped by an upsert ... RETURNING inside the transaction that issues the
document, so concurrent issuers queue on the row lock and a rollback gives the number back.
Invoices numbered before the counter existed (`BH-2026-000042`, from the row id) keep their number.
"""

from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shared.db import flushed_connection, held_in_transaction, insert_ignore_row, insert_row
from shared.models import CreditNote, Invoice, InvoiceCounter, Payment

INVOICE_SERIES = "invoice"
CREDIT_NOTE_SERIES = "credit_note"
REFUND = "refund"
DISPUTE_LOST = "dispute_lost"
REJECTED = "rejected"
REVERSAL = "reversal"  # the provider took the money back without a dispute (PayPal's reversals)
_PREFIX = {INVOICE_SERIES: "", CREDIT_NOTE_SERIES: "CN-"}


@functools.cache
def _take_stmt(dialect_name: str):
    """One statement: the year's first number starts the counter at 1, any later one bumps it
    (INSERT ... ON CONFLICT DO UPDATE ... RETURNING, PostgreSQL and SQLite alike)."""
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect_name]
    stmt = insert(InvoiceCounter).values(series=bindparam("s"), year=bindparam("y"), last_number=1)
    return stmt.on_conflict_do_update(
        index_elements=[InvoiceCounter.series, InvoiceCounter.year],
        set_={"last_number": InvoiceCounter.last_number + 1},
    ).returning(InvoiceCounter.last_number)


def take_number(session: Session, series: str, year: int) -> str:
    """The next number of the series for the year, held by this transaction until it ends."""
    connection = flushed_connection(session)
    taken = connection.execute(_take_stmt(connection.dialect.name), {"s": series, "y": year}).scalar_one()
    return f"{_PREFIX[series]}{year}-{taken:06d}"


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
    """The payment's invoice, numbered now. The caller makes sure the payment has none yet."""
    invoice = insert_row(
        session,
        Invoice,
        {
            "number": take_number(session, INVOICE_SERIES, at.year),
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
