"""Operability on the real services: readiness, metrics gathered from a real worker process
(Prometheus multiprocess mode, as `make run` sets it up), queue depth read from Redis, and the
reconcile beat task run by a real worker against a Stripe stand-in."""

from __future__ import annotations

import time

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import stripe_events as se
from tests.factories.inbox import store_event
from tests.fakes.stripe_events_api import FakeStripeEvents
from tests.integration import support

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def checkout_event(account_id: str) -> dict:
    obj = se.checkout_session(account_id=account_id, mode="subscription", plan_id="growth")
    return se.event("checkout.session.completed", obj, created=int(time.time()) - 30)


def test_readyz_is_ready_on_a_migrated_store_with_a_live_broker(live_web):
    response = requests.get(live_web.url + "/readyz", timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"
    assert all(check["ok"] for check in response.json()["checks"].values())


def test_metrics_page_adds_up_the_workers_metrics_and_reads_queue_depth_from_redis(
    pg_settings, pg_session_factory, worker_factory, live_web, publisher, tmp_path, monkeypatch
):
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    worker_factory(pg_settings, extra_env={"PROMETHEUS_MULTIPROC_DIR": str(multiproc)})
    evt = checkout_event("acct_metrics")
    unknown_package = se.event(
        "checkout.session.completed",
        se.checkout_session(account_id="acct_metrics", mode="payment", package_id="no_such_package"),
    )
    assert live_web.post_event(evt).status_code == 200
    assert live_web.post_event(unknown_package).status_code == 200
    support.wait_for(lambda: support.event_status(pg_session_factory, evt["id"]) == "succeeded", message="processed")
    support.wait_for(lambda: support.event_status(pg_session_factory, unknown_package["id"]) == "failed")

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(multiproc))  # web reads every process's files
    processed = ("billhook_events_processed_total", (("outcome", "done"), ("type", "checkout.session.completed")))
    email_sent = ("billhook_emails_total", (("outcome", "sent"),))  # the activation email, sent by the worker

    def scraped():
        found = samples(requests.get(live_web.url + "/metrics", timeout=10).text)
        return found if found.get(processed) == 1 and found.get(email_sent) == 1 else None

    found = support.wait_for(scraped, message="the worker's metrics on web's page")

    key = (("type", "checkout.session.completed"),)
    assert found[("billhook_event_handler_seconds_count", key)] >= 1
    assert (
        found[("billhook_events_processed_total", (("outcome", "failed"), ("type", "checkout.session.completed")))] == 1
    )
    assert found[("billhook_inbox_events", (("status", "succeeded"),))] == 1
    assert found[("billhook_inbox_events", (("status", "failed"),))] == 1
    assert found[("billhook_email_outbox", (("status", "sent"),))] == 1
    assert found[("billhook_scrape_source_up", (("source", "broker"),))] == 1
    assert found[("billhook_queue_depth", (("queue", pg_settings.queue_name),))] == 0


def test_queue_depth_counts_tasks_no_worker_has_taken(pg_settings, pg_session_factory, live_web, publisher):
    for account in ("acct_q1", "acct_q2"):
        publisher(store_event(pg_session_factory, checkout_event(account)))

    try:
        found = samples(requests.get(live_web.url + "/metrics", timeout=10).text)
    finally:
        redis.Redis.from_url(pg_settings.redis_url).delete(pg_settings.queue_name)  # the test's own queue

    assert found[("billhook_queue_depth", (("queue", pg_settings.queue_name),))] == 2
    assert found[("billhook_inbox_events", (("status", "received"),))] == 2
    assert found[("billhook_inbox_oldest_unprocessed_age_seconds", ())] >= 0


def test_reconcile_task_in_a_worker_stores_missed_stripe_events_and_they_are_processed(
    pg_settings, pg_session_factory, worker_factory, celery_app
):
    stripe = FakeStripeEvents().start()
    try:
        missed = [checkout_event("acct_missed_1"), checkout_event("acct_missed_2")]
        stripe.events = missed
        settings = pg_settings.with_overrides(stripe_api_base=stripe.url)
        worker_factory(settings)

        celery_app.send_task("billhook.reconcile_stripe", queue=settings.queue_name)

        support.wait_for(
            lambda: support.all_succeeded(pg_session_factory, [e["id"] for e in missed]), message="reconciled events"
        )
        assert stripe.calls("GET", "/v1/events")
    finally:
        stripe.stop()
