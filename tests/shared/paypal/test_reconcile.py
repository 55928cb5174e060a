"""PayPal reconciliation against the local PayPal stand-in's list of webhook events: what the inbox
lacks is stored under PayPal's event id (so a later delivery is a duplicate) and queued once."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from shared import credentials
from shared.errors import NotConfigured
from shared.models import WebhookEvent
from shared.paypal.reconcile import reconcile_paypal
from tests.factories import paypal_events as pe
from tests.factories.inbox import store_event
from tests.fakes.paypal_api import CLIENT_ID, CLIENT_SECRET, INTERNAL_SERVER_ERROR

NOW = datetime.now(UTC).replace(microsecond=0)


class Published(list):
    def __call__(self, pk: int) -> None:
        self.append(pk)


@pytest.fixture
def paypal_settings(settings, fake_paypal):
    return settings.with_overrides(paypal_api_base=fake_paypal.url)


@pytest.fixture
def paypal_provider(seeded):
    with seeded.begin() as session:
        credentials.set_provider(session, "paypal", api_key=CLIENT_ID, api_secret=CLIENT_SECRET)


def _sale_event(hours_ago: float) -> dict:
    at = NOW - timedelta(hours=hours_ago)
    resource = pe.sale(subscription_id=f"I-{pe.unique()}", amount_cents=2900, created=at)
    return pe.event("PAYMENT.SALE.COMPLETED", resource, created=at)


def _stored(seeded) -> list[tuple[str, str]]:
    with seeded() as session:
        return [(e.event_id, e.status) for e in session.scalars(select(WebhookEvent).order_by(WebhookEvent.id))]


def _reconcile(seeded, settings, published, since_hours=3, page_size=100):
    return reconcile_paypal(
        seeded, settings, since=NOW - timedelta(hours=since_hours), now=NOW, enqueue=published, page_size=page_size
    )


def test_missing_events_are_stored_under_paypals_ids_and_queued_once(
    seeded, paypal_settings, paypal_provider, fake_paypal
):
    fake_paypal.webhook_events = [_sale_event(1), _sale_event(2)]
    published = Published()

    result = _reconcile(seeded, paypal_settings, published)

    assert result.seen == 2 and len(result.inserted) == 2
    assert sorted(published) == sorted(result.inserted)
    assert {event_id for event_id, _ in _stored(seeded)} == {e["id"] for e in fake_paypal.webhook_events}
    (call,) = fake_paypal.calls("GET", "/v1/notifications/webhooks-events")
    assert call.query["start_time"] == (NOW - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert call.query["end_time"] == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")

    again = Published()
    assert _reconcile(seeded, paypal_settings, again).inserted == [] and again == []
    assert len(_stored(seeded)) == 2


def test_an_event_the_webhook_already_delivered_is_not_stored_again(
    seeded, paypal_settings, paypal_provider, fake_paypal
):
    delivered, missed = _sale_event(1), _sale_event(2)
    store_event(seeded, delivered)
    fake_paypal.webhook_events = [delivered, missed]

    result = _reconcile(seeded, paypal_settings, Published())

    assert result.seen == 2 and len(result.inserted) == 1
    assert sorted(event_id for event_id, _ in _stored(seeded)) == sorted([delivered["id"], missed["id"]])


def test_every_page_is_followed(seeded, paypal_settings, paypal_provider, fake_paypal):
    fake_paypal.webhook_events = [_sale_event(0.1 * i) for i in range(1, 8)]
    fake_paypal.webhook_events_page_size_cap = 3

    result = _reconcile(seeded, paypal_settings, Published())

    assert result.pages == 3 and result.seen == 7 and len(result.inserted) == 7
    assert len(fake_paypal.calls("GET", "/v1/notifications/webhooks-events")) == 3


def test_events_before_since_are_not_fetched(seeded, paypal_settings, paypal_provider, fake_paypal):
    fake_paypal.webhook_events = [_sale_event(1), _sale_event(10)]
    result = _reconcile(seeded, paypal_settings, Published(), since_hours=3)
    assert result.seen == 1


def test_the_stored_event_is_paypals_event_as_intake_would_store_it(
    seeded, paypal_settings, paypal_provider, fake_paypal
):
    fake_paypal.webhook_events = [_sale_event(1)]
    (pk,) = _reconcile(seeded, paypal_settings, Published()).inserted
    with seeded() as session:
        row = session.get(WebhookEvent, pk)
        assert (row.provider, row.type, row.status) == ("paypal", "PAYMENT.SALE.COMPLETED", "received")
        assert row.event_created_at.replace(tzinfo=UTC) == NOW - timedelta(hours=1)


def test_without_credentials_it_is_not_configured(seeded, paypal_settings, fake_paypal):
    with pytest.raises(NotConfigured):
        _reconcile(seeded, paypal_settings, Published())
    assert fake_paypal.calls() == []


def test_a_failing_paypal_keeps_the_pages_already_stored(seeded, paypal_settings, paypal_provider, fake_paypal):
    from shared.paypal.client import PayPalError

    fake_paypal.webhook_events = [_sale_event(0.1 * i) for i in range(1, 5)]
    fake_paypal.webhook_events_page_size_cap = 2
    original = fake_paypal._list_webhook_events
    calls = []

    def fail_second(request, match):
        calls.append(1)
        if len(calls) == 2:
            return 500, INTERNAL_SERVER_ERROR
        return original(request, match)

    fake_paypal.routes.insert(
        0, ("GET", re.compile("^/v1/notifications/webhooks-events$"), fake_paypal._authorized(fail_second))
    )
    with pytest.raises(PayPalError):
        _reconcile(seeded, paypal_settings, Published())
    assert len(_stored(seeded)) == 2
