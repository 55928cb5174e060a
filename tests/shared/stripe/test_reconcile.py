"""Reconciliation against a local stand-in for Stripe's Events API, and subscription sync."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from shared import processing
from shared.billing.subscriptions import find_subscription
from shared.dispatch import handled_types
from shared.errors import ProviderError
from shared.models import Subscription, WebhookEvent
from shared.stripe.reconcile import reconcile_stripe, sync_stripe_subscription
from tests.factories import stripe_events as se
from tests.factories.inbox import store_event
from tests.fakes.stripe_events_api import FakeStripeEvents

GROWTH_PRICE = "price_billhook_growth_monthly"
SCALE_PRICE = "price_billhook_scale_monthly"
MONTH = 30 * 86400


@pytest.fixture
def fake_stripe():
    server = FakeStripeEvents().start()
    yield server
    server.stop()


@pytest.fixture
def stripe_settings(settings, fake_stripe):
    return settings.with_overrides(stripe_api_base=fake_stripe.url)


class Published(list):
    def __call__(self, pk: int) -> None:
        self.append(pk)


def store(session_factory, evt: dict) -> int:
    return store_event(session_factory, evt)


def checkout_evt(created: int) -> dict:
    obj = se.checkout_session(account_id=se.unique("acct"), mode="subscription", plan_id="growth")
    return se.event("checkout.session.completed", obj, created=created)


def test_reconcile_pages_through_stripe_and_stores_only_what_the_inbox_lacks(seeded, stripe_settings, fake_stripe):
    now = datetime.now(UTC)
    base = int(now.timestamp()) - 3600
    events = [checkout_evt(base + i) for i in range(5)]
    too_old = checkout_evt(base - 2 * 86400)
    fake_stripe.events = [*events, too_old]
    already = [store(seeded, events[1]), store(seeded, events[3])]  # delivered by webhook
    published = Published()

    result = reconcile_stripe(
        seeded, stripe_settings, since=now - timedelta(days=1), now=now, enqueue=published, page_size=2
    )

    assert (result.pages, result.seen) == (3, 5)
    with seeded() as session:
        stored = {e.event_id: e for e in session.scalars(select(WebhookEvent))}
    assert set(stored) == {e["id"] for e in events}
    assert sorted(result.inserted) == sorted(stored[e["id"]].id for e in (events[0], events[2], events[4]))
    assert published == result.inserted
    assert all(stored[e["id"]].status == "received" for e in events)
    assert stored[events[0]["id"]].payload["data"]["object"]["id"] == events[0]["data"]["object"]["id"]
    assert set(already).isdisjoint(result.inserted)

    calls = fake_stripe.calls("GET", "/v1/events")
    assert [c.query.get("starting_after") for c in calls] == [None, events[3]["id"], events[1]["id"]]
    assert sorted(v for k, v in calls[0].query.items() if k.startswith("types[")) == handled_types("stripe")
    assert calls[0].query["created[gte]"] == str(int((now - timedelta(days=1)).timestamp()))
    assert calls[0].header("Authorization") == "Bearer sk_test_123"


def test_reconcile_twice_stores_nothing_new_and_the_stored_events_run_like_deliveries(
    seeded, stripe_settings, fake_stripe
):
    now = datetime.now(UTC)
    fake_stripe.events = [checkout_evt(int(now.timestamp()) - 60)]
    first = reconcile_stripe(seeded, stripe_settings, since=now - timedelta(hours=1), now=now, enqueue=Published())
    second = reconcile_stripe(seeded, stripe_settings, since=now - timedelta(hours=1), now=now, enqueue=Published())

    assert len(first.inserted) == 1 and second.inserted == []
    assert processing.process_event(seeded, first.inserted[0], clock=lambda: now).outcome == "done"


def test_reconcile_with_a_dead_broker_keeps_the_events_for_the_sweeper(seeded, stripe_settings, fake_stripe):
    now = datetime.now(UTC)
    fake_stripe.events = [checkout_evt(int(now.timestamp()) - 60)]

    def broker_down(_pk):
        raise ConnectionError("broker down")

    result = reconcile_stripe(seeded, stripe_settings, since=now - timedelta(hours=1), now=now, enqueue=broker_down)

    assert result.enqueue_failed and len(result.inserted) == 1
    with seeded() as session:
        assert session.get(WebhookEvent, result.inserted[0]).status == "received"


def local_subscription(session_factory, subscription_id: str, account_id: str) -> None:
    """An active growth subscription billhook learnt from an event an hour ago."""
    created = int(time.time()) - 3600
    evt = se.event(
        "customer.subscription.updated",
        se.subscription(
            subscription_id=subscription_id,
            customer=se.unique("cus"),
            price_id=GROWTH_PRICE,
            period_start=created,
            period_end=created + MONTH,
            metadata={"account_id": account_id},
        ),
        created=created,
    )
    pk = store(session_factory, evt)
    assert processing.process_event(session_factory, pk, clock=lambda: datetime.now(UTC)).outcome == "done"


def test_sync_subscription_fixes_drift_from_stripe_and_an_older_delivery_cannot_undo_it(
    seeded, stripe_settings, fake_stripe
):
    local_subscription(seeded, "sub_drift", "acct_drift")
    remote = fake_stripe.add_subscription(subscription_id="sub_drift", customer="cus_x", price_id=SCALE_PRICE)
    remote.update(status="past_due", cancel_at_period_end=True)
    now = datetime.now(UTC)

    result = sync_stripe_subscription(seeded, stripe_settings, "sub_drift", now=now)

    assert result.changed and result.outcome == "done"
    assert (result.before["status"], result.before["plan"]) == ("active", "growth")
    assert (result.after["status"], result.after["plan"], result.after["cancel_at_period_end"]) == (
        "past_due",
        "scale",
        True,
    )
    assert result.after["current_period_end"] == datetime.fromtimestamp(1_792_592_000, UTC)
    with seeded() as session:
        event = session.get(WebhookEvent, result.event_pk)
        assert (event.type, event.status) == ("customer.subscription.updated", "succeeded")
        assert event.event_id.startswith("billhook_sync_sub_drift_")

    # A delivery Stripe created before the sync (late, out of order) is older knowledge.
    stale = se.event(
        "customer.subscription.updated",
        se.subscription(
            subscription_id="sub_drift",
            customer="cus_x",
            price_id=GROWTH_PRICE,
            period_start=1,
            period_end=2,
            metadata={"account_id": "acct_drift"},
        ),
        created=int(now.timestamp()) - 60,
    )
    processing.process_event(seeded, store(seeded, stale), clock=lambda: datetime.now(UTC))
    with seeded() as session:
        assert find_subscription(session, "stripe", "sub_drift").status == "past_due"


def test_sync_of_a_subscription_stripe_does_not_know_changes_nothing(seeded, stripe_settings):
    with pytest.raises(ProviderError, match="resource_missing"):
        sync_stripe_subscription(seeded, stripe_settings, "sub_nowhere", now=datetime.now(UTC))
    with seeded() as session:
        assert session.scalars(select(Subscription)).all() == []
        assert session.scalars(select(WebhookEvent)).all() == []


def test_beat_runs_reconciliation_at_the_configured_interval(settings):
    from worker.celery_app import make_celery
    from worker.messages import RECONCILE_STRIPE

    app = make_celery(settings.with_overrides(reconcile_interval_seconds=900.0))
    try:
        assert app.conf.beat_schedule[RECONCILE_STRIPE] == {"task": RECONCILE_STRIPE, "schedule": 900.0}
    finally:
        app.close()


def test_reconcile_timings_come_from_the_environment(tmp_path):
    from shared.config import Settings

    env = {
        "BILLHOOK_VAR_DIR": str(tmp_path),
        "BILLHOOK_RECONCILE_INTERVAL_SECONDS": "600",
        "BILLHOOK_RECONCILE_LOOKBACK_SECONDS": "7200",
    }
    settings = Settings.from_env(env)
    assert (settings.reconcile_interval_seconds, settings.reconcile_lookback_seconds) == (600.0, 7200)
