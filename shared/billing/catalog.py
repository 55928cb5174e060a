"""Plans and credit packages: lookups, edits and the seed.

Each plan and package has a documented Stripe `lookup_key` (`billhook_plan_<id>_<interval>ly`,
`billhook_package_<id>`), so an account's own Prices can be found and mapped to the catalog
(`billhook catalog sync stripe`) instead of hard-coding price ids."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from shared.db import forget_reads, read_once
from shared.models import CreditPackage, Plan, PlanStripePrice

PLAN = "plan"
PACKAGE = "package"
KINDS = (PLAN, PACKAGE)

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
    """The plan sold at this Price now, or at an earlier Price its subscribers still pay; read
    once a transaction (`read_once`: a batch's events share the lookup)."""
    if not price_id:
        return None
    return read_once(session, (Plan, "stripe_price", price_id), lambda: _plan_by_stripe_price(session, price_id))


def _plan_by_stripe_price(session: Session, price_id: str) -> Plan | None:
    plan = session.scalars(_PLAN_BY_STRIPE_PRICE, {"price_id": price_id}).one_or_none()
    if plan is None:
        retired = session.get(PlanStripePrice, price_id)
        plan = retired.plan if retired is not None else None
    return plan


def package_by_stripe_price(session: Session, price_id: str | None) -> CreditPackage | None:
    if not price_id:
        return None
    return session.scalars(select(CreditPackage).filter_by(stripe_price_id=price_id)).one_or_none()


# -- lookup keys and edits --------------------------------------------------------------------

_INTERVAL_WORDS = {"day": "daily", "week": "weekly", "month": "monthly", "year": "yearly"}


def plan_lookup_key(plan: Plan) -> str:
    """`billhook_plan_starter_monthly`: the Stripe Price lookup key billhook maps to this plan."""
    return f"billhook_plan_{plan.id}_{_INTERVAL_WORDS.get(plan.interval, plan.interval)}"


def package_lookup_key(package: CreditPackage) -> str:
    return f"billhook_package_{package.id}"


def lookup_key(item: Plan | CreditPackage) -> str:
    return plan_lookup_key(item) if isinstance(item, Plan) else package_lookup_key(item)


def all_items(session: Session) -> list[Plan | CreditPackage]:
    """Every plan then every package, active or not, in the catalog's order."""
    plans = session.scalars(select(Plan).order_by(Plan.sort_order, Plan.id))
    packages = session.scalars(select(CreditPackage).order_by(CreditPackage.sort_order, CreditPackage.id))
    return [*plans, *packages]


def get_item(session: Session, kind: str, item_id: str) -> Plan | CreditPackage | None:
    return session.get(Plan if kind == PLAN else CreditPackage, item_id)


def kind_of(item: Plan | CreditPackage) -> str:
    return PLAN if isinstance(item, Plan) else PACKAGE


def describe(item: Plan | CreditPackage) -> dict:
    """A plan or package as `catalog list/show` print it."""
    shown = {
        "kind": kind_of(item),
        "id": item.id,
        "name": item.name,
        "price_cents": item.price_cents,
        "currency": item.currency,
        "active": item.active,
        "stripe_price_id": item.stripe_price_id,
        "lookup_key": lookup_key(item),
    }
    if isinstance(item, Plan):
        shown.update(
            interval=item.interval,
            credits=item.included_credits,
            paypal_plan_id=item.paypal_plan_id,
            features=item.features or {},
            trial_days=item.trial_days,
            past_due_grace_days=item.past_due_grace_days,
            upgrade_credits=item.upgrade_credits,
            prorate_upgrades=item.prorate_upgrades,
            earlier_stripe_price_ids=sorted(p.price_id for p in item.earlier_stripe_prices),
        )
    else:
        shown["credits"] = item.credits
    return shown


def set_stripe_price(session: Session, item: Plan | CreditPackage, price_id: str | None) -> None:
    """Point a plan or package at another Stripe Price. A plan keeps its former Price, because
    subscribers who bought it renew at it until they change plans."""
    former = item.stripe_price_id
    if former == price_id:
        return
    if isinstance(item, Plan) and former and session.get(PlanStripePrice, former) is None:
        session.add(PlanStripePrice(price_id=former, plan_id=item.id))
    if isinstance(item, Plan) and price_id:
        retired = session.get(PlanStripePrice, price_id)
        if retired is not None:
            session.delete(retired)  # back on an earlier Price: it is current again
    item.stripe_price_id = price_id
    session.flush()
    forget_reads(session)  # a Price looked up before in this transaction may name another plan now
