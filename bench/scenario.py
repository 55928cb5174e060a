"""Seeded, realistic Stripe and PayPal event streams and what they must add up to.

A Stripe account subscribes through Checkout (checkout.session.completed + the first invoice.paid,
which share one credit grant), gets a subscription update, renews for a few periods (sometimes a
failed payment first), may end with a cancellation, and buys credit packages (some refunded, and
with `disputes`, some disputed: a dispute opened, then won or lost).
With `paypal_share`, that share of the accounts subscribe through PayPal instead: activated
(BILLING.SUBSCRIPTION.ACTIVATED and the first PAYMENT.SALE.COMPLETED share one grant), renewed by
sales (sometimes after a BILLING.SUBSCRIPTION.PAYMENT.FAILED, a few reversed), maybe suspended or
cancelled at the end.
Every object comes from `tests/factories/` (Stripe's published fixtures, PayPal's documented
shapes), so the payloads have the providers' real shape and size. The same seed gives the same
events, the same delivery order and the same expectations.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.billing.catalog import SEED_PACKAGES, SEED_PLANS
from tests.factories import paypal_events as pe
from tests.factories import stripe_events as se

PERIOD = 30 * 24 * 3600
BASE_TIME = 1_767_225_600  # 2026-01-01T00:00:00Z: a fixed past, so the stream is reproducible


@dataclass
class Expected:
    """What the store must say about one account once every event is processed."""

    account_id: str
    subscription_id: str
    balance: int = 0
    subscription_grants: int = 0
    purchase_grants: int = 0
    reversals: int = 0
    disputes_lost: int = 0
    status: str = "incomplete"
    status_event_created: int = -1

    def saw_status(self, status: str, created: int) -> None:
        if created > self.status_event_created:
            self.status, self.status_event_created = status, created


@dataclass
class Scenario:
    seed: int
    events: list[dict]  # distinct events, in generation order
    deliveries: list[dict]  # events plus duplicate deliveries, shuffled
    expected: dict[str, Expected] = field(default_factory=dict)

    @property
    def duplicates(self) -> int:
        return len(self.deliveries) - len(self.events)


def generate(
    seed: int,
    distinct_events: int,
    *,
    duplicate_share: float,
    refunds: bool = True,
    prefix: str = "c",
    disputes: bool = False,
    paypal_share: float = 0.0,
) -> Scenario:
    """About `distinct_events` distinct events (whole accounts only), plus duplicate deliveries
    making up `duplicate_share` of all deliveries, in a shuffled order; `paypal_share` of the
    accounts subscribe through PayPal."""
    rng = random.Random(seed)
    events: list[dict] = []
    expected: dict[str, Expected] = {}
    n = 0
    while len(events) < distinct_events:
        tag = f"{prefix}{seed}x{n:05d}"
        if paypal_share and rng.random() < paypal_share:
            exp, account_events = _paypal_account(rng, tag)
        else:
            exp, account_events = _account(rng, tag, refunds, disputes)
        expected[exp.account_id] = exp
        events.extend(account_events)
        n += 1
    duplicates = round(len(events) * duplicate_share / (1 - duplicate_share))
    deliveries = events + [rng.choice(events) for _ in range(duplicates)]
    rng.shuffle(deliveries)
    return Scenario(seed, events, deliveries, expected)


def _account(rng: random.Random, tag: str, refunds: bool, disputes: bool) -> tuple[Expected, list[dict]]:
    account_id, customer, sub_id = f"acct_{tag}", f"cus_{tag}", f"sub_{tag}"
    plan = rng.choice(SEED_PLANS)
    exp = Expected(account_id, sub_id)
    events: list[dict] = []
    t0 = BASE_TIME + rng.randrange(0, 20 * 24 * 3600)
    meta = {"account_id": account_id, "plan_id": plan["id"]}

    def add(event_type: str, obj: dict, created: int, name: str) -> None:
        events.append(se.event(event_type, obj, created=created, event_id=f"evt_{tag}_{name}"))

    # Checkout completion and the first invoice share one grant (the initial period).
    add(
        "checkout.session.completed",
        se.checkout_session(
            account_id=account_id,
            mode="subscription",
            plan_id=plan["id"],
            customer=customer,
            subscription=sub_id,
            session_id=f"cs_{tag}_sub",
            email=f"{tag}@example.com",
        ),
        t0,
        "checkout",
    )
    exp.saw_status("active", t0)
    add("invoice.paid", _invoice(tag, sub_id, customer, plan, t0, 0, "subscription_create", meta), t0 + 5, "inv0")
    exp.saw_status("active", t0 + 5)
    exp.balance += plan["included_credits"]
    exp.subscription_grants += 1
    add("customer.subscription.updated", _subscription(sub_id, customer, plan, t0, "active", meta), t0 + 10, "upd0")
    exp.saw_status("active", t0 + 10)

    renewals = rng.randint(3, 12)
    for r in range(1, renewals + 1):
        start = t0 + r * PERIOD
        if rng.random() < 0.15:
            failed = _invoice(tag, sub_id, customer, plan, start, r, "subscription_cycle", meta, status="open")
            add("invoice.payment_failed", failed, start + 1, f"fail{r}")
            exp.saw_status("past_due", start + 1)
        paid = _invoice(tag, sub_id, customer, plan, start, r, "subscription_cycle", meta)
        add("invoice.paid", paid, start + 5, f"inv{r}")
        exp.saw_status("active", start + 5)
        exp.balance += plan["included_credits"]
        exp.subscription_grants += 1
    end = t0 + renewals * PERIOD + 3600
    ending = rng.random()
    if ending < 0.25:
        obj = _subscription(sub_id, customer, plan, end - 3600, "canceled", meta, canceled_at=end)
        add("customer.subscription.deleted", obj, end, "deleted")
        exp.saw_status("canceled", end)
    elif ending < 0.45:
        obj = _subscription(sub_id, customer, plan, end - 3600, "active", meta, cancel_at_period_end=True)
        add("customer.subscription.updated", obj, end, "updend")
        exp.saw_status("active", end)

    for k in range(rng.choice((0, 0, 1, 1, 2, 3))):
        package = rng.choice(SEED_PACKAGES)
        bought = t0 + rng.randrange(60, renewals * PERIOD)
        intent = f"pi_{tag}_{k}"
        checkout = se.checkout_session(
            account_id=account_id,
            mode="payment",
            package_id=package["id"],
            customer=customer,
            session_id=f"cs_{tag}_pkg{k}",
            payment_intent=intent,
            amount_total=package["price_cents"],
        )
        add("checkout.session.completed", checkout, bought, f"pkg{k}")
        exp.balance += package["credits"]
        exp.purchase_grants += 1
        if refunds and rng.random() < 0.1:
            charge = se.charge(
                payment_intent=intent,
                amount=package["price_cents"],
                amount_refunded=package["price_cents"],
                charge_id=f"ch_{tag}_{k}",
                customer=customer,
            )
            add("charge.refunded", charge, bought + 3600, f"refund{k}")
            exp.balance -= package["credits"]
            exp.reversals += 1
        elif disputes and rng.random() < 0.15:
            # Opened, then decided: a lost one keeps the credits taken back, a won one restores
            # them (or, when its closure is handled first, never takes them).
            outcome = rng.choice(("won", "lost"))
            dispute_id = f"du_{tag}_{k}"
            opened = se.dispute(payment_intent=intent, amount=package["price_cents"], dispute_id=dispute_id)
            add("charge.dispute.created", opened, bought + 7200, f"dispute{k}")
            closed = se.dispute(
                payment_intent=intent, amount=package["price_cents"], dispute_id=dispute_id, status=outcome
            )
            add("charge.dispute.closed", closed, bought + 14_400, f"closed{k}")
            if outcome == "lost":
                exp.balance -= package["credits"]
                exp.disputes_lost += 1
    return exp, events


def provider_of(evt: dict) -> str:
    """Which provider an event of the stream is from: PayPal's envelope names `event_type`."""
    return "paypal" if "event_type" in evt else "stripe"


def _paypal_account(rng: random.Random, tag: str) -> tuple[Expected, list[dict]]:
    """A PayPal subscription's life, in the shapes of tests/factories/paypal_events.py."""
    account_id, sub_id = f"acct_{tag}", f"I-{tag.upper()}"
    plan = rng.choice(SEED_PLANS)
    exp = Expected(account_id, sub_id)
    events: list[dict] = []
    t0 = BASE_TIME + rng.randrange(0, 20 * 24 * 3600)
    common = {"account_id": account_id, "plan_id": plan["id"], "paypal_plan_id": plan["paypal_plan_id"]}

    def at(seconds: int) -> datetime:
        return datetime.fromtimestamp(seconds, UTC)

    def add(event_type: str, resource: dict, created: int, name: str) -> None:
        events.append(pe.event(event_type, resource, created=at(created), event_id=f"WH-{tag}-{name}"))

    def sale(r: int, created: int) -> str:
        sale_id = f"{tag.upper()}S{r}"
        resource = pe.sale(
            subscription_id=sub_id, amount_cents=plan["price_cents"], created=at(created), sale_id=sale_id
        )
        add("PAYMENT.SALE.COMPLETED", resource, created, f"sale{r}")
        exp.saw_status("active", created)
        return sale_id

    start = {"subscription_id": sub_id, "start_time": at(t0), "amount_cents": plan["price_cents"]}
    activated = pe.subscription(**common, **start, next_billing_time=at(t0 + PERIOD))
    add("BILLING.SUBSCRIPTION.ACTIVATED", activated, t0, "activated")
    exp.saw_status("active", t0)
    sale(0, t0 + 20)  # the first period's payment: the activation's grant, not another
    exp.balance += plan["included_credits"]
    exp.subscription_grants += 1

    renewals = rng.randint(2, 8)
    for r in range(1, renewals + 1):
        due = t0 + r * PERIOD
        if rng.random() < 0.15:
            failed = pe.failed_subscription(**common, **start, cycles_completed=r, failed_at=at(due + 1))
            add("BILLING.SUBSCRIPTION.PAYMENT.FAILED", failed, due + 1, f"fail{r}")
            exp.saw_status("past_due", due + 1)
        sale_id = sale(r, due + 5)
        exp.balance += plan["included_credits"]
        exp.subscription_grants += 1
        if rng.random() < 0.05:  # PayPal took it back (a chargeback): its credits go, once
            reversal = pe.sale_reversal(sale_id=sale_id, amount_cents=plan["price_cents"], created=at(due + 3600))
            add("PAYMENT.SALE.REVERSED", reversal, due + 3600, f"reversed{r}")
            exp.balance -= plan["included_credits"]
            exp.reversals += 1
    end = t0 + renewals * PERIOD + 7200
    ending = rng.random()
    for event_type, status, share in (("CANCELLED", "canceled", 0.25), ("SUSPENDED", "paused", 0.45)):
        if ending < share:
            ended = pe.subscription(**common, **start, status=event_type, status_update_time=at(end))
            add(f"BILLING.SUBSCRIPTION.{event_type}", ended, end, event_type.lower())
            exp.saw_status(status, end)
            break
    return exp, events


def _invoice(tag, sub_id, customer, plan, start, r, reason, meta, status="paid") -> dict:
    return se.invoice(
        subscription_id=sub_id,
        customer=customer,
        price_id=plan["stripe_price_id"],
        amount=plan["price_cents"],
        period_start=start,
        period_end=start + PERIOD,
        billing_reason=reason,
        status=status,
        metadata=meta,
        invoice_id=f"in_{tag}_{r}",
        payment_intent=f"pi_{tag}_inv{r}",
    )


def _subscription(sub_id, customer, plan, start, status, meta, **kwargs) -> dict:
    return se.subscription(
        subscription_id=sub_id,
        customer=customer,
        price_id=plan["stripe_price_id"],
        status=status,
        period_start=start,
        period_end=start + PERIOD,
        metadata=meta,
        **kwargs,
    )
