"""The money check on credit purchases: a Checkout Session grants its package only when it was paid
what billhook created it for, in the currency it was created in."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import update

from shared.errors import PermanentError
from shared.models import CreditPackage, Invoice, Payment
from tests.factories import stripe_events as se
from tests.shared.stripe.handlers.support import ACCOUNT, balance, count, run


def mismatches() -> float:
    return REGISTRY.get_sample_value("billhook_payment_mismatch_total", {"provider": "stripe"}) or 0.0


def purchase(event_type: str = "checkout.session.completed", *, t0: int, **fields) -> dict:
    fields.setdefault("package_id", "enterprise")
    obj = se.checkout_session(account_id=ACCOUNT, mode="payment", **fields)
    return se.event(event_type, obj, created=t0)


def set_package_price(session_factory, package_id: str, price_cents: int) -> None:
    with session_factory.begin() as session:
        session.execute(update(CreditPackage).filter_by(id=package_id).values(price_cents=price_cents))


def test_a_session_paid_its_creation_price_grants_after_the_catalog_price_changed(seeded, now, t0):
    evt = purchase(t0=t0, price_cents=14999, amount_total=14999)
    set_package_price(seeded, "enterprise", 19999)  # a catalog change while the buyer was paying

    run(seeded, evt, now)

    assert balance(seeded) == 15_000


def test_a_session_created_without_a_price_is_checked_against_the_current_price(seeded, now, t0):
    run(seeded, purchase(t0=t0, amount_total=14999), now)

    assert balance(seeded) == 15_000


def test_discount_and_tax_are_part_of_the_expected_total(seeded, now, t0):
    evt = purchase(t0=t0, price_cents=14999, amount_discount=4999, amount_tax=800, amount_total=10800)

    run(seeded, evt, now)

    assert balance(seeded) == 15_000


def test_a_discount_and_tax_are_recorded_on_the_payments_invoice(seeded, now, t0):
    evt = purchase(t0=t0, price_cents=14999, amount_discount=4999, amount_tax=800, amount_total=10800)

    run(seeded, evt, now)

    with seeded() as session:
        invoice = session.query(Invoice).one()
    assert [line["amount_cents"] for line in invoice.line_items] == [14999, -4999, 800]
    assert [line["description"] for line in invoice.line_items][1:] == ["Discount", "Tax"]
    assert sum(line["amount_cents"] for line in invoice.line_items) == invoice.amount_cents == 10800


def test_a_fully_discounted_session_grants_without_a_payment(seeded, now, t0):
    evt = purchase(
        t0=t0, price_cents=14999, amount_discount=14999, amount_total=0, payment_status="no_payment_required"
    )

    run(seeded, evt, now)

    assert balance(seeded) == 15_000


@pytest.mark.parametrize(
    "event_type, fields, got",
    [
        ("checkout.session.completed", {"amount_total": -99900}, "-99900"),
        ("checkout.session.completed", {"amount_total": 999}, "999"),
        ("checkout.session.completed", {"amount_total": "14999"}, "'14999'"),
        ("checkout.session.completed", {"amount_total": 0, "payment_status": "no_payment_required"}, "0"),
        ("checkout.session.async_payment_succeeded", {"amount_total": 14999, "payment_status": "unpaid"}, "14999"),
    ],
    ids=["negative-total", "underpaid", "total-not-a-number", "free-without-discount", "async-success-unpaid"],
)
def test_a_session_not_paid_what_it_was_created_for_fails_and_grants_nothing(seeded, now, t0, event_type, fields, got):
    before = mismatches()

    with pytest.raises(PermanentError) as failed:
        run(seeded, purchase(event_type, t0=t0, price_cents=14999, **fields), now)

    assert "expected 14999 usd" in str(failed.value) and f"got {got}" in str(failed.value)
    assert balance(seeded) == 0 and count(seeded, Payment) == 0
    assert mismatches() == before + 1


def test_a_session_paid_in_another_currency_than_it_was_created_in_fails(seeded, now, t0):
    evt = purchase(t0=t0, price_cents=14999, amount_total=14999)
    evt["data"]["object"]["currency"] = "jpy"

    with pytest.raises(PermanentError, match="expected 14999 usd.*got 14999 'jpy'"):
        run(seeded, evt, now)
    assert balance(seeded) == 0
