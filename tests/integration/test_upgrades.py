"""Upgrade credits end to end: signed subscription updates over real HTTP, a real Celery worker on
PostgreSQL and Redis; an upgrade, a downgrade and an upgrade again, delivered three times each,
concurrently and newest first, grant the top plan's difference once."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from shared.billing import ledger, upgrades
from shared.models import CreditLedgerEntry, OutgoingEvent, Plan, Subscription
from tests.integration import support

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ACCOUNT = "acct_upgrade_it"
GROWTH, SCALE = 12_000, 20_000
STARTER_PRICE = "price_billhook_starter_monthly"


def test_up_down_up_delivered_out_of_order_grants_the_difference_once(
    pg_settings, pg_session_factory, worker_factory, live_web
):
    with pg_session_factory.begin() as session:
        session.get(Plan, "scale").upgrade_credits = upgrades.DIFFERENCE
    worker_factory(pg_settings, concurrency=2)
    t0 = int(time.time()) - 3600
    checkout, first_invoice, ids = support.subscription_start(ACCOUNT, created=t0)
    support.post_all(live_web, [checkout, first_invoice])
    support.wait_handled(pg_session_factory, [checkout, first_invoice])

    changes = [
        support.subscription_updated(ids, ACCOUNT, created=t0 + offset, period_start=t0, price=price)
        for offset, price in ((600, support.SCALE_PRICE), (1200, STARTER_PRICE), (1800, support.SCALE_PRICE))
    ]
    support.post_all(live_web, changes[::-1], copies=3)
    support.wait_handled(pg_session_factory, changes)

    with pg_session_factory() as session:
        grants = session.scalars(select(CreditLedgerEntry).filter_by(kind=ledger.GRANT_UPGRADE)).all()
        subscription = session.scalars(
            select(Subscription).filter_by(provider_subscription_id=ids["subscription"])
        ).one()
        told = session.scalars(
            select(OutgoingEvent.idempotency_key).filter_by(account_id=ACCOUNT, type="credits.granted")
        ).all()
        assert ledger.balance(session, ACCOUNT) == SCALE
    assert [g.amount for g in grants] == [SCALE - GROWTH]
    assert (subscription.plan_id, subscription.period_upgrade_credits) == ("scale", SCALE - GROWTH)
    assert (
        len(told) == 2 and f"credits.granted:{grants[0].idempotency_key}" in told
    )  # the first period's, the upgrade's
