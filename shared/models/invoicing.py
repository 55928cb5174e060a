"""Gapless numbering for invoices and credit notes, and the credit notes themselves."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, utcnow


class InvoiceCounter(Base):
    """The last number taken in a series for a year. Taken by an UPDATE ... RETURNING in the
    transaction that issues the document, so a rollback gives the number back: no gaps."""

    __tablename__ = "invoice_counters"

    series: Mapped[str] = mapped_column(String(16), primary_key=True)  # invoice | credit_note
    year: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(default=0)


class CreditNote(Base):
    """A numbered credit against an invoice: a refund, a reversal, a lost dispute or a rejected
    manual payment. One per cause: `idempotency_key` is unique."""

    __tablename__ = "credit_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str | None] = mapped_column(String(32), unique=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    reason: Mapped[str] = mapped_column(String(32))  # refund | dispute_lost | rejected | reversal
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
