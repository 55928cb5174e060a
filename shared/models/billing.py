from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, utcnow


class Subscription(Base):
    """A provider subscription and the state billhook derived from its events.

    `last_event_at` is the high-water mark: an event created before it changes nothing.
    """

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("provider", "provider_subscription_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    provider: Mapped[str] = mapped_column(String(16))
    provider_subscription_id: Mapped[str] = mapped_column(String(100))
    plan_id: Mapped[str | None] = mapped_column(ForeignKey("plans.id"))
    status: Mapped[str] = mapped_column(String(32))
    current_period_start: Mapped[datetime | None]
    current_period_end: Mapped[datetime | None]
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False)
    canceled_at: Mapped[datetime | None]
    last_event_at: Mapped[datetime | None]
    last_event_id: Mapped[str | None] = mapped_column(String(100))
    # When the current past_due spell began (the grace runs from here); None when not past_due.
    past_due_since: Mapped[datetime | None]
    # When that spell's grace ended and `subscription.lapsed` was recorded.
    lapsed_at: Mapped[datetime | None]
    # When the provider created it (Stripe's `created`): of two live subscriptions of one account,
    # the later is the duplicate.
    provider_created_at: Mapped[datetime | None]
    # Set when this subscription went live while the account had another (the earlier one): it
    # grants nothing, and ops see it until it is canceled.
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("subscriptions.id", ondelete="SET NULL"))
    # The upgrade-credit budget of the current period (shared/billing/upgrades.py): the period it
    # is for, the included credits of the plan the period began on and of the highest plan reached,
    # and the upgrade credits granted so far in it.
    credits_period_start: Mapped[datetime | None]
    period_base_credits: Mapped[int | None]
    period_peak_credits: Mapped[int | None]
    period_upgrade_credits: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Payment(Base):
    """Money received (or attempted) from a provider: one row per provider payment."""

    __tablename__ = "payments"
    __table_args__ = (UniqueConstraint("provider", "provider_payment_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    provider: Mapped[str] = mapped_column(String(16))
    provider_payment_id: Mapped[str] = mapped_column(String(100))
    # The provider's charge-level id (Stripe PaymentIntent, PayPal capture): refunds name it.
    provider_charge_ref: Mapped[str | None] = mapped_column(String(100), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # subscription | credit_package
    status: Mapped[str] = mapped_column(String(32))  # succeeded | failed | refunded | partially_refunded
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    amount_refunded_cents: Mapped[int] = mapped_column(default=0)
    credits_granted: Mapped[int] = mapped_column(default=0)
    plan_id: Mapped[str | None] = mapped_column(ForeignKey("plans.id"))
    package_id: Mapped[str | None] = mapped_column(ForeignKey("credit_packages.id"))
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("subscriptions.id"))
    failure_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Invoice(Base):
    """billhook's own numbered invoice for a payment."""

    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("provider", "provider_invoice_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str | None] = mapped_column(String(32), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), unique=True)
    provider: Mapped[str] = mapped_column(String(16))
    provider_invoice_id: Mapped[str | None] = mapped_column(String(100))
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    line_items: Mapped[list] = mapped_column(default=list)
    # paid, or for a manual payment: open until an operator decides, then paid or void.
    status: Mapped[str] = mapped_column(String(16), default="paid", server_default="paid")
    # What the customer reads on it: a manual payment's instructions (where to send the money).
    notes: Mapped[str | None] = mapped_column(Text)
    # The provider's own page for it (Stripe's hosted_invoice_url), where there is one.
    hosted_url: Mapped[str | None] = mapped_column(String(500))
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)


class CreditLedgerEntry(Base):
    """Append-only: a balance is the sum of an account's entries, never a stored number."""

    __tablename__ = "credit_ledger"
    __table_args__ = (Index("ix_credit_ledger_account_created", "account_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[int]
    kind: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(String(300))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), index=True)
    source_event_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_events.id"))
    # Who made an entry by hand (an adjustment, a manual payment's approval); None for events'.
    actor: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
