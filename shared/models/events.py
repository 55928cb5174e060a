from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, utcnow


class EventStatus(StrEnum):
    RECEIVED = "received"  # waiting for a run (or its retry)
    SUCCEEDED = "succeeded"  # its effects are committed
    FAILED = "failed"  # failed for good (or dead-lettered): waits for an operator's replay
    IGNORED = "ignored"  # a type billhook has no handler for: kept, never queued


DONE_STATUSES = (EventStatus.SUCCEEDED, EventStatus.IGNORED)


class WebhookEvent(Base):
    """The inbox: every accepted delivery, stored before it is answered with 2xx."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        UniqueConstraint("provider", "event_id"),
        Index("ix_webhook_events_status_received", "status", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(100), index=True)
    payload: Mapped[dict]
    # When the provider created the event: the order events are applied in.
    event_created_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=EventStatus.RECEIVED)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    account_id: Mapped[str | None] = mapped_column(String(64), index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
