"""PayPal's amounts: decimal strings in the currency's units, billhook's minor units (cents)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# PayPal's currencies without minor units.
ZERO_DECIMAL_CURRENCIES = frozenset({"HUF", "JPY", "TWD"})


def format_amount(amount_cents: int, currency: str) -> str:
    """Minor units to PayPal's decimal string: 999 USD → "9.99", 500 JPY → "500"."""
    if currency.upper() in ZERO_DECIMAL_CURRENCIES:
        return str(int(amount_cents))
    return str((Decimal(int(amount_cents)) / 100).quantize(Decimal("0.01")))


def parse_amount(value: str | int | float | None, currency: str) -> int:
    """PayPal's decimal string to minor units: "9.99" USD → 999."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"not an amount: {value!r}") from exc
    if currency.upper() not in ZERO_DECIMAL_CURRENCIES:
        amount *= 100
    return int(amount.quantize(Decimal("1"), rounding=ROUND_HALF_UP))
