"""PayPal webhook sequences for `billhook dev trigger paypal-*`, in the shapes PayPal documents
(event_version 1.0; Orders v2 captures, Subscriptions v1, Payments v1 sales), signed with
billhook's development certificate (shared/paypal/development.py)."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.paypal import development
from shared.paypal.orders import order_custom_id, subscription_custom_id
from shared.paypal.webhooks import signed_message

API = "https://api-m.sandbox.paypal.com"


def unique(prefix: str = "") -> str:
    return f"{prefix}{secrets.token_hex(8).upper()}"


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def money(cents: int, currency: str = "USD") -> dict:
    return {"currency_code": currency.upper(), "value": f"{cents / 100:.2f}"}


def event(event_type: str, resource_type: str, resource: dict, created: datetime) -> dict:
    evt_id = f"WH-{unique()}-{unique()}"
    return {
        "id": evt_id,
        "event_version": "1.0",
        "create_time": iso(created),
        "resource_type": resource_type,
        "resource_version": "1.0" if resource_type == "sale" else "2.0",
        "event_type": event_type,
        "summary": f"{event_type} (billhook dev trigger)",
        "resource": resource,
        "links": [{"href": f"{API}/v1/notifications/webhooks-events/{evt_id}", "rel": "self", "method": "GET"}],
    }


def capture(account_id: str, email: str, package_id: str, cents: int, currency: str) -> list[dict]:
    """A credit package bought with PayPal: the order approved, then its capture completed."""
    now = datetime.now(UTC)
    order_id = unique()
    custom_id = order_custom_id(account_id, package_id)
    order = {
        "id": order_id,
        "intent": "CAPTURE",
        "status": "APPROVED",
        "payer": {"email_address": email, "payer_id": unique()[:13]},
        "purchase_units": [{"reference_id": "default", "amount": money(cents, currency), "custom_id": custom_id}],
        "create_time": iso(now),
    }
    captured = {
        "id": unique(),
        "amount": money(cents, currency),
        "final_capture": True,
        "custom_id": custom_id,
        "status": "COMPLETED",
        "create_time": iso(now),
        "update_time": iso(now),
        "supplementary_data": {"related_ids": {"order_id": order_id}},
    }
    return [
        event("CHECKOUT.ORDER.APPROVED", "checkout-order", order, now),
        event("PAYMENT.CAPTURE.COMPLETED", "capture", captured, now + timedelta(seconds=1)),
    ]


def subscribe(
    account_id: str, email: str, plan_id: str, paypal_plan_id: str, cents: int, period: timedelta
) -> list[dict]:
    """A PayPal subscription activated, and its first sale."""
    now = datetime.now(UTC)
    subscription_id = f"I-{unique()}"
    resource = {
        "id": subscription_id,
        "plan_id": paypal_plan_id,
        "status": "ACTIVE",
        "status_update_time": iso(now),
        "custom_id": subscription_custom_id(account_id, plan_id),
        "quantity": "1",
        "start_time": iso(now),
        "create_time": iso(now - timedelta(minutes=2)),
        "update_time": iso(now),
        "subscriber": {"email_address": email, "payer_id": unique()[:13]},
        "billing_info": {
            "outstanding_balance": money(0),
            "last_payment": {"amount": money(cents), "time": iso(now)},
            "next_billing_time": iso(now + period),
            "failed_payments_count": 0,
        },
    }
    return [
        event("BILLING.SUBSCRIPTION.ACTIVATED", "subscription", resource, now),
        event("PAYMENT.SALE.COMPLETED", "sale", sale(subscription_id, cents, now), now + timedelta(seconds=1)),
    ]


def renew(subscription_id: str, cents: int, due: datetime) -> list[dict]:
    """The next billing cycle's sale (PayPal sends no subscription event for a renewal)."""
    return [event("PAYMENT.SALE.COMPLETED", "sale", sale(subscription_id, cents, due), datetime.now(UTC))]


def sale(subscription_id: str, cents: int, at: datetime) -> dict:
    return {
        "id": unique(),
        "state": "completed",
        "amount": {"total": f"{cents / 100:.2f}", "currency": "USD", "details": {"subtotal": f"{cents / 100:.2f}"}},
        "payment_mode": "INSTANT_TRANSFER",
        "billing_agreement_id": subscription_id,
        "create_time": iso(at),
        "update_time": iso(at),
    }


def signed(evt: dict, *, webhook_id: str, var_dir: Path) -> tuple[bytes, dict[str, str]]:
    """(body, headers) as PayPal signs a delivery, with billhook's development certificate."""
    body = json.dumps(evt).encode()
    sent = iso(datetime.now(UTC))
    transmission_id = f"{unique()}-{int(time.time())}"
    message = signed_message(body, transmission_id=transmission_id, transmission_time=sent, webhook_id=webhook_id)
    return body, {
        "Content-Type": "application/json",
        "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        "PAYPAL-CERT-URL": development.CERT_URL,
        "PAYPAL-TRANSMISSION-ID": transmission_id,
        "PAYPAL-TRANSMISSION-SIG": development.sign(var_dir, message),
        "PAYPAL-TRANSMISSION-TIME": sent,
    }
