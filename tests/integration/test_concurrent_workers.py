"""Two real worker processes (two pool children each) racing over the same and related events:
every effect still lands exactly once and no subscription update is lost."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from shared.billing import ledger
from shared.models import CreditLedgerEntry, Invoice, Payment, Subscription, WebhookEvent
from tests.factories import stripe_events as se
from tests.factories.inbox import store_event
from tests.integration import support

pytestmark = pytest.mark.redis  # on PostgreSQL; on SQLite where it is missing (not in CI)


def _count(session, model, **filters) -> int:
    return session.scalar(select(func.count()).select_from(model).filter_by(**filters))


def _two_workers(worker_factory, settings):
    first = worker_factory(settings, concurrency=2, wait=False)
    second = worker_factory(settings, concurrency=2, wait=False)
    return [first.wait_ready(), second.wait_ready()]


def test_same_event_enqueued_twenty_times_to_two_workers_grants_credits_once(
    store_settings, store_session_factory, worker_factory, publisher
):
    workers = _two_workers(worker_factory, store_settings)
    purchase = se.event(
        "checkout.session.completed",
        se.checkout_session(account_id="acct_race", mode="payment", package_id="pro", amount_total=5999),
    )
    event_pk = store_event(store_session_factory, purchase)
    for _ in range(20):
        publisher(event_pk)

    # Every one of the 20 tasks ran (and the event was handled exactly once among them).
    support.wait_for(lambda: sum(len(w.task_logs(event_pk)) for w in workers) == 20, message="20 task runs")
    outcomes = sorted(entry["outcome"] for w in workers for entry in w.task_logs(event_pk))
    assert outcomes == ["already_done"] * 19 + ["done"]
    with store_session_factory() as session:
        assert session.get(WebhookEvent, event_pk).status == "succeeded"
        assert ledger.balance(session, "acct_race") == 5_000
        assert _count(session, CreditLedgerEntry, account_id="acct_race") == 1
        assert _count(session, Payment, account_id="acct_race") == 1
        assert _count(session, Invoice, account_id="acct_race") == 1


def test_checkout_and_first_invoice_handled_at_once_grant_the_plan_credits_once(
    store_settings, store_session_factory, worker_factory, publisher
):
    _two_workers(worker_factory, store_settings)
    created = int(time.time()) - 60
    accounts = [f"acct_pair_{i}" for i in range(8)]
    events = []
    for account in accounts:
        checkout, first_invoice, _ = support.subscription_start(account, created=created)
        events += [checkout, first_invoice]
    pks = [store_event(store_session_factory, evt) for evt in events]
    for pk in pks:  # each pair published back to back, so the two run at the same time
        publisher(pk)

    support.wait_for(lambda: support.all_succeeded(store_session_factory, [e["id"] for e in events]), 30)
    with store_session_factory() as session:
        for account in accounts:
            assert ledger.balance(session, account) == 12_000, account
            assert _count(session, CreditLedgerEntry, account_id=account) == 1
            assert _count(session, Payment, account_id=account) == 1
            sub = session.scalars(select(Subscription).filter_by(account_id=account)).one()
            assert (sub.status, sub.plan_id) == ("active", "growth")
            assert sub.current_period_start == datetime.fromtimestamp(created, UTC)


def test_many_renewals_and_updates_for_one_subscription_at_once_lose_nothing(
    store_settings, store_session_factory, worker_factory, publisher
):
    workers = _two_workers(worker_factory, store_settings)
    t0 = int(time.time()) - 400 * 24 * 3600
    checkout, first_invoice, ids = support.subscription_start("acct_many", created=t0)
    for evt in (checkout, first_invoice):
        publisher(store_event(store_session_factory, evt))
    support.wait_for(lambda: support.all_succeeded(store_session_factory, [checkout["id"], first_invoice["id"]]))

    renewals, updates = [], []
    for n in range(1, 11):
        start = t0 + n * support.MONTH
        renewals.append(support.renewal(ids, "acct_many", period_start=start, created=start + 10))
        # The newest update also schedules the cancellation: the final state must show it.
        updates.append(
            support.subscription_updated(
                ids, "acct_many", created=start + 11, period_start=start, cancel_at_period_end=n == 10
            )
        )
    batch = renewals + updates
    random.Random(7).shuffle(batch)
    pks = [store_event(store_session_factory, evt) for evt in batch]
    for pk in pks:
        publisher(pk)
    for pk in pks[:5]:  # and some duplicates on top
        publisher(pk)

    support.wait_for(lambda: support.all_succeeded(store_session_factory, [e["id"] for e in batch]), 30)
    support.wait_for(lambda: sum(len(w.task_logs()) for w in workers) == 2 + 25, message="all 27 task runs")
    with store_session_factory() as session:
        assert ledger.balance(session, "acct_many") == 11 * 12_000
        assert _count(session, CreditLedgerEntry, account_id="acct_many") == 11
        assert _count(session, Payment, account_id="acct_many") == 11
        assert _count(session, Invoice, account_id="acct_many") == 11
        sub = session.scalars(select(Subscription)).one()
        newest = updates[-1]
        assert sub.last_event_id == newest["id"]
        assert sub.cancel_at_period_end is True
        assert sub.current_period_start == datetime.fromtimestamp(t0 + 10 * support.MONTH, UTC)
        assert sub.status == "active"
