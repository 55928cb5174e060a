"""Stripe disputes and SCA end to end: signed events over real HTTP, a real Celery worker on
PostgreSQL and Redis; duplicated, concurrent and reordered deliveries land their effects once."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from shared.billing import ledger
from shared.models import CreditLedgerEntry, Dispute, EmailOutbox
from tests.factories import stripe_events as se
from tests.integration import support

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ACCOUNT = "acct_dispute_it"


def test_disputes_take_back_and_restore_credits_once_under_duplicates_and_reordering(
    pg_settings, pg_session_factory, worker_factory, live_web
):
    worker_factory(pg_settings, concurrency=2)
    t0 = int(time.time()) - 600
    won_intent, lost_intent = se.unique("pi"), se.unique("pi")
    purchases = [
        se.event(
            "checkout.session.completed",
            se.checkout_session(
                account_id=ACCOUNT, mode="payment", package_id="value", amount_total=2999, payment_intent=intent
            ),
            created=t0,
        )
        for intent in (won_intent, lost_intent)
    ]
    support.post_all(live_web, purchases)
    support.wait_handled(pg_session_factory, purchases)

    def lifecycle(intent: str, outcome: str) -> list[dict]:
        dispute_id = se.unique("du")
        return [
            se.event(
                "charge.dispute.created",
                se.dispute(payment_intent=intent, amount=2999, dispute_id=dispute_id),
                created=t0 + 60,
            ),
            se.event(
                "charge.dispute.closed",
                se.dispute(payment_intent=intent, amount=2999, dispute_id=dispute_id, status=outcome),
                created=t0 + 120,
            ),
        ]

    won, lost = lifecycle(won_intent, "won"), lifecycle(lost_intent, "lost")
    # Closures first (newest first), each delivery three times at once.
    support.post_all(live_web, [won[1], lost[1], won[0], lost[0]], copies=3)
    support.wait_handled(pg_session_factory, won + lost)

    with pg_session_factory() as session:
        assert ledger.balance(session, ACCOUNT) == 2_000  # the won dispute's package is kept
        states = dict(session.execute(select(Dispute.provider_dispute_id, Dispute.state)).all())
        assert sorted(states.values()) == ["lost", "won"]
        kinds = session.scalars(select(CreditLedgerEntry.kind)).all()
    # The lost one's reversal once; the won one either never reversed (its closure came first) or
    # reversed and restored once each.
    assert kinds.count("dispute_reversal") - kinds.count("dispute_restore") == 1
    assert kinds.count("dispute_restore") <= 1


def test_action_required_sends_one_email_per_invoice(pg_settings, pg_session_factory, worker_factory, live_web):
    worker_factory(pg_settings, concurrency=2)
    checkout, first_invoice, ids = support.subscription_start(ACCOUNT, created=int(time.time()) - 600)
    support.post_all(live_web, [checkout, first_invoice])
    support.wait_handled(pg_session_factory, [checkout, first_invoice])
    obj = se.action_required_invoice(
        subscription_id=ids["subscription"],
        customer=ids["customer"],
        price_id=support.GROWTH_PRICE,
        amount=19900,
        period_start=int(time.time()),
    )
    obj["parent"]["subscription_details"]["metadata"] = {"account_id": ACCOUNT}
    asked = se.event("invoice.payment_action_required", obj)
    asked_again = se.event("invoice.payment_action_required", obj)  # Stripe asks again for the same invoice

    support.post_all(live_web, [asked, asked_again], copies=3)
    support.wait_handled(pg_session_factory, [asked, asked_again])

    with pg_session_factory() as session:
        rows = session.scalars(select(EmailOutbox).filter_by(template="payment_action_required")).all()
        assert len(rows) == 1 and rows[0].context["action_url"] == obj["hosted_invoice_url"]
        assert session.scalar(select(func.count()).select_from(Dispute)) == 0
