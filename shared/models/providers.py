from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, utcnow


class IntegrationProvider(Base):
    """Credentials and settings for one provider (stripe, paypal, resend)."""

    __tablename__ = "integration_providers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    api_key: Mapped[str | None] = mapped_column(Text)  # Stripe secret key, PayPal client id, Resend key
    api_secret: Mapped[str | None] = mapped_column(Text)  # PayPal client secret
    webhook_secrets: Mapped[list] = mapped_column(default=list)  # several, for rotation
    webhook_id: Mapped[str | None] = mapped_column(String(100))  # PayPal webhook id
    endpoint: Mapped[str | None] = mapped_column(String(300))
    config: Mapped[dict] = mapped_column(default=dict)
    sandbox: Mapped[bool] = mapped_column(default=True)
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
