"""Stripe events built from objects Stripe publishes in its openapi repository (MIT), kept in
tests/fixtures/stripe/objects.json with their LICENSE, with only the fields billhook reads set per test.

Every factory returns a fresh deep copy; ids are unique unless given.

Objects come in the shapes of an API version: `API_VERSION` (the newest billhook knows) unless a
factory is given `api_version`. The fixtures are in the current shapes; for a version before
2025-03-31.basil the factories move the fields billhook reads back to where Stripe's API reference
of that era (2024-06-20) puts them: `invoice.subscription`, `invoice.subscription_details`,
`invoice.payment_intent` / `invoice.charge`, lines with `type`, `subscription`, `proration`, `plan`
and `price`, and `subscription.current_period_*` on the subscription instead of its items.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import time
from pathlib import Path

from shared.billing.catalog import SEED_PACKAGES
from shared.stripe import versions
from shared.stripe.signing import stripe_signature_header

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "stripe" / "objects.json"
_counter = itertools.count(1)

CURRENT = versions.NEWEST_KNOWN
PRE_BASIL = versions.OLDEST_SUPPORTED  # 2024-06-20: the oldest version billhook reads
# The version the factories render in when not told; tests of both eras set it (see
# tests/shared/stripe/handlers/conftest.py).
API_VERSION = CURRENT


def _version(api_version: str | None) -> str:
    return api_version or API_VERSION


def is_pre_basil(api_version: str | None = None) -> bool:
    return versions.parse(_version(api_version)).era is versions.Era.PRE_BASIL


@functools.cache
def _resources() -> dict:
    return json.loads(FIXTURES.read_text())


def fixture(name: str) -> dict:
    """A deep copy of Stripe's fixture for one API object ('invoice', 'checkout.session', ...)."""
    return copy.deepcopy(_resources()[name])


def unique(prefix: str) -> str:
    return f"{prefix}_test{next(_counter):08d}{time.time_ns() % 10**6:06d}"


def event(
    event_type: str,
    obj: dict,
    *,
    created: int | None = None,
    event_id: str | None = None,
    api_version: str | None = None,
) -> dict:
    evt = fixture("event")
    evt.update(
        id=event_id or unique("evt"),
        type=event_type,
        created=int(time.time()) if created is None else created,
        api_version=_version(api_version),
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
    amount_discount: int = 0,
    amount_tax: int = 0,
    price_cents: int | None = None,
) -> dict:
    """`price_cents` is what billhook's checkout puts in the metadata at creation (sessions
    created before it did carry none). A payment's `amount_total` is the seeded package's price
    unless given, as Stripe would charge it."""
    obj = fixture("checkout.session")
    if amount_total is None and mode == "payment":
        seeded = {p["id"]: p["price_cents"] for p in SEED_PACKAGES}
        amount_total = seeded.get(package_id, 0) - amount_discount + amount_tax
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
        total_details={"amount_discount": amount_discount, "amount_shipping": 0, "amount_tax": amount_tax},
    )
    if price_cents is not None:
        metadata["price_cents"] = str(price_cents)
        metadata["currency"] = "usd"
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
    api_version: str | None = None,
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
    item["plan"]["id"] = price_id
    if is_pre_basil(api_version):
        # Before basil the billing period is the subscription's, and its items have none.
        obj.update(current_period_start=period_start, current_period_end=period_end)
        for each in obj["items"]["data"]:
            each.pop("current_period_start", None)
            each.pop("current_period_end", None)
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
    api_version: str | None = None,
) -> dict:
    """A subscription's invoice with one line; `subscription_id=None` makes a one-off invoice.
    Add more lines with `add_line`."""
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
    if subscription_id is None:
        obj["parent"] = None
        line["parent"] = {"type": "invoice_item_details", "invoice_item_details": {"invoice_item": unique("ii")}}
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
    return _pre_basil_invoice(obj, payment_intent) if is_pre_basil(api_version) else obj


def add_line(
    invoice_obj: dict,
    *,
    price_id: str,
    amount: int,
    period_start: int,
    period_end: int,
    proration: bool,
    first: bool = False,
    api_version: str | None = None,
) -> dict:
    """Another line on an invoice built by `invoice` (in the same version): a proration credits or
    charges part of a period (before basil, an invoice item of the subscription)."""
    line = copy.deepcopy(invoice_obj["lines"]["data"][0])
    line.update(id=unique("il"), amount=amount, period={"start": period_start, "end": period_end})
    if is_pre_basil(api_version):
        line.update(type="invoiceitem" if proration else "subscription", proration=proration)
        line["invoice_item"] = unique("ii") if proration else None
        line["price"] = {**line["price"], "id": price_id}
        line["plan"] = {**line["plan"], "id": price_id}
    else:
        details = line["parent"]["subscription_item_details"]
        line["parent"] = {**line["parent"], "subscription_item_details": {**details, "proration": proration}}
        line["pricing"] = {**line["pricing"], "price_details": {"price": price_id, "product": unique("prod")}}
    invoice_obj["lines"]["data"].insert(0 if first else len(invoice_obj["lines"]["data"]), line)
    return line


def _pre_basil_invoice(obj: dict, payment_intent: str | None) -> dict:
    """The invoice as 2024-06-20 renders it: subscription and payment on the invoice itself, and
    each line saying what it bills by `type`, `plan` and `price` (no `parent`, `pricing`, `payments`)."""
    parent = obj.pop("parent") or {}
    obj.pop("payments", None)
    details = parent.get("subscription_details") or {}
    obj.update(
        subscription=details.get("subscription"),
        subscription_details={"metadata": details.get("metadata") or {}},
        payment_intent=payment_intent,
        charge=None,
    )
    for line in obj["lines"]["data"]:
        line_parent = line.pop("parent") or {}
        pricing = line.pop("pricing") or {}
        item = line_parent.get("subscription_item_details")
        price_details = pricing.get("price_details") or {}
        price_id = price_details.get("price")
        line.update(
            object="line_item",
            # A proration was an invoice item the subscription created, not a subscription line.
            type="subscription" if item and not item.get("proration") else "invoiceitem",
            subscription=(item or {}).get("subscription"),
            subscription_item=(item or {}).get("subscription_item"),
            invoice_item=(line_parent.get("invoice_item_details") or {}).get("invoice_item"),
            proration=bool((item or {}).get("proration")),
            proration_details={"credited_items": None},
            plan={"id": price_id, "object": "plan", "product": price_details.get("product")} if price_id else None,
            price={"id": price_id, "object": "price", "product": price_details.get("product")} if price_id else None,
        )
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


def dispute(
    *,
    payment_intent: str,
    amount: int,
    status: str = "needs_response",
    dispute_id: str | None = None,
    charge_id: str | None = None,
    reason: str = "fraudulent",
    created: int | None = None,
) -> dict:
    """A Dispute (charge.dispute.*): `status` is needs_response/under_review while open, then
    won, lost or (an inquiry) warning_closed."""
    return {
        "id": dispute_id or unique("du"),
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": charge_id or unique("ch"),
        "created": int(time.time()) if created is None else created,
        "currency": "usd",
        "evidence_details": {"due_by": None, "has_evidence": False, "past_due": False, "submission_count": 0},
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": payment_intent,
        "reason": reason,
        "status": status,
    }


def action_required_invoice(
    *, subscription_id: str, customer: str, price_id: str, amount: int, period_start: int, metadata: dict | None = None
) -> dict:
    """An open invoice whose payment waits for 3-D Secure (invoice.payment_action_required)."""
    obj = invoice(
        metadata=metadata,
        subscription_id=subscription_id,
        customer=customer,
        price_id=price_id,
        amount=amount,
        period_start=period_start,
        period_end=period_start + 30 * 86_400,
        status="open",
    )
    obj["hosted_invoice_url"] = f"https://invoice.stripe.com/i/acct_test/{obj['id']}"
    return obj


def signed(evt: dict, secret: str, *, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a delivery, signed the way Stripe signs it."""
    body = json.dumps(evt).encode()
    return body, {
        "Content-Type": "application/json",
        "Stripe-Signature": stripe_signature_header(body, secret, timestamp),
    }
