from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, utcnow


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for an attempt (or its retry)
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # retried for the whole window, or the endpoint is gone: waits for an operator


class OutgoingEndpoint(Base):
    """A URL of the main app's that billhook sends signed events to (Standard Webhooks)."""

    __tablename__ = "outgoing_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(200))
    # Event types sent here; empty: every type.
    event_types: Mapped[list] = mapped_column(default=list)
    # Loopback and private addresses allowed (a receiver on the same host or network).
    allow_private: Mapped[bool] = mapped_column(default=False)
    enabled: Mapped[bool] = mapped_column(default=True)
    secret: Mapped[str] = mapped_column(String(200))
    # After a rotation the old secret signs too, until `previous_secret_expires_at`.
    previous_secret: Mapped[str | None] = mapped_column(String(200))
    previous_secret_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OutgoingEvent(Base):
    """A billing state change for the main app, written in the same transaction as the change.

    `idempotency_key` names the change (a ledger entry, a payment and its status, a subscription
    and the provider event), so a replayed provider event writes none twice; `sequence` counts an
    account's events without gaps (allocated under the account's row lock)."""

    __tablename__ = "outgoing_events"
    __table_args__ = (UniqueConstraint("account_id", "sequence"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(250), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    type: Mapped[str] = mapped_column(String(64))
    sequence: Mapped[int]
    # The body sent, as it is sent (see docs/schemas/outgoing-event.v1.json).
    body: Mapped[dict]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutgoingDelivery(Base):
    """One event to one endpoint, retried until a 2xx or the end of the retry window."""

    __tablename__ = "outgoing_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_outgoing_deliveries_status_next_attempt", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("outgoing_events.id"), index=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("outgoing_endpoints.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    # The retry window runs from here (an operator's retry starts a new window).
    first_attempt_at: Mapped[datetime | None]
    # When the next attempt is due; the sweeper re-queues a pending row a grace after it.
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
