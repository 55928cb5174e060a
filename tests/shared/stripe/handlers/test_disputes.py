"""charge.dispute.*: the disputed share of a payment's credits taken back once, given back when
the dispute is won, under duplicated and reordered delivery."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from shared.billing.account_summary import account_summary
from shared.errors import PermanentError, RetryLater
from shared.models import Account, Dispute
from shared.outcome import Outcome
from tests.factories import stripe_events as se
from tests.shared.stripe.handlers.support import (
    ACCOUNT,
    DAY,
    StripeSubscription,
    balance,
    ledger_entries,
    only,
    package_checkout,
    run,
)


def bought_value_package(seeded, now, t0) -> str:
    intent, obj = package_checkout(package_id="value", amount=2999, at=t0)  # 2,000 credits
    run(seeded, se.event("checkout.session.completed", obj, created=t0), now)
    return intent


def dispute_events(intent: str, t0: int, *, amount: int = 2999, outcome: str = "lost") -> tuple[dict, dict]:
    dispute_id = se.unique("du")
    created = se.event(
        "charge.dispute.created",
        se.dispute(payment_intent=intent, amount=amount, dispute_id=dispute_id),
        created=t0 + DAY,
    )
    closed = se.event(
        "charge.dispute.closed",
        se.dispute(payment_intent=intent, amount=amount, dispute_id=dispute_id, status=outcome),
        created=t0 + 5 * DAY,
    )
    return created, closed


def test_dispute_takes_the_credits_back_once_and_a_lost_one_keeps_them(seeded, now, t0):
    intent = bought_value_package(seeded, now, t0)
    created, closed = dispute_events(intent, t0)

    run(seeded, created, now)
    run(seeded, created, now)  # told twice
    assert balance(seeded) == 0
    run(seeded, closed, now)

    assert balance(seeded) == 0
    assert [e.kind for e in ledger_entries(seeded)] == ["purchase_grant", "dispute_reversal"]
    assert only(seeded, Dispute).state == "lost"


def test_won_dispute_restores_the_credits_once(seeded, now, t0):
    intent = bought_value_package(seeded, now, t0)
    created, closed = dispute_events(intent, t0, outcome="won")

    for evt in (created, closed, closed, created):
        run(seeded, evt, now)

    assert balance(seeded) == 2_000
    assert [e.amount for e in ledger_entries(seeded)] == [2_000, -2_000, 2_000]
    dispute = only(seeded, Dispute)
    assert (dispute.state, dispute.credits_reversed, dispute.credits_restored) == ("won", 2_000, 2_000)


@pytest.mark.parametrize("outcome, expected", [("won", 2_000), ("lost", 0), ("warning_closed", 2_000)])
def test_closure_delivered_before_the_creation_ends_the_same(seeded, now, t0, outcome, expected):
    intent = bought_value_package(seeded, now, t0)
    created, closed = dispute_events(intent, t0, outcome=outcome)

    run(seeded, closed, now)
    run(seeded, created, now)  # late: the decision stands

    assert balance(seeded) == expected
    assert only(seeded, Dispute).state == ("lost" if outcome == "lost" else "won")


def test_dispute_takes_back_only_what_a_refund_left_even_below_zero(seeded, now, t0):
    intent = bought_value_package(seeded, now, t0)
    half = se.charge(payment_intent=intent, amount=2999, amount_refunded=1500)
    run(seeded, se.event("charge.refunded", half, created=t0 + DAY), now)
    with seeded.begin() as session:  # the customer spent what was left
        from shared.billing import ledger

        ledger.debit_credits(
            session, Outcome(), account_id=ACCOUNT, amount=999, description="usage", idempotency_key="u1", at=now
        )
    created, _ = dispute_events(intent, t0, amount=2999)

    run(seeded, created, now)

    refunded = 2_000 * 1500 // 2999
    assert balance(seeded) == 2_000 - 999 - 2_000  # all the credits are taken back: the balance owes
    assert only(seeded, Dispute).credits_reversed == 2_000 - refunded


def test_partial_dispute_takes_its_share(seeded, now, t0):
    intent = bought_value_package(seeded, now, t0)
    created, _ = dispute_events(intent, t0, amount=1000)

    run(seeded, created, now)

    assert balance(seeded) == 2_000 - 2_000 * 1000 // 2999


def test_dispute_of_a_subscription_payment_takes_the_plan_credits(seeded, now, t0):
    sub = StripeSubscription(t0)
    intent = se.unique("pi")
    run(seeded, sub.checkout_completed(), now)
    run(seeded, sub.invoice(reason="subscription_create", payment_intent=intent), now)
    created, _ = dispute_events(intent, t0, amount=19900)

    run(seeded, created, now)

    assert balance(seeded) == 0


def test_dispute_shows_in_the_account_summary(seeded, now, t0):
    intent = bought_value_package(seeded, now, t0)
    created, _ = dispute_events(intent, t0)
    run(seeded, created, now)

    with seeded() as session:
        summary = account_summary(session, session.get(Account, ACCOUNT), now=now)
    assert [(d["state"], d["credits_reversed"]) for d in summary["disputes"]] == [("open", 2_000)]


def test_dispute_of_an_unknown_payment_waits(seeded, now, t0):
    created, _ = dispute_events(se.unique("pi"), t0)
    with pytest.raises(RetryLater):
        run(seeded, created, now)


def test_dispute_without_an_amount_fails_loudly(seeded, now, t0):
    intent = bought_value_package(seeded, now, t0)
    obj = se.dispute(payment_intent=intent, amount=1)
    del obj["amount"]
    with pytest.raises(PermanentError):
        run(seeded, se.event("charge.dispute.created", obj, created=t0), now)
    with seeded() as session:
        assert session.scalars(select(Dispute)).all() == []
