from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.models.base import Base, utcnow


class Plan(Base):
    """A subscription plan. Money is in minor units of `currency`.

    The policy columns (trial and grace days, features) are business rules operators change with
    `billhook catalog set`, not code."""

    __tablename__ = "plans"
    __table_args__ = (
        CheckConstraint("price_cents >= 0", name="price_not_negative"),
        CheckConstraint("trial_days >= 0", name="trial_days_not_negative"),
        CheckConstraint("past_due_grace_days >= 0", name="grace_days_not_negative"),
        CheckConstraint("upgrade_credits IN ('none', 'difference')", name="upgrade_credits_policy"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    price_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    interval: Mapped[str] = mapped_column(String(16), default="month")
    included_credits: Mapped[int]
    stripe_price_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    paypal_plan_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    active: Mapped[bool] = mapped_column(default=True)
    sort_order: Mapped[int] = mapped_column(default=0)
    # What the plan entitles to, as the main app reads it: {"seats": 5, "api": true}.
    features: Mapped[dict] = mapped_column(default=dict)
    trial_days: Mapped[int] = mapped_column(default=0)
    past_due_grace_days: Mapped[int] = mapped_column(default=7)
    # Credits on an upgrade to this plan mid-period: "none", or "difference" (this plan's included
    # credits less the old plan's), prorated by the time left in the period when `prorate_upgrades`.
    upgrade_credits: Mapped[str] = mapped_column(String(16), default="none", server_default="none")
    prorate_upgrades: Mapped[bool] = mapped_column(default=False, server_default=false())
    earlier_stripe_prices: Mapped[list[PlanStripePrice]] = relationship(
        back_populates="plan", cascade="all, delete-orphan"
    )


class PlanStripePrice(Base):
    """A Stripe Price a plan was sold at before its current one. Prices are immutable at Stripe, so
    a new price is a new Price; subscribers stay on the old one, and their renewals must still
    resolve to the plan."""

    __tablename__ = "plan_stripe_prices"

    price_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    retired_at: Mapped[datetime] = mapped_column(default=utcnow)
    plan: Mapped[Plan] = relationship(back_populates="earlier_stripe_prices")


class CreditPackage(Base):
    """A one-off purchase of credits."""

    __tablename__ = "credit_packages"
    __table_args__ = (
        CheckConstraint("price_cents >= 0", name="price_not_negative"),
        CheckConstraint("credits > 0", name="credits_positive"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    credits: Mapped[int]
    price_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    stripe_price_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    active: Mapped[bool] = mapped_column(default=True)
    sort_order: Mapped[int] = mapped_column(default=0)
