"""Outgoing webhooks end to end: signed Stripe events over HTTP, a real Celery worker on
PostgreSQL and Redis, and a local receiver standing in for the main app that verifies every
delivery with the `standardwebhooks` package and counts deliveries per webhook-id. Every state
change arrives, in a gapless per-account sequence, through a receiver that answers 500 for a
while, a worker killed mid-delivery, and a secret rotation."""

from __future__ import annotations

import time

import pytest
import requests
from sqlalchemy import select

from shared.models import OutgoingDelivery
from shared.models.outgoing import DeliveryStatus
from shared.outgoing import endpoints
from tests.factories import stripe_events as se
from tests.fakes.receiver import PATH, Receiver
from tests.integration import support

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

SERVICE_AUTH = {"Authorization": "Bearer test-service-token"}
DAY = 86_400


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def outgoing_settings(pg_settings):
    # Retries within a test: backoff from 0.2 s, capped at 0.8 s (below the 1 s countdown cap).
    return pg_settings.with_overrides(
        outgoing_retry_base_seconds=0.2, outgoing_retry_max_seconds=0.8, sweep_interval_seconds=0.5
    )


def register(session_factory, receiver: Receiver) -> str:
    with session_factory.begin() as session:
        created = endpoints.add_endpoint(session, receiver.url, allow_private=True, at=support_now())
    receiver.secrets = [created.secret]
    return created.endpoint.id


def support_now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def deliveries(session_factory) -> list[OutgoingDelivery]:
    with session_factory() as session:
        return list(session.scalars(select(OutgoingDelivery).order_by(OutgoingDelivery.id)))


def all_delivered(session_factory, expected: int):
    rows = deliveries(session_factory)
    return len(rows) == expected and all(r.status == DeliveryStatus.DELIVERED for r in rows)


def wait_delivered(session_factory, expected: int, worker, receiver, timeout: float = 60.0) -> None:
    try:
        support.wait_for(lambda: all_delivered(session_factory, expected), timeout, message=f"{expected} delivered")
    except AssertionError as exc:
        seen = [(r.id, r.status, r.attempts, r.last_error) for r in deliveries(session_factory)]
        raise AssertionError(
            f"{exc}\ndeliveries: {seen}\nreceived: {dict(receiver.accepted)}\nworker log:\n{worker.log_tail()}"
        ) from None


def assert_gapless(receiver: Receiver, account_id: str) -> None:
    sequences = [e["sequence"] for e in receiver.by_account(account_id)]
    assert sequences == list(range(1, len(sequences) + 1)), sequences


def test_every_state_change_of_a_scenario_arrives_signed_once_per_id_with_no_sequence_gap(
    outgoing_settings, pg_session_factory, worker_factory, live_web_factory, receiver
):
    register(pg_session_factory, receiver)
    receiver.fail_next(4)  # the main app is down for the first few deliveries
    worker = worker_factory(outgoing_settings, concurrency=2)
    web = live_web_factory(outgoing_settings)
    now = int(time.time())

    checkout, first_invoice, ids = support.subscription_start("acct_out", created=now - 4 * DAY)
    intent = first_invoice["data"]["object"]["payments"]["data"][0]["payment"]["payment_intent"]
    renewal = support.renewal(ids, "acct_out", period_start=now - 3 * DAY, created=now - 3 * DAY)
    failed_obj = support.renewal(ids, "acct_out", period_start=now - 2 * DAY, created=now - 2 * DAY)["data"]["object"]
    failed_obj.update(status="open", amount_paid=0, amount_remaining=19900, id=se.unique("in"))
    failed = se.event("invoice.payment_failed", failed_obj, created=now - 2 * DAY)
    cancel = support.subscription_updated(
        ids, "acct_out", created=now - DAY, period_start=now - 3 * DAY, cancel_at_period_end=True
    )
    refund = se.event(
        "charge.refunded", se.charge(payment_intent=intent, amount=19900, amount_refunded=19900), created=now - 600
    )
    dispute_id = se.unique("du")
    disputed = [
        se.event(
            f"charge.dispute.{kind}",
            se.dispute(payment_intent=intent, amount=19900, dispute_id=dispute_id, status=status),
            created=now - seconds,
        )
        for kind, status, seconds in (("created", "needs_response", 500), ("closed", "won", 400))
    ]
    posted = []
    for evt in (checkout, first_invoice, renewal, failed, cancel, refund, *disputed):
        for copy in (evt, {**evt, "id": se.unique("evt")}):  # and each again under a new event id
            assert web.post_event(copy).status_code == 200
            posted.append(copy["id"])
    support.wait_for(lambda: support.all_succeeded(pg_session_factory, posted), 60, message="events processed")
    debit = {"account_id": "acct_out", "amount": 100, "idempotency_key": "use-1"}
    for _ in range(2):
        response = requests.post(
            web.url + "/api/v1/internal/credits/debit", json=debit, headers=SERVICE_AUTH, timeout=10
        )
        assert response.status_code in (200, 201), response.text

    expected = [
        "subscription.activated",
        "credits.granted",
        "payment.succeeded",
        "payment.succeeded",
        "credits.granted",
        "subscription.past_due",
        "payment.failed",
        "subscription.updated",
        "payment.refunded",
        "credits.reversed",
        "dispute.created",  # the refund took its credits back already: the dispute moves none
        "dispute.won",
        "credits.debited",
    ]
    wait_delivered(pg_session_factory, len(expected), worker, receiver)

    assert sorted(receiver.types("acct_out")) == sorted(expected)
    assert_gapless(receiver, "acct_out")
    assert receiver.refused_signatures == 0
    assert set(receiver.accepted.values()) == {1}
    by_sequence = receiver.by_account("acct_out")
    assert by_sequence[-1]["data"]["billing"]["balance"] == sum(
        e["data"]["credits"]["amount"] for e in by_sequence if e["type"].startswith("credits.")
    )
    pulled = requests.get(web.url + "/api/v1/internal/accounts/acct_out", headers=SERVICE_AUTH, timeout=10)
    assert pulled.json() == by_sequence[-1]["data"]["billing"]  # pull and push say the same
    retried = [r for r in deliveries(pg_session_factory) if r.attempts > 1]
    assert retried, "the receiver's 500s were retried"


def test_a_worker_killed_mid_delivery_loses_nothing(
    outgoing_settings, pg_session_factory, worker_factory, live_web_factory, receiver
):
    register(pg_session_factory, receiver)
    receiver.server.stall_next(PATH, 8.0)  # the first delivery hangs in the receiver
    first = worker_factory(outgoing_settings, concurrency=1)
    web = live_web_factory(outgoing_settings)
    checkout, _, _ = support.subscription_start("acct_kill", created=int(time.time()) - 60)
    assert web.post_event(checkout).status_code == 200
    support.wait_for(lambda: receiver.server.requests, 30, message="a delivery in flight")

    first.kill()  # mid-request: its transaction rolls back, the row stays pending
    second = worker_factory(outgoing_settings, concurrency=1, beat=True)  # the sweeper runs in its beat

    wait_delivered(pg_session_factory, 2, second, receiver)
    assert sorted(receiver.types("acct_kill")) == ["credits.granted", "subscription.activated"]
    assert_gapless(receiver, "acct_kill")
    assert receiver.refused_signatures == 0


def test_a_rotation_keeps_both_secrets_valid_through_the_overlap(
    outgoing_settings, pg_session_factory, worker_factory, live_web_factory, receiver
):
    endpoint_id = register(pg_session_factory, receiver)
    old = receiver.secrets[0]
    web = live_web_factory(outgoing_settings)
    rotated = requests.post(
        f"{web.url}/api/v1/internal/endpoints/{endpoint_id}/rotate-secret",
        json={"overlap_seconds": 3600},
        headers=SERVICE_AUTH,
        timeout=10,
    )
    assert rotated.status_code == 200
    receiver.secrets = [old, rotated.json()["secret"]]  # each verifies every delivery on its own
    worker = worker_factory(outgoing_settings, concurrency=2)
    checkout, _, _ = support.subscription_start("acct_rot", created=int(time.time()) - 60)
    assert web.post_event(checkout).status_code == 200

    wait_delivered(pg_session_factory, 2, worker, receiver)
    assert receiver.refused_signatures == 0
    assert sorted(receiver.types("acct_rot")) == ["credits.granted", "subscription.activated"]
