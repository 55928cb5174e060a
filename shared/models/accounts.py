from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, utcnow


class Account(Base):
    """A customer of the SaaS, keyed by the main app's own account id."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    low_credits_threshold: Mapped[int] = mapped_column(default=100)
    # The last outgoing event's sequence number (allocated under this row's lock: gapless).
    outgoing_sequence: Mapped[int] = mapped_column(default=0)
    # When the billing state last changed (set with each outgoing event): `changed_since` pages on it.
    billing_changed_at: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
