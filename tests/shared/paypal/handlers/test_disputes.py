"""PayPal disputes (CUSTOMER.DISPUTE.*) and reversals (PAYMENT.SALE.REVERSED): credits taken back
once and restored when the seller wins, sharing the rules of Stripe's disputes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.errors import PermanentError, RetryLater
from shared.models import Dispute, Payment
from tests.factories import paypal_events as pe
from tests.shared.paypal.handlers.support import (
    GROWTH_CREDITS,
    STARTER_CREDITS,
    STARTER_PRICE,
    activated,
    balance,
    capture_event,
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
