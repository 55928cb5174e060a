"""Realistic Stripe event sequences in the current API shapes, for `billhook dev trigger`.

Each scenario is what Stripe sends for one thing a customer does (subscribe, renew, upgrade, ...),
built from the state billhook already holds for the account (its Stripe customer, subscription,
plan and last payment), so a sequence of triggers tells one coherent story. Objects carry the
fields Stripe documents for API 2025-03-31 (basil) and later: the subscription's period on its
items, the invoice's subscription under `parent.subscription_details`, its price under
`lines.data[].pricing.price_details`, and its PaymentIntent only through `invoice_payment.paid`.
"""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field

API_VERSION = "2026-10-28.endive"
DAY = 24 * 3600
PERIOD_SECONDS = {"day": DAY, "week": 7 * DAY, "month": 30 * DAY, "year": 365 * DAY}
_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}_dev{next(_counter):04d}{secrets.token_hex(6)}"


@dataclass(frozen=True)
class Price:
    """A plan's or package's Stripe Price as the catalog holds it."""

    item_id: str
    price_id: str
    amount: int
    currency: str = "usd"
    interval: str | None = "month"


@dataclass
class Account:
    """What billhook knows of the account, read from its store before a scenario is built."""

    account_id: str
    email: str
    customer: str
    subscription_id: str | None = None
    plan: Price | None = None
    period_start: int | None = None
    period_end: int | None = None
    last_payment_intent: str | None = None
    last_payment_amount: int = 0
    not_before: int = 0  # events must be newer than the last one applied to the subscription
    _clock: list = field(default_factory=list)

    def at(self) -> int:
        """Increasing event times: billhook applies subscription changes in event order."""
        now = max(int(time.time()), self.not_before + 1, (self._clock[-1] + 1) if self._clock else 0)
        self._clock.append(now)
        return now


def event(event_type: str, obj: dict, created: int, previous: dict | None = None) -> dict:
    data: dict = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": unique("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": unique("req"), "idempotency_key": None},
        "type": event_type,
    }


def subscription(acct: Account, price: Price, *, status: str, start: int, end: int, **fields) -> dict:
    item = {
        "id": unique("si"),
        "object": "subscription_item",
        "current_period_start": start,
        "current_period_end": end,
        "price": _price(price),
        "quantity": 1,
        "subscription": acct.subscription_id,
    }
    obj = {
        "id": acct.subscription_id,
        "object": "subscription",
        "billing_cycle_anchor": start,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "collection_method": "charge_automatically",
        "created": start,
        "currency": price.currency,
        "customer": acct.customer,
        "ended_at": None,
        "items": {"object": "list", "data": [item], "has_more": False, "url": "/v1/subscription_items"},
        "latest_invoice": None,
        "livemode": False,
        "metadata": {"account_id": acct.account_id, "plan_id": price.item_id},
        "start_date": start,
        "status": status,
    }
    obj.update(fields)
    return obj


def invoice(
    acct: Account, price: Price, *, reason: str, start: int, end: int, paid: bool = True, proration: bool = False
) -> dict:
    invoice_id = unique("in")
    line = {
        "id": unique("il"),
        "object": "line_item",
        "amount": price.amount,
        "currency": price.currency,
        "description": f"1 × {price.item_id} (at {price.amount / 100:.2f} / {price.interval})",
        "invoice": invoice_id,
        "parent": {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": proration,
                "proration_details": None,
                "subscription": acct.subscription_id,
                "subscription_item": unique("si"),
            },
        },
        "period": {"start": start, "end": end},
        "pricing": {
            "type": "price_details",
            "price_details": {"price": price.price_id, "product": unique("prod")},
            "unit_amount_decimal": str(price.amount),
        },
        "quantity": 1,
    }
    return {
        "id": invoice_id,
        "object": "invoice",
        "amount_due": price.amount,
        "amount_paid": price.amount if paid else 0,
        "amount_remaining": 0 if paid else price.amount,
        "attempt_count": 1,
        "billing_reason": reason,
        "collection_method": "charge_automatically",
        "currency": price.currency,
        "customer": acct.customer,
        "customer_email": acct.email,
        "customer_name": None,
        "lines": {"object": "list", "data": [line], "has_more": False, "url": f"/v1/invoices/{invoice_id}/lines"},
        "livemode": False,
        "parent": {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {
                "subscription": acct.subscription_id,
                "metadata": {"account_id": acct.account_id, "plan_id": price.item_id},
            },
        },
        "period_start": start,
        "period_end": end,
        "status": "paid" if paid else "open",
        "subtotal": price.amount,
        "total": price.amount,
    }


def invoice_payment(invoice_obj: dict, payment_intent: str) -> dict:
    return {
        "id": unique("inpay"),
        "object": "invoice_payment",
        "amount_paid": invoice_obj["amount_paid"],
        "amount_requested": invoice_obj["amount_due"],
        "currency": invoice_obj["currency"],
        "invoice": invoice_obj["id"],
        "is_default": True,
        "livemode": False,
        "payment": {"type": "payment_intent", "payment_intent": payment_intent},
        "status": "paid",
    }


def checkout_session(acct: Account, *, mode: str, price: Price, paid: bool = True) -> dict:
    metadata = {"account_id": acct.account_id, ("plan_id" if mode == "subscription" else "package_id"): price.item_id}
    return {
        "id": unique("cs_test"),
        "object": "checkout.session",
        "amount_subtotal": price.amount,
        "amount_total": price.amount,
        "client_reference_id": acct.account_id,
        "currency": price.currency,
        "customer": acct.customer,
        "customer_details": {"email": acct.email, "name": None},
        "invoice": None,
        "livemode": False,
        "metadata": metadata,
        "mode": mode,
        "payment_intent": unique("pi") if mode == "payment" else None,
        "payment_status": "paid" if paid else "unpaid",
        "status": "complete",
        "subscription": acct.subscription_id if mode == "subscription" else None,
    }


def charge(acct: Account, *, payment_intent: str, amount: int, refunded: int) -> dict:
    return {
        "id": unique("ch"),
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": refunded,
        "captured": True,
        "currency": "usd",
        "customer": acct.customer,
        "livemode": False,
        "paid": True,
        "payment_intent": payment_intent,
        "refunded": refunded >= amount,
        "status": "succeeded",
    }


def _price(price: Price) -> dict:
    recurring = None
    if price.interval:
        recurring = {"interval": price.interval, "interval_count": 1, "meter": None, "usage_type": "licensed"}
    return {
        "id": price.price_id,
        "object": "price",
        "active": True,
        "currency": price.currency,
        "livemode": False,
        "lookup_key": None,
        "product": unique("prod"),
        "recurring": recurring,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": price.amount,
    }


# -- the scenarios ----------------------------------------------------------------------------


def subscribe(acct: Account, plan: Price) -> list[dict]:
    """A hosted Checkout for a plan: the session, the subscription, its first invoice paid."""
    acct.subscription_id = unique("sub")
    start = acct.at()
    end = start + PERIOD_SECONDS[plan.interval or "month"]
    first = invoice(acct, plan, reason="subscription_create", start=start, end=end)
    return [
        event("customer.subscription.created", subscription(acct, plan, status="active", start=start, end=end), start),
        event("checkout.session.completed", checkout_session(acct, mode="subscription", price=plan), acct.at()),
        event("invoice.paid", first, acct.at()),
        event("invoice_payment.paid", invoice_payment(first, unique("pi")), acct.at()),
    ]


def renew(acct: Account) -> list[dict]:
    """The next period: the subscription moves on, its cycle invoice is paid."""
    plan = _subscribed(acct)
    start = acct.period_end or acct.at()
    end = start + PERIOD_SECONDS[plan.interval or "month"]
    renewal = invoice(acct, plan, reason="subscription_cycle", start=start, end=end)
    sub = subscription(acct, plan, status="active", start=start, end=end)
    return [
        event("customer.subscription.updated", sub, acct.at(), {"items": {"data": [{"current_period_start": 0}]}}),
        event("invoice.paid", renewal, acct.at()),
        event("invoice_payment.paid", invoice_payment(renewal, unique("pi")), acct.at()),
    ]


def change_plan(acct: Account, new_plan: Price, *, prorate: bool) -> list[dict]:
    """An upgrade (prorated now, `subscription_update` invoice) or a downgrade (no proration).
    The billing period stays as it was: only an interval change restarts it."""
    old = _subscribed(acct)
    now = acct.at()
    end = acct.period_end or now + PERIOD_SECONDS[old.interval or "month"]
    sub = subscription(acct, new_plan, status="active", start=acct.period_start or now, end=end)
    events = [event("customer.subscription.updated", sub, now, {"items": {"data": [{"price": {"id": old.price_id}}]}})]
    if prorate and new_plan.amount > old.amount:
        difference = Price(new_plan.item_id, new_plan.price_id, new_plan.amount - old.amount, new_plan.currency)
        upgrade = invoice(acct, difference, reason="subscription_update", start=now, end=end, proration=True)
        events.append(event("invoice.paid", upgrade, acct.at()))
        events.append(event("invoice_payment.paid", invoice_payment(upgrade, unique("pi")), acct.at()))
    return events


def payment_failed(acct: Account) -> list[dict]:
    """A renewal's card is declined: the invoice fails, the subscription goes past_due."""
    plan = _subscribed(acct)
    start = acct.period_end or acct.at()
    end = start + PERIOD_SECONDS[plan.interval or "month"]
    failed = invoice(acct, plan, reason="subscription_cycle", start=start, end=end, paid=False)
    sub = subscription(acct, plan, status="past_due", start=start, end=end)
    return [
        event("invoice.payment_failed", failed, acct.at()),
        event("customer.subscription.updated", sub, acct.at(), {"status": "active"}),
    ]


def cancel(acct: Account) -> list[dict]:
    """Canceled now (from the portal or the dashboard): the subscription is deleted."""
    plan = _subscribed(acct)
    now = acct.at()
    sub = subscription(
        acct, plan, status="canceled", start=now, end=acct.period_end or now, canceled_at=now, ended_at=now
    )
    return [event("customer.subscription.deleted", sub, now)]


def buy_credits(acct: Account, package: Price) -> list[dict]:
    checkout = checkout_session(acct, mode="payment", price=package)
    return [event("checkout.session.completed", checkout, acct.at())]


def async_payment(acct: Account, package: Price) -> list[dict]:
    """A bank debit: the checkout completes unpaid, and succeeds later."""
    checkout = checkout_session(acct, mode="payment", price=package, paid=False)
    later = {**checkout, "payment_status": "paid"}
    return [
        event("checkout.session.completed", checkout, acct.at()),
        event("checkout.session.async_payment_succeeded", later, acct.at()),
    ]


def refund(acct: Account) -> list[dict]:
    """The account's latest payment, refunded in full."""
    if not acct.last_payment_intent:
        raise ScenarioError(f"account {acct.account_id} has no Stripe payment to refund: trigger buy-credits first")
    refunded = charge(
        acct,
        payment_intent=acct.last_payment_intent,
        amount=acct.last_payment_amount,
        refunded=acct.last_payment_amount,
    )
    return [event("charge.refunded", refunded, acct.at())]


class ScenarioError(Exception):
    """The account's state does not allow the scenario (e.g. renew without a subscription)."""


def _subscribed(acct: Account) -> Price:
    if acct.subscription_id is None or acct.plan is None:
        raise ScenarioError(f"account {acct.account_id} has no Stripe subscription: trigger subscribe first")
    return acct.plan
