"""PayPal webhook events in the shapes PayPal documents (developer.paypal.com, "Webhook event
names" and the Orders v2 / Subscriptions v1 / Payments v1 sample payloads), with only the fields a
test cares about as arguments; and deliveries signed the way PayPal signs them, with a test
certificate generated here.

Every factory returns a fresh dict; ids are unique unless given.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from shared.paypal.orders import order_custom_id, subscription_custom_id
from shared.paypal.webhooks import signed_message

API = "https://api-m.sandbox.paypal.com"
WEBHOOK_ID = "8PT597110X687430LKGECATA"
CERT_URL = "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77"
_counter = itertools.count(1)


def unique(prefix: str = "") -> str:
    """An id in PayPal's style: upper-case alphanumerics."""
    return f"{prefix}{next(_counter):06d}{secrets.token_hex(5).upper()}"


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(amount_cents: int, currency: str = "USD") -> dict:
    return {"currency_code": currency, "value": f"{amount_cents / 100:.2f}"}


def event(event_type: str, resource: dict, *, created: datetime | None = None, event_id: str | None = None) -> dict:
    """The webhook event envelope (event_version 1.0)."""
    resource_type = {
        "CHECKOUT": "checkout-order",
        "PAYMENT.CAPTURE": "capture",
        "PAYMENT.SALE": "sale",
        "BILLING.SUBSCRIPTION": "subscription",
        "CUSTOMER.DISPUTE": "dispute",
    }
    rtype = next((v for k, v in resource_type.items() if event_type.startswith(k)), "unknown")
    if event_type in ("PAYMENT.CAPTURE.REFUNDED", "PAYMENT.SALE.REFUNDED"):
        rtype = "refund"
    evt_id = event_id or f"WH-{unique()}-{unique()}"
    return {
        "id": evt_id,
        "event_version": "1.0",
        "create_time": iso(created or datetime.now(UTC)),
        "resource_type": rtype,
        "resource_version": "1.0" if rtype == "sale" else "2.0",
        "event_type": event_type,
        "summary": f"{event_type} event",
        "resource": resource,
        "links": [
            {"href": f"{API}/v1/notifications/webhooks-events/{evt_id}", "rel": "self", "method": "GET"},
            {"href": f"{API}/v1/notifications/webhooks-events/{evt_id}/resend", "rel": "resend", "method": "POST"},
        ],
    }


# -- Orders v2 --------------------------------------------------------------------------------


def order(
    *,
    account_id: str,
    package_id: str,
    amount_cents: int,
    currency: str = "USD",
    order_id: str | None = None,
    status: str = "APPROVED",
) -> dict:
    """An order as CHECKOUT.ORDER.APPROVED carries it."""
    order_id = order_id or unique()
    return {
        "id": order_id,
        "intent": "CAPTURE",
        "status": status,
        "payer": {
            "name": {"given_name": "John", "surname": "Doe"},
            "email_address": "customer@example.com",
            "payer_id": "QYR5Z8XDVJNXQ",
        },
        "purchase_units": [
            {
                "reference_id": "default",
                "amount": _money(amount_cents, currency),
                "payee": {"email_address": "merchant@example.com", "merchant_id": "7KNGBPH2U58GQ"},
                "custom_id": order_custom_id(account_id, package_id),
            }
        ],
        "create_time": "2026-11-24T11:58:49Z",
        "links": [
            {"href": f"{API}/v2/checkout/orders/{order_id}", "rel": "self", "method": "GET"},
            {"href": f"{API}/v2/checkout/orders/{order_id}/capture", "rel": "capture", "method": "POST"},
        ],
    }


def capture(
    *,
    order_id: str,
    account_id: str,
    package_id: str,
    amount_cents: int,
    currency: str = "USD",
    status: str = "COMPLETED",
    capture_id: str | None = None,
) -> dict:
    """A capture as PAYMENT.CAPTURE.COMPLETED / DENIED carry it (and as the capture call returns
    inside purchase_units[].payments.captures[])."""
    capture_id = capture_id or unique()
    body = {
        "id": capture_id,
        "amount": _money(amount_cents, currency),
        "final_capture": True,
        "seller_protection": {
            "status": "ELIGIBLE",
            "dispute_categories": ["ITEM_NOT_RECEIVED", "UNAUTHORIZED_TRANSACTION"],
        },
        "seller_receivable_breakdown": {
            "gross_amount": _money(amount_cents, currency),
            "paypal_fee": _money(amount_cents * 3 // 100 + 49, currency),
            "net_amount": _money(amount_cents - (amount_cents * 3 // 100 + 49), currency),
        },
        "custom_id": order_custom_id(account_id, package_id),
        "status": status,
        "create_time": "2026-11-24T12:00:00Z",
        "update_time": "2026-11-24T12:00:00Z",
        "supplementary_data": {"related_ids": {"order_id": order_id}},
        "links": [
            {"href": f"{API}/v2/payments/captures/{capture_id}", "rel": "self", "method": "GET"},
            {"href": f"{API}/v2/payments/captures/{capture_id}/refund", "rel": "refund", "method": "POST"},
            {"href": f"{API}/v2/checkout/orders/{order_id}", "rel": "up", "method": "GET"},
        ],
    }
    if status in ("DECLINED", "DENIED"):
        body["status_details"] = {"reason": "DECLINED_BY_RISK_FRAUD_FILTERS"}
    return body


def refund(
    *,
    capture_id: str,
    amount_cents: int,
    total_refunded_cents: int | None = None,
    currency: str = "USD",
    refund_id: str | None = None,
    custom_id: str | None = None,
) -> dict:
    """A refund as PAYMENT.CAPTURE.REFUNDED carries it: the capture is the `up` link."""
    refund_id = refund_id or unique()
    total = amount_cents if total_refunded_cents is None else total_refunded_cents
    body = {
        "id": refund_id,
        "amount": _money(amount_cents, currency),
        "seller_payable_breakdown": {
            "gross_amount": _money(amount_cents, currency),
            "paypal_fee": _money(0, currency),
            "net_amount": _money(amount_cents, currency),
            "total_refunded_amount": _money(total, currency),
        },
        "status": "COMPLETED",
        "create_time": "2026-11-24T13:00:00Z",
        "update_time": "2026-11-24T13:00:00Z",
        "links": [
            {"href": f"{API}/v2/payments/refunds/{refund_id}", "rel": "self", "method": "GET"},
            {"href": f"{API}/v2/payments/captures/{capture_id}", "rel": "up", "method": "GET"},
        ],
    }
    if custom_id:
        body["custom_id"] = custom_id
    return body


def captured_order(order_body: dict, capture_body: dict) -> dict:
    """The order as the capture call answers it (Prefer: return=representation)."""
    result = json.loads(json.dumps(order_body))
    result["status"] = "COMPLETED" if capture_body["status"] == "COMPLETED" else order_body["status"]
    result["purchase_units"][0]["payments"] = {"captures": [capture_body]}
    return result


# -- Subscriptions v1 -------------------------------------------------------------------------


def subscription(
    *,
    account_id: str,
    plan_id: str,
    paypal_plan_id: str,
    status: str = "ACTIVE",
    subscription_id: str | None = None,
    start_time: datetime,
    next_billing_time: datetime | None = None,
    status_update_time: datetime | None = None,
    amount_cents: int = 9900,
) -> dict:
    subscription_id = subscription_id or f"I-{unique()}"
    return {
        "id": subscription_id,
        "plan_id": paypal_plan_id,
        "status": status,
        "status_update_time": iso(status_update_time or start_time),
        "custom_id": subscription_custom_id(account_id, plan_id),
        "quantity": "1",
        "plan_overridden": False,
        "start_time": iso(start_time),
        "create_time": iso(start_time - timedelta(minutes=2)),
        "update_time": iso(status_update_time or start_time),
        "subscriber": {
            "name": {"given_name": "John", "surname": "Doe"},
            "email_address": "customer@example.com",
            "payer_id": "2J6QB8YJQSJRJ",
        },
        "billing_info": {
            "outstanding_balance": {"currency_code": "USD", "value": "0.00"},
            "cycle_executions": [
                {
                    "tenure_type": "REGULAR",
                    "sequence": 1,
                    "cycles_completed": 1,
                    "cycles_remaining": 0,
                    "current_pricing_scheme_version": 1,
                    "total_cycles": 0,
                }
            ],
            "last_payment": {"amount": _money(amount_cents), "time": iso(start_time)},
            "next_billing_time": iso(next_billing_time or start_time + timedelta(days=30)),
            "failed_payments_count": 0,
        },
        "links": [
            {"href": f"{API}/v1/billing/subscriptions/{subscription_id}", "rel": "self", "method": "GET"},
        ],
    }


def sale(*, subscription_id: str, amount_cents: int, created: datetime, sale_id: str | None = None) -> dict:
    """A subscription payment as PAYMENT.SALE.COMPLETED carries it (Payments v1 sale)."""
    sale_id = sale_id or unique()
    return {
        "id": sale_id,
        "state": "completed",
        "amount": {
            "total": f"{amount_cents / 100:.2f}",
            "currency": "USD",
            "details": {"subtotal": f"{amount_cents / 100:.2f}"},
        },
        "payment_mode": "INSTANT_TRANSFER",
        "protection_eligibility": "ELIGIBLE",
        "protection_eligibility_type": "ITEM_NOT_RECEIVED_ELIGIBLE,UNAUTHORIZED_PAYMENT_ELIGIBLE",
        "transaction_fee": {"value": "3.17", "currency": "USD"},
        "billing_agreement_id": subscription_id,
        "invoice_number": "",
        "create_time": iso(created),
        "update_time": iso(created),
        "links": [
            {"href": f"{API}/v1/payments/sale/{sale_id}", "rel": "self", "method": "GET"},
            {"href": f"{API}/v1/payments/sale/{sale_id}/refund", "rel": "refund", "method": "POST"},
        ],
    }


def sale_refund(
    *,
    sale_id: str,
    amount_cents: int,
    total_refunded_cents: int | None = None,
    created: datetime,
    refund_id: str | None = None,
) -> dict:
    """A refund of a subscription sale as PAYMENT.SALE.REFUNDED carries it (Payments v1 refund):
    the sale is `sale_id` and the `sale` link; `total_refunded_amount` is cumulative."""
    refund_id = refund_id or unique()
    total = amount_cents if total_refunded_cents is None else total_refunded_cents
    return {
        "id": refund_id,
        "amount": {"total": f"{amount_cents / 100:.2f}", "currency": "USD"},
        "state": "completed",
        "sale_id": sale_id,
        "parent_payment": f"PAYID-{unique()}",
        "refund_from_received_amount": {"value": f"{amount_cents / 100:.2f}", "currency": "USD"},
        "refund_from_transaction_fee": {"value": "0.00", "currency": "USD"},
        "total_refunded_amount": {"value": f"{total / 100:.2f}", "currency": "USD"},
        "create_time": iso(created),
        "update_time": iso(created),
        "links": [
            {"href": f"{API}/v1/payments/refund/{refund_id}", "rel": "self", "method": "GET"},
            {"href": f"{API}/v1/payments/sale/{sale_id}", "rel": "sale", "method": "GET"},
        ],
    }


# -- signing ----------------------------------------------------------------------------------


def failed_subscription(
    *,
    account_id: str,
    plan_id: str,
    paypal_plan_id: str,
    subscription_id: str,
    start_time: datetime,
    cycles_completed: int = 1,
    failed_payments_count: int = 1,
    amount_cents: int = 9900,
    failed_at: datetime | None = None,
) -> dict:
    """A subscription whose latest cycle's payment failed, as BILLING.SUBSCRIPTION.PAYMENT.FAILED
    carries it: still ACTIVE (PayPal suspends only after its retries), with the failure in
    `billing_info` (`failed_payments_count`, `last_failed_payment`, the outstanding balance)."""
    resource = subscription(
        account_id=account_id,
        plan_id=plan_id,
        paypal_plan_id=paypal_plan_id,
        subscription_id=subscription_id,
        start_time=start_time,
        status_update_time=failed_at,
        amount_cents=amount_cents,
    )
    billing = resource["billing_info"]
    billing["cycle_executions"][0]["cycles_completed"] = cycles_completed
    billing["failed_payments_count"] = failed_payments_count
    billing["outstanding_balance"] = _money(amount_cents)
    billing["last_failed_payment"] = {
        "amount": _money(amount_cents),
        "time": iso(failed_at or start_time),
        "reason_code": "PAYMENT_DENIED",
    }
    return resource


def dispute(
    *,
    transaction_id: str,
    amount_cents: int,
    status: str = "OPEN",
    outcome_code: str | None = None,
    dispute_id: str | None = None,
    created: datetime,
    updated: datetime | None = None,
) -> dict:
    """A dispute (Disputes v1) as CUSTOMER.DISPUTE.CREATED/UPDATED/RESOLVED carry it: the
    disputed capture or sale is `disputed_transactions[].seller_transaction_id`; a resolved one
    has `dispute_outcome.outcome_code` (RESOLVED_SELLER_FAVOUR, RESOLVED_BUYER_FAVOUR, ...)."""
    dispute_id = dispute_id or f"PP-D-{unique()}"
    body = {
        "dispute_id": dispute_id,
        "create_time": iso(created),
        "update_time": iso(updated or created),
        "disputed_transactions": [
            {
                "buyer_transaction_id": unique(),
                "seller_transaction_id": transaction_id,
                "create_time": iso(created - timedelta(days=3)),
                "transaction_status": "COMPLETED",
                "gross_amount": _money(amount_cents),
                "seller": {"merchant_id": "RD465XN5VS364", "name": "billhook test store"},
            }
        ],
        "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
        "status": status,
        "dispute_amount": _money(amount_cents),
        "dispute_life_cycle_stage": "CHARGEBACK",
        "dispute_channel": "INTERNAL",
        "links": [{"href": f"{API}/v1/customer/disputes/{dispute_id}", "rel": "self", "method": "GET"}],
    }
    if outcome_code:
        body["dispute_outcome"] = {"outcome_code": outcome_code, "amount_refunded": _money(amount_cents)}
    return body


def sale_reversal(*, sale_id: str, amount_cents: int, created: datetime) -> dict:
    """A reversed subscription sale as PAYMENT.SALE.REVERSED carries it: a Payments v1 refund-like
    object naming its sale, with a negative amount."""
    return {
        "id": unique(),
        "state": "completed",
        "amount": {"total": f"-{amount_cents / 100:.2f}", "currency": "USD"},
        "sale_id": sale_id,
        "parent_payment": f"PAYID-{unique()}",
        "reason_code": "CHARGEBACK",
        "create_time": iso(created),
        "update_time": iso(created),
        "links": [
            {"href": f"{API}/v1/payments/refund/{unique()}", "rel": "self", "method": "GET"},
            {"href": f"{API}/v1/payments/sale/{sale_id}", "rel": "sale", "method": "GET"},
        ],
    }


@dataclass(frozen=True)
class SigningCert:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def make_cert(*, not_before: datetime | None = None, not_after: datetime | None = None) -> SigningCert:
    """A self-signed RSA certificate standing in for PayPal's message-verification certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "messageverificationcerts.sandbox.paypal.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return SigningCert(key, cert)


@functools.cache
def signing_cert() -> SigningCert:
    return make_cert()


def signed(
    evt: dict | bytes,
    *,
    webhook_id: str = WEBHOOK_ID,
    cert: SigningCert | None = None,
    cert_url: str = CERT_URL,
    transmission_time: datetime | None = None,
    transmission_id: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of a delivery signed the way PayPal signs: SHA256withRSA over
    `transmission_id|transmission_time|webhook_id|crc32(body)`."""
    body = evt if isinstance(evt, bytes) else json.dumps(evt).encode()
    cert = cert or signing_cert()
    sent = iso(transmission_time or datetime.now(UTC))
    transmission_id = transmission_id or f"{unique()}-{int(time.time())}"
    message = signed_message(body, transmission_id=transmission_id, transmission_time=sent, webhook_id=webhook_id)
    headers = {
        "Content-Type": "application/json",
        "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        "PAYPAL-CERT-URL": cert_url,
        "PAYPAL-TRANSMISSION-ID": transmission_id,
        "PAYPAL-TRANSMISSION-SIG": cert.sign(message),
        "PAYPAL-TRANSMISSION-TIME": sent,
    }
    return body, headers
