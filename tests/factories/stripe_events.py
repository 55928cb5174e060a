"""Stripe events built from objects Stripe publishes in its openapi repository (MIT), kept in
tests/fixtures/stripe/objects.json with their LICENSE, with only the fields billhook reads set per test.

Every factory returns a fresh deep copy; ids are unique unless given.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import time
from pathlib import Path

from shared.stripe.signing import stripe_signature_header

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "stripe" / "objects.json"
_counter = itertools.count(1)


@functools.cache
def _resources() -> dict:
    return json.loads(FIXTURES.read_text())


def fixture(name: str) -> dict:
    """A deep copy of Stripe's fixture for one API object ('invoice', 'checkout.session', ...)."""
    return copy.deepcopy(_resources()[name])


def unique(prefix: str) -> str:
    return f"{prefix}_test{next(_counter):08d}{time.time_ns() % 10**6:06d}"


def event(event_type: str, obj: dict, *, created: int | None = None, event_id: str | None = None) -> dict:
    evt = fixture("event")
    evt.update(
        id=event_id or unique("evt"),
        type=event_type,
        created=int(time.time()) if created is None else created,
        api_version="2026-10-28.endive",
        data={"object": obj},
    )
    return evt


def checkout_session(
    *,
    account_id: str,
    mode: str,
    plan_id: str | None = None,
    package_id: str | None = None,
    customer: str | None = None,
    subscription: str | None = None,
    payment_status: str = "paid",
    amount_total: int | None = None,
    email: str = "buyer@example.com",
    session_id: str | None = None,
    payment_intent: str | None = None,
) -> dict:
    obj = fixture("checkout.session")
    metadata = {"account_id": account_id}
    if plan_id:
        metadata["plan_id"] = plan_id
    if package_id:
        metadata["package_id"] = package_id
    obj.update(
        id=session_id or unique("cs"),
        mode=mode,
        status="complete",
        payment_status=payment_status,
        customer=customer or unique("cus"),
        subscription=(subscription or unique("sub")) if mode == "subscription" else None,
        payment_intent=(payment_intent or unique("pi")) if mode == "payment" else None,
        metadata=metadata,
        amount_total=amount_total,
        currency="usd",
        client_reference_id=account_id,
    )
    obj["customer_details"]["email"] = email
    return obj


def subscription(
    *,
    subscription_id: str,
    customer: str,
    price_id: str,
    status: str = "active",
    period_start: int,
    period_end: int,
    cancel_at_period_end: bool = False,
    metadata: dict | None = None,
    canceled_at: int | None = None,
) -> dict:
    obj = fixture("subscription")
    item = obj["items"]["data"][0]
    item["price"]["id"] = price_id
    item["subscription"] = subscription_id
    item["current_period_start"] = period_start
    item["current_period_end"] = period_end
    obj.update(
        id=subscription_id,
        customer=customer,
        status=status,
        cancel_at_period_end=cancel_at_period_end,
        canceled_at=canceled_at,
        ended_at=canceled_at if status == "canceled" else None,
        cancel_at=None,
        metadata=metadata or {},
    )
    obj["items"]["url"] = f"/v1/subscription_items?subscription={subscription_id}"
    return obj


def invoice(
    *,
    subscription_id: str,
    customer: str,
    price_id: str,
    amount: int,
    period_start: int,
    period_end: int,
    billing_reason: str = "subscription_cycle",
    status: str = "paid",
    metadata: dict | None = None,
    invoice_id: str | None = None,
    payment_intent: str | None = None,
    proration: bool = False,
) -> dict:
    obj = fixture("invoice")
    invoice_id = invoice_id or unique("in")
    line = obj["lines"]["data"][0]
    line.update(
        id=unique("il"),
        invoice=invoice_id,
        amount=amount,
        description="1 × plan (at $ / month)",
        period={"start": period_start, "end": period_end},
        quantity=1,
    )
    line["parent"] = {
        "type": "subscription_item_details",
        "invoice_item_details": None,
        "subscription_item_details": {
            "invoice_item": None,
            "proration": proration,
            "proration_details": None,
            "subscription": subscription_id,
            "subscription_item": unique("si"),
        },
    }
    line["pricing"] = {
        "type": "price_details",
        "unit_amount_decimal": str(amount),
        "price_details": {"price": price_id, "product": unique("prod")},
    }
    obj["lines"]["url"] = f"/v1/invoices/{invoice_id}/lines"
    obj["parent"] = {
        "type": "subscription_details",
        "quote_details": None,
        "subscription_details": {"subscription": subscription_id, "metadata": metadata or {}},
    }
    obj.update(
        id=invoice_id,
        customer=customer,
        status=status,
        billing_reason=billing_reason,
        amount_due=amount,
        amount_paid=amount if status == "paid" else 0,
        amount_remaining=0 if status == "paid" else amount,
        total=amount,
        subtotal=amount,
        period_start=period_start,
        period_end=period_end,
        currency="usd",
    )
    if payment_intent:
        obj["payments"] = {
            "object": "list",
            "has_more": False,
            "data": [
                {
                    "object": "invoice_payment",
                    "id": unique("inpay"),
                    "invoice": invoice_id,
                    "is_default": True,
                    "status": "paid",
                    "payment": {"type": "payment_intent", "payment_intent": payment_intent},
                }
            ],
        }
    return obj


def invoice_payment(
    *, invoice_id: str, payment_intent: str, amount: int, invoice_payment_id: str | None = None
) -> dict:
    """The InvoicePayment that links an invoice to its PaymentIntent (`invoice_payment.paid`)."""
    obj = fixture("invoice_payment")
    obj.update(
        id=invoice_payment_id or unique("inpay"),
        invoice=invoice_id,
        amount_paid=amount,
        amount_requested=amount,
        currency="usd",
        status="paid",
        payment={"type": "payment_intent", "payment_intent": payment_intent},
    )
    return obj


def charge(
    *, payment_intent: str, amount: int, amount_refunded: int, charge_id: str | None = None, customer: str | None = None
) -> dict:
    obj = fixture("charge")
    obj.update(
        id=charge_id or unique("ch"),
        payment_intent=payment_intent,
        amount=amount,
        amount_captured=amount,
        amount_refunded=amount_refunded,
        refunded=amount_refunded >= amount,
        captured=True,
        customer=customer,
        currency="usd",
    )
    return obj


def signed(evt: dict, secret: str, *, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a delivery, signed the way Stripe signs it."""
    body = json.dumps(evt).encode()
    return body, {
        "Content-Type": "application/json",
        "Stripe-Signature": stripe_signature_header(body, secret, timestamp),
    }
