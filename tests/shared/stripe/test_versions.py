"""Stripe API versions: the supported range and its eras, and what happens to an event outside it."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from shared import processing
from shared.errors import PermanentError
from shared.models import CreditLedgerEntry, Payment, Subscription, WebhookEvent
from shared.stripe import client, versions
from shared.stripe.versions import Era, UnsupportedVersion
from tests.factories import stripe_events as se
from tests.shared.stripe.handlers.support import DAY, StripeSubscription, balance, count, only, run, store

NEWER = "2027-03-31.fig"


@pytest.fixture
def t0(now) -> int:
    return int(now.timestamp())


@pytest.mark.parametrize(
    "name, era",
    [
        ("2024-06-20", Era.PRE_BASIL),
        ("2025-02-24.acacia", Era.PRE_BASIL),
        ("2025-03-31.basil", Era.BASIL),
        ("2025-12-15.clover", Era.BASIL),
        (versions.NEWEST_KNOWN, Era.BASIL),
    ],
)
def test_versions_in_the_range_fall_in_their_era(name, era):
    version = versions.parse(name)
    assert (version.era, version.newer_than_known) == (era, False)


@pytest.mark.parametrize(
    "name, named",
    [
        ("2017-08-15", "Stripe API version 2017-08-15 is older than the supported range"),
        ("2024-04-10", "Stripe API version 2024-04-10 is older than the supported range"),
        (None, "no readable api_version (None)"),
        ("", "no readable api_version ('')"),
        ("latest", "no readable api_version ('latest')"),
        (20240620, "no readable api_version (20240620)"),
    ],
)
def test_a_version_before_the_range_or_unreadable_is_refused_naming_it(name, named):
    with pytest.raises(UnsupportedVersion) as refused:
        versions.parse(name)
    assert named in str(refused.value) and "2024-06-20" in str(refused.value)


def test_a_version_newer_than_billhook_knows_is_read_in_the_newest_era_and_flagged():
    version = versions.parse(NEWER)
    assert (version.era, version.newer_than_known) == (Era.BASIL, True)


def test_the_stripe_sdk_requests_in_a_version_billhook_knows():
    # Bumping the SDK moves the version objects fetched from Stripe are rendered in: its shapes
    # must be reviewed (and KNOWN_VERSIONS extended) before it ships.
    version = versions.parse(client.API_VERSION)
    assert not version.newer_than_known and version.era is Era.BASIL


# -- events outside the range, or lacking a field ---------------------------------------------


def fail(session_factory, evt: dict, now) -> WebhookEvent:
    """Run an event the way the worker does when the handler raises a permanent error."""
    pk = store(session_factory, evt, now)
    with pytest.raises(PermanentError) as raised:
        processing.process_event(session_factory, pk, clock=lambda: now)
    processing.record_failure(session_factory, pk, raised.value, at=now, retry_at=None)
    with session_factory() as session:
        return session.get(WebhookEvent, pk)


def no_effects(session_factory) -> bool:
    return count(session_factory, Payment) == count(session_factory, CreditLedgerEntry) == 0


def test_an_event_older_than_the_range_fails_naming_its_version_and_changes_nothing(seeded, now, t0):
    sub = StripeSubscription(t0)
    evt = sub.checkout_completed()
    evt["api_version"] = "2017-08-15"

    row = fail(seeded, evt, now)

    assert row.status == "failed"
    assert "Stripe API version 2017-08-15 is older than the supported range" in row.last_error
    assert no_effects(seeded) and count(seeded, Subscription) == 0


def test_old_invoice_shapes_sent_as_a_current_version_fail_naming_the_missing_field(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    evt = se.event("invoice.paid", sub.invoice(api_version=se.PRE_BASIL)["data"]["object"], api_version=se.CURRENT)

    row = fail(seeded, evt, now)

    assert f"in Stripe API version {se.CURRENT} (basil shapes)" in row.last_error
    assert "has no parent.subscription_details.subscription" in row.last_error
    assert count(seeded, Payment) == 0


def test_current_invoice_shapes_sent_as_2024_06_20_fail_naming_the_old_field(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    evt = se.event("invoice.paid", sub.invoice(api_version=se.CURRENT)["data"]["object"], api_version=se.PRE_BASIL)

    row = fail(seeded, evt, now)

    assert "in Stripe API version 2024-06-20 (pre-basil shapes) has no subscription" in row.last_error


def test_a_period_invoice_without_its_price_fails_instead_of_granting_nothing(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    evt = sub.invoice(reason="subscription_cycle", period=1, api_version=se.PRE_BASIL)
    for line in evt["data"]["object"]["lines"]["data"]:
        line["price"] = line["plan"] = None

    row = fail(seeded, evt, now)

    assert "has no lines.data[].price (or .plan)" in row.last_error
    assert balance(seeded) == 12_000  # the checkout's period only


def test_a_subscription_without_its_period_fails_naming_the_field(seeded, now, t0):
    sub = StripeSubscription(t0)
    evt = sub.updated(at=t0)
    for item in evt["data"]["object"]["items"]["data"]:
        del item["current_period_end"]

    row = fail(seeded, evt, now)

    assert "has no items.data[].current_period_end" in row.last_error
    assert count(seeded, Subscription) == 0


def test_an_event_newer_than_billhook_knows_is_applied_logged_and_counted(seeded, now, t0, caplog):
    sub = StripeSubscription(t0)
    counted = REGISTRY.get_sample_value("billhook_stripe_newer_api_version_total", {"api_version": NEWER}) or 0
    evt = sub.checkout_completed()
    evt["api_version"] = NEWER

    with caplog.at_level(logging.WARNING, logger="billhook.stripe.versions"):
        assert run(seeded, evt, now).outcome == processing.DONE

    assert balance(seeded) == 12_000 and only(seeded, Subscription).status == "active"
    assert any(NEWER in r.getMessage() for r in caplog.records)
    assert REGISTRY.get_sample_value("billhook_stripe_newer_api_version_total", {"api_version": NEWER}) == counted + 1


# -- versions seen recently -------------------------------------------------------------------


def test_recent_versions_count_the_latest_stripe_events_and_warn_about_the_unreadable(seeded, now, t0):
    sub = StripeSubscription(t0)
    for version in ("2017-08-15", "2017-08-15", se.PRE_BASIL, se.CURRENT, NEWER):
        evt = sub.updated(at=t0 + DAY)
        evt["api_version"] = version
        store(seeded, evt, now)
    store(seeded, {**sub.updated(at=t0), "api_version": None}, now + timedelta(seconds=1))

    with seeded() as session:
        seen = versions.recent_versions(session)
        assert versions.recent_versions(session, limit=1) == {versions.NO_VERSION: 1}
        assert session.scalar(select(WebhookEvent.id).filter_by(provider="paypal")) is None

    assert seen == {"2017-08-15": 2, se.PRE_BASIL: 1, se.CURRENT: 1, NEWER: 1, versions.NO_VERSION: 1}
    warnings = versions.version_warnings(seen)
    assert len(warnings) == 3
    assert any("2 recent Stripe events in API version 2017-08-15" in w and "they fail" in w for w in warnings)
    assert any(NEWER in w and "newer than billhook knows" in w for w in warnings)
    assert any(versions.NO_VERSION in w for w in warnings)
