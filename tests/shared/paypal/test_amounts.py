"""PayPal's decimal amount strings and billhook's minor units, both ways."""

from __future__ import annotations

import pytest

from shared.paypal.amounts import format_amount, parse_amount


@pytest.mark.parametrize(
    ("cents", "currency", "value"), [(999, "USD", "9.99"), (100000, "eur", "1000.00"), (500, "JPY", "500")]
)
def test_amounts_convert_between_minor_units_and_paypal_strings(cents, currency, value):
    assert format_amount(cents, currency) == value
    assert parse_amount(value, currency) == cents
