"""What a PayPal capture says, from either source (the capture call's order, or a
PAYMENT.CAPTURE.* webhook's resource), and whether it paid what billhook asked for.

A completed capture grants only when its amount is readable and equal, in the same currency, to
what billhook created the order for (the package's price): anything else is `PaymentMismatch`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from shared import metrics
from shared.errors import PermanentError, ProviderError
from shared.logs import log_line
from shared.models import CreditPackage
from shared.paypal.amounts import format_amount, parse_amount
from shared.paypal.client import PROVIDER

log = logging.getLogger("billhook.paypal")

# The capture status an order has before it is captured (no capture in the order yet).
NOT_CAPTURED = "NOT_CAPTURED"
# PayPal's amount value: a plain decimal string (no sign, exponent, NaN or Infinity).
_AMOUNT_VALUE = re.compile(r"^[0-9]{1,15}(\.[0-9]{1,3})?$")


class PaymentMismatch(PermanentError, ProviderError):
    """A completed capture whose amount or currency is not the one billhook created the order for.
    Permanent (the event fails, nothing is granted) and, on the capture API, a provider error
    (502): PayPal's answer is not what billhook asked for."""

    def __init__(self, message: str):
        ProviderError.__init__(self, PROVIDER, message)


@dataclass(frozen=True)
class CaptureResult:
    """The facts about an order's capture billhook acts on, from either source."""

    order_id: str
    capture_id: str | None
    status: str  # the capture's status: COMPLETED, PENDING, DECLINED, DENIED, FAILED, ...
    amount_cents: int | None  # None when the source has no readable amount
    currency: str | None
    custom_id: str | None
    failure_reason: str | None = None
    amount_value: object = None  # the amount as the source gave it, for the mismatch message

    @classmethod
    def from_order(cls, order: dict) -> CaptureResult:
        """From an Orders v2 order as the capture call or GET returns it (with
        `Prefer: return=representation`): purchase_units[0].payments.captures[0]."""
        unit = ((order.get("purchase_units") or [{}]) or [{}])[0] or {}
        captures = (unit.get("payments") or {}).get("captures") or []
        capture = captures[0] if captures else {}
        amount = capture.get("amount") or unit.get("amount") or {}
        # Without a capture the order was not captured (yet): nothing to grant or record.
        status = capture.get("status") or NOT_CAPTURED
        return cls(
            order_id=order.get("id"),
            capture_id=capture.get("id"),
            status=status or "UNKNOWN",
            amount_cents=_amount(amount),
            currency=_currency(amount),
            custom_id=capture.get("custom_id") or unit.get("custom_id"),
            failure_reason=_capture_reason(capture),
            amount_value=amount.get("value"),
        )

    @classmethod
    def from_capture(cls, capture: dict) -> CaptureResult:
        """From a PAYMENT.CAPTURE.* webhook resource (a capture; its order id is in
        supplementary_data.related_ids.order_id)."""
        related = (capture.get("supplementary_data") or {}).get("related_ids") or {}
        amount = capture.get("amount") or {}
        return cls(
            order_id=related.get("order_id"),
            capture_id=capture.get("id"),
            status=capture.get("status") or "UNKNOWN",
            amount_cents=_amount(amount),
            currency=_currency(amount),
            custom_id=capture.get("custom_id"),
            failure_reason=_capture_reason(capture),
            amount_value=amount.get("value"),
        )


def check_amount(capture: CaptureResult, package: CreditPackage) -> None:
    """The capture paid exactly what billhook created the order for, or PaymentMismatch."""
    expected_currency = package.currency.upper()
    if capture.amount_cents == package.price_cents and capture.currency == expected_currency:
        return
    metrics.record_payment_mismatch(PROVIDER)
    log_line(log, "paypal capture amount mismatch", level=logging.WARNING, order=capture.order_id)
    expected = f"{format_amount(package.price_cents, expected_currency)} {expected_currency}"
    value = "no amount" if capture.amount_value is None else repr(capture.amount_value)[:40]
    got = f"{value} {capture.currency or 'in no readable currency'}"
    raise PaymentMismatch(
        f"PayPal order {capture.order_id} captured {got}, expected {expected} for package {package.id!r};"
        " no credits granted"
    )


def _amount(amount: dict) -> int | None:
    value, currency = amount.get("value"), _currency(amount)
    if not isinstance(value, str) or not _AMOUNT_VALUE.match(value) or currency is None:
        return None
    return parse_amount(value, currency)


def _currency(amount: dict) -> str | None:
    """The ISO 4217 code, upper case; None unless it is three letters."""
    code = amount.get("currency_code")
    return code.upper() if isinstance(code, str) and len(code) == 3 and code.isascii() and code.isalpha() else None


def _capture_reason(capture: dict) -> str | None:
    details = capture.get("status_details") or {}
    reason = details.get("reason")
    return reason if isinstance(reason, str) else None
