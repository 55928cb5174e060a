"""One multi-account lifecycle (checkout, renewals, a mid-period upgrade, failed payments,
cancellations, credit purchases, duplicate deliveries) rendered in 2024-06-20 shapes and in the
current ones: both end with the balances, plans and statuses the lifecycle adds up to."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from shared import processing
from shared.billing import ledger
from shared.billing.catalog import SEED_PACKAGES, SEED_PLANS
from shared.models import Subscription
from tests.factories import stripe_events as se
from tests.shared.stripe.handlers.support import store

ACCOUNTS = 12
DUPLICATE_SHARE = 0.3
PERIOD = 30 * 86_400
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


@dataclass
class Expected:
    balance: int = 0
    plan_id: str = ""
    status: str = "incomplete"


def lifecycle(rng: random.Random, tag: str, api_version: str) -> tuple[list[dict], Expected]:
    """One account's events in `api_version`, and what they must add up to."""
    account_id, customer, sub_id = f"acct_{tag}", f"cus_{tag}", f"sub_{tag}"
    plan = rng.choice(SEED_PLANS[:2])
    upgrade_to = SEED_PLANS[2]
    exp = Expected(plan_id=plan["id"])
    meta = {"account_id": account_id, "plan_id": plan["id"]}
    events: list[dict] = []
    v = {"api_version": api_version}

    def add(event_type: str, obj: dict, created: int) -> None:
        events.append(se.event(event_type, obj, created=created, **v))

    def invoice(start: int, reason: str, price: dict, **fields) -> dict:
        return se.invoice(
            subscription_id=sub_id,
            customer=customer,
            price_id=price["stripe_price_id"],
            amount=price["price_cents"],
            period_start=start,
            period_end=start + PERIOD,
            billing_reason=reason,
            metadata={**meta, "plan_id": price["id"]},
            payment_intent=se.unique("pi"),
            **v,
            **fields,
        )

    def subscription(start: int, price: dict, status: str = "active", **fields) -> dict:
        return se.subscription(
            subscription_id=sub_id,
            customer=customer,
            price_id=price["stripe_price_id"],
            status=status,
            period_start=start,
            period_end=start + PERIOD,
            metadata=meta,
            **v,
            **fields,
        )

    checkout = se.checkout_session(
        account_id=account_id, mode="subscription", plan_id=plan["id"], customer=customer, subscription=sub_id
    )
    add("checkout.session.completed", checkout, T0)
    add("invoice.paid", invoice(T0, "subscription_create", plan), T0 + 5)
    add("customer.subscription.updated", subscription(T0, plan), T0 + 10)
    exp.balance += plan["included_credits"]
    exp.status = "active"

    renewals = rng.randint(2, 5)
    upgrade_at = rng.choice([None, *range(1, renewals + 1)])
    for r in range(1, renewals + 1):
        start = T0 + r * PERIOD
        if rng.random() < 0.3:
            add("invoice.payment_failed", invoice(start, "subscription_cycle", plan, status="open"), start + 1)
        add("invoice.paid", invoice(start, "subscription_cycle", plan), start + 5)
        exp.balance += plan["included_credits"]
        if r == upgrade_at:
            # Mid-period: the new price from now on, prorations paid, no new period of credits.
            changed = start + 10 * 86_400
            add("customer.subscription.updated", subscription(start, upgrade_to), changed)
            prorations = invoice(start, "subscription_update", upgrade_to, proration=True)
            se.add_line(
                prorations,
                price_id=plan["stripe_price_id"],
                amount=-plan["price_cents"] // 2,
                period_start=changed,
                period_end=start + PERIOD,
                proration=True,
                **v,
            )
            add("invoice.paid", prorations, changed + 1)
            plan, exp.plan_id = upgrade_to, upgrade_to["id"]
    end = T0 + (renewals + 1) * PERIOD - 3600
    if rng.random() < 0.4:
        add("customer.subscription.deleted", subscription(end - PERIOD, plan, "canceled", canceled_at=end), end)
        exp.status = "canceled"

    for k in range(rng.choice((0, 1, 2))):
        package = rng.choice(SEED_PACKAGES)
        purchase = se.checkout_session(
            account_id=account_id, mode="payment", package_id=package["id"], customer=customer, price_cents=None
        )
        add("checkout.session.completed", purchase, T0 + 3600 * (k + 1))
        exp.balance += package["credits"]
    return events, exp


def deliveries(rng: random.Random, events: list[dict]) -> list[dict]:
    """Every event once, in order, with duplicates: Stripe's retries of the same event, and the
    same object again under a new event id (a resent or reconciled event)."""
    out: list[dict] = []
    for evt in events:
        out.append(evt)
        if rng.random() < DUPLICATE_SHARE:
            out.append(evt if rng.random() < 0.5 else {**evt, "id": se.unique("evt")})
    return out


def play(session_factory, api_version: str, now) -> tuple[dict[str, Expected], dict[str, Expected]]:
    rng = random.Random(16)
    expected: dict[str, Expected] = {}
    stream: list[dict] = []
    for n in range(ACCOUNTS):
        events, exp = lifecycle(rng, f"life{n:02d}", api_version)
        expected[f"acct_life{n:02d}"] = exp
        stream.extend(deliveries(rng, events))
    reasons = {e["data"]["object"].get("billing_reason") for e in stream}
    types = {e["type"] for e in stream}
    assert {"invoice.payment_failed", "customer.subscription.deleted"} <= types and "subscription_update" in reasons
    assert len({e["id"] for e in stream}) < len(stream)  # some deliveries repeat an event
    outcomes = set()
    for evt in stream:
        result = processing.process_event(session_factory, store(session_factory, evt, now), clock=lambda: now)
        outcomes.add(result.outcome)
    assert outcomes <= {processing.DONE, processing.ALREADY_DONE}
    got = {}
    with session_factory() as session:
        for account_id in expected:
            sub = session.scalars(select(Subscription).filter_by(account_id=account_id)).one()
            got[account_id] = Expected(ledger.balance(session, account_id), sub.plan_id, sub.status)
    return expected, got


@pytest.mark.parametrize("api_version", [se.PRE_BASIL, se.CURRENT])
def test_the_same_lifecycle_adds_up_in_either_eras_shapes(seeded, now, api_version):
    expected, got = play(seeded, api_version, now)

    wrong = {a: (got[a], e) for a, e in expected.items() if got[a] != e}
    assert not wrong, f"{len(wrong)} of {len(expected)} accounts wrong in {api_version}: {wrong}"
