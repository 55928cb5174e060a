"""Plans and credit packages: lookups and the seed."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from shared.models import CreditPackage, Plan

SEED_PLANS = [
    {
        "id": "starter",
        "name": "Starter",
        "price_cents": 9900,
        "included_credits": 5_000,
        "stripe_price_id": "price_billhook_starter_monthly",
        "paypal_plan_id": "P-BILLHOOK-STARTER",
        "sort_order": 1,
    },
    {
        "id": "growth",
        "name": "Growth",
        "price_cents": 19900,
        "included_credits": 12_000,
        "stripe_price_id": "price_billhook_growth_monthly",
        "paypal_plan_id": "P-BILLHOOK-GROWTH",
        "sort_order": 2,
    },
    {
        "id": "scale",
        "name": "Scale",
        "price_cents": 29900,
        "included_credits": 20_000,
        "stripe_price_id": "price_billhook_scale_monthly",
        "paypal_plan_id": "P-BILLHOOK-SCALE",
        "sort_order": 3,
    },
]

SEED_PACKAGES = [
    {
        "id": "starter",
        "name": "Starter",
        "credits": 500,
        "price_cents": 999,
        "stripe_price_id": "price_billhook_credits_500",
        "sort_order": 1,
    },
    {
        "id": "value",
        "name": "Value",
        "credits": 2_000,
        "price_cents": 2999,
        "stripe_price_id": "price_billhook_credits_2000",
        "sort_order": 2,
    },
    {
        "id": "pro",
        "name": "Pro",
        "credits": 5_000,
        "price_cents": 5999,
        "stripe_price_id": "price_billhook_credits_5000",
        "sort_order": 3,
    },
    {
        "id": "enterprise",
        "name": "Enterprise",
        "credits": 15_000,
        "price_cents": 14999,
        "stripe_price_id": "price_billhook_credits_15000",
        "sort_order": 4,
    },
]


def seed_catalog(session: Session) -> tuple[int, int]:
    """Create the seed's plans and packages that are missing; existing rows are left as edited."""
    added_plans = _add_missing(session, Plan, SEED_PLANS)
    added_packages = _add_missing(session, CreditPackage, SEED_PACKAGES)
    return added_plans, added_packages


def _add_missing(session: Session, model: type, rows: list[dict]) -> int:
    added = 0
    for row in rows:
        if session.get(model, row["id"]) is None:
            session.add(model(**row))
            added += 1
    session.flush()
    return added


def active_plans(session: Session) -> list[Plan]:
    return list(session.scalars(select(Plan).filter_by(active=True).order_by(Plan.sort_order, Plan.id)))


def active_packages(session: Session) -> list[CreditPackage]:
    stmt = select(CreditPackage).filter_by(active=True).order_by(CreditPackage.sort_order, CreditPackage.id)
    return list(session.scalars(stmt))


_PLAN_BY_STRIPE_PRICE = select(Plan).where(Plan.stripe_price_id == bindparam("price_id"))  # built once: per invoice


def plan_by_stripe_price(session: Session, price_id: str | None) -> Plan | None:
    if not price_id:
        return None
    return session.scalars(_PLAN_BY_STRIPE_PRICE, {"price_id": price_id}).one_or_none()


def package_by_stripe_price(session: Session, price_id: str | None) -> CreditPackage | None:
    if not price_id:
        return None
    return session.scalars(select(CreditPackage).filter_by(stripe_price_id=price_id)).one_or_none()
