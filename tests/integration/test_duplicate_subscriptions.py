"""Two subscriptions live for one account, end to end: signed events over real HTTP, a real Celery
worker on PostgreSQL and Redis. The later by Stripe's `created` grants nothing however its events
and the earlier one's are duplicated, reordered and delivered concurrently."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from shared.billing import ledger
from shared.models import CreditLedgerEntry, Subscription
from tests.factories import stripe_events as se
from tests.integration import support

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ACCOUNT = "acct_duplicate_it"


def first_period(created: int) -> tuple[str, list[dict]]:
    """A subscription Stripe created at `created`: its customer.subscription.created, checkout and
    first invoice."""
    checkout, invoice, ids = support.subscription_start(ACCOUNT, created=created + 5)
    state = se.subscription(
        subscription_id=ids["subscription"],
        customer=ids["customer"],
        price_id=support.GROWTH_PRICE,
        period_start=created,
        period_end=created + support.MONTH,
        metadata={"account_id": ACCOUNT, "plan_id": "growth"},
    )
    state["created"] = created
    return ids["subscription"], [
        se.event("customer.subscription.created", state, created=created + 1),
        checkout,
        invoice,
    ]


def test_the_later_subscription_grants_nothing_when_the_earlier_arrives_last_concurrently(
    pg_settings, pg_session_factory, worker_factory, live_web
):
    worker_factory(pg_settings, concurrency=2)
    t0 = int(time.time()) - 3600
    earlier_id, earlier = first_period(t0)
    later_id, later = first_period(t0 + 300)

    support.post_all(live_web, later)  # the later subscription first: it grants, nothing says otherwise yet
    support.wait_handled(pg_session_factory, later)
    with pg_session_factory() as session:
        assert ledger.balance(session, ACCOUNT) == 12_000

    # Then the earlier one, newest first, each delivery three times at once, and the later's again.
    support.post_all(live_web, list(reversed(earlier)) + later, copies=3)
    support.wait_handled(pg_session_factory, earlier + later)

    with pg_session_factory() as session:
        assert ledger.balance(session, ACCOUNT) == 12_000
        rows = {
            s.provider_subscription_id: s for s in session.scalars(select(Subscription).filter_by(account_id=ACCOUNT))
        }
        kinds = sorted(session.scalars(select(CreditLedgerEntry.kind).filter_by(account_id=ACCOUNT)))
    assert rows[earlier_id].duplicate_of_id is None
    assert rows[later_id].duplicate_of_id == rows[earlier_id].id
    assert kinds == ["duplicate_reversal", "subscription_grant", "subscription_grant"]
