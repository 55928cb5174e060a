"""PayPal disputes (CUSTOMER.DISPUTE.*) and reversals (PAYMENT.SALE.REVERSED): credits taken back
once and restored when the seller wins, sharing the rules of Stripe's disputes; a reversal credits
its invoice once, as a refund does."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.errors import PermanentError, RetryLater
from shared.models import Dispute, Invoice, Payment
from tests.factories import paypal_events as pe
from tests.shared.paypal.handlers.support import (
    GROWTH_CREDITS,
    STARTER_CREDITS,
    STARTER_PRICE,
    activated,
    balance,
    capture_event,
    credit_notes,
    emails,
    only,
    run,
    sale_event,
)


def captured(seeded, now) -> str:
    evt = capture_event("ORDER-D1")
    run(seeded, evt, now)
    return evt["resource"]["id"]


def dispute_events(transaction_id, now, *, amount=STARTER_PRICE, outcome="RESOLVED_BUYER_FAVOUR"):
    dispute_id = f"PP-D-{pe.unique()}"
    created = pe.event(
        "CUSTOMER.DISPUTE.CREATED",
        pe.dispute(transaction_id=transaction_id, amount_cents=amount, dispute_id=dispute_id, created=now),
        created=now + timedelta(days=1),
    )
    resolved = pe.event(
        "CUSTOMER.DISPUTE.RESOLVED",
        pe.dispute(
            transaction_id=transaction_id,
            amount_cents=amount,
            dispute_id=dispute_id,
            status="RESOLVED",
            outcome_code=outcome,
            created=now,
            updated=now + timedelta(days=10),
        ),
        created=now + timedelta(days=10),
    )
    return created, resolved


def test_dispute_takes_back_the_capture_credits_once_and_a_lost_one_keeps_them(seeded, now):
    capture_id = captured(seeded, now)
    created, resolved = dispute_events(capture_id, now)

    for evt in (created, created, resolved, resolved):
        run(seeded, evt, now)

    assert balance(seeded) == 0
    assert only(seeded, Dispute).state == "lost"


@pytest.mark.parametrize("order", ["created-first", "resolved-first"])
def test_seller_win_restores_the_credits_in_any_order(seeded, now, order):
    capture_id = captured(seeded, now)
    created, resolved = dispute_events(capture_id, now, outcome="RESOLVED_SELLER_FAVOUR")
    events = (created, resolved) if order == "created-first" else (resolved, created)

    for evt in events:
        run(seeded, evt, now)

    assert balance(seeded) == STARTER_CREDITS
    assert only(seeded, Dispute).state == "won"


def test_dispute_of_a_subscription_sale_takes_its_share(seeded, now):
    run(seeded, activated(now), now)
    sale = sale_event(now + timedelta(seconds=30))
    run(seeded, sale, now)
    created, _ = dispute_events(sale["resource"]["id"], now, amount=9950)  # half of 199.00

    run(seeded, created, now)

    assert balance(seeded) == GROWTH_CREDITS - GROWTH_CREDITS * 9950 // 19900


def test_resolution_without_a_known_outcome_fails_loudly(seeded, now):
    capture_id = captured(seeded, now)
    _, resolved = dispute_events(capture_id, now)
    del resolved["resource"]["dispute_outcome"]

    with pytest.raises(PermanentError):
        run(seeded, resolved, now)
    assert balance(seeded) == STARTER_CREDITS


def test_dispute_of_an_unknown_transaction_waits(seeded, now):
    created, _ = dispute_events("9XX00000UNKNOWN", now)
    with pytest.raises(RetryLater):
        run(seeded, created, now)


def test_sale_reversal_takes_the_period_credits_back_once_and_a_dispute_then_takes_nothing_more(seeded, now):
    run(seeded, activated(now), now)
    sale = sale_event(now + timedelta(seconds=30))
    run(seeded, sale, now)
    sale_id = sale["resource"]["id"]
    reversal = pe.event(
        "PAYMENT.SALE.REVERSED",
        pe.sale_reversal(sale_id=sale_id, amount_cents=19900, created=now + timedelta(days=2)),
        created=now + timedelta(days=2),
    )

    run(seeded, reversal, now)
    run(seeded, reversal, now)
    created, resolved = dispute_events(sale_id, now, amount=19900)
    run(seeded, created, now)
    run(seeded, resolved, now)

    assert balance(seeded) == 0
    assert only(seeded, Payment).status == "refunded"


def sale_reversal_event(sale_id: str, at) -> dict:
    return pe.event(
        "PAYMENT.SALE.REVERSED", pe.sale_reversal(sale_id=sale_id, amount_cents=19900, created=at), created=at
    )


def renewed_sale(seeded, now) -> str:
    run(seeded, activated(now), now)
    sale = sale_event(now + timedelta(seconds=30))
    run(seeded, sale, now)
    return sale["resource"]["id"]


def test_a_sale_reversal_credits_the_sales_invoice_once_and_sends_no_refund_email(seeded, now):
    sale_id = renewed_sale(seeded, now)
    reversal = sale_reversal_event(sale_id, now + timedelta(days=2))

    for _ in range(3):
        run(seeded, reversal, now)

    invoice = only(seeded, Invoice)
    assert credit_notes(seeded) == [(invoice.number, "reversal", 19900)]
    assert "refund_notification" not in emails(seeded)


@pytest.mark.parametrize("order", ["reversal-first", "dispute-first"])
def test_a_reversal_and_a_lost_dispute_of_one_sale_credit_its_invoice_once_in_any_order(seeded, now, order):
    sale_id = renewed_sale(seeded, now)
    reversal = sale_reversal_event(sale_id, now + timedelta(days=2))
    created, resolved = dispute_events(sale_id, now, amount=19900)
    events = [reversal, created, resolved] if order == "reversal-first" else [created, resolved, reversal]

    for evt in events + events:
        run(seeded, evt, now)

    notes = credit_notes(seeded)
    assert len(notes) == 1 and notes[0][2] == 19900
    assert notes[0][1] == ("reversal" if order == "reversal-first" else "dispute_lost")
    assert balance(seeded) == 0


def test_a_capture_reversal_after_a_partial_refund_credits_only_the_rest(seeded, now):
    capture_id = captured(seeded, now)
    half = pe.event("PAYMENT.CAPTURE.REFUNDED", pe.refund(capture_id=capture_id, amount_cents=500))
    reversal = pe.event(
        "PAYMENT.CAPTURE.REVERSED",
        pe.refund(capture_id=capture_id, amount_cents=STARTER_PRICE, total_refunded_cents=STARTER_PRICE),
    )

    for evt in (half, reversal, half, reversal):
        run(seeded, evt, now)

    number = only(seeded, Invoice).number
    assert credit_notes(seeded) == [(number, "refund", 500), (number, "reversal", STARTER_PRICE - 500)]
    assert balance(seeded) == 0
    assert only(seeded, Payment).status == "refunded"
