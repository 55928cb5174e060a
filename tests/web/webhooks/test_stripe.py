"""POST /webhooks/stripe: verify, store, commit, enqueue, answer. Errors are JSON, never a 500."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from shared import credentials, processing
from shared.billing import ledger
from shared.db import make_engine, make_sessionmaker
from shared.models import Base, Subscription, WebhookEvent
from shared.stripe.signing import stripe_signature_header
from tests.conftest import TEST_WEBHOOK_SECRET, Enqueued
from tests.factories import stripe_events as se

URL = "/webhooks/stripe"


def checkout_event(**overrides) -> dict:
    return se.event(
        "checkout.session.completed",
        se.checkout_session(account_id="acct_web", mode="subscription", plan_id="growth", email="web@example.com"),
        **overrides,
    )


def post_signed(client, evt: dict, secret: str = TEST_WEBHOOK_SECRET, **kwargs):
    body, headers = se.signed(evt, secret, **kwargs)
    return client.post(URL, data=body, headers=headers)


def post_raw(client, body: bytes, secret: str = TEST_WEBHOOK_SECRET):
    headers = {"Content-Type": "application/json", "Stripe-Signature": stripe_signature_header(body, secret)}
    return client.post(URL, data=body, headers=headers)


def stored_events(session_factory) -> list[WebhookEvent]:
    with session_factory() as session:
        return list(session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


def assert_json_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    assert response.json["error"]["code"] == code
    assert response.json["error"]["message"]


# -- accepted deliveries ----------------------------------------------------------------------


def test_valid_signed_event_is_stored_received_and_enqueued_once(client, seeded, enqueued):
    evt = checkout_event()

    response = post_signed(client, evt)

    assert response.status_code == 200
    assert response.json == {"received": True, "duplicate": False, "status": "received"}
    [row] = stored_events(seeded)
    assert (row.provider, row.event_id, row.type, row.status) == ("stripe", evt["id"], evt["type"], "received")
    assert row.payload == evt
    assert row.event_created_at == datetime.fromtimestamp(evt["created"], UTC)
    assert enqueued == [row.id]


def assert_body_stored_as_signed(client, session_factory) -> None:
    evt = checkout_event()
    body = json.dumps(evt, indent=1, sort_keys=True)  # a layout of its own: a re-serialization would differ

    response = post_raw(client, body.encode())

    assert response.status_code == 200
    with session_factory() as session:
        stored_text = session.execute(text("SELECT CAST(payload AS TEXT) FROM webhook_events")).scalar_one()
    assert stored_text == body
    assert stored_events(session_factory)[0].payload == evt


def test_the_body_is_stored_as_signed_not_re_serialized(client, seeded, enqueued):
    assert_body_stored_as_signed(client, seeded)


def postgresql_store(settings, pg_database):
    """Settings and an engine for an empty PostgreSQL database with billhook's tables and the test's
    Stripe webhook secret."""
    pg_settings = settings.with_overrides(database_url=pg_database)
    engine = make_engine(pg_settings)
    Base.metadata.create_all(engine)
    with make_sessionmaker(engine).begin() as session:
        credentials.set_provider(session, "stripe", webhook_secrets=[TEST_WEBHOOK_SECRET])
    return pg_settings, engine


@pytest.mark.postgres
def test_the_body_is_stored_as_signed_on_postgresql(settings, pg_database, enqueued):
    from web import create_app

    pg_settings, engine = postgresql_store(settings, pg_database)
    app = create_app(pg_settings, enqueue=enqueued)

    assert_body_stored_as_signed(app.test_client(), make_sessionmaker(engine))

    app.extensions["billhook"].dispose()
    engine.dispose()


@pytest.mark.postgres
def test_an_intake_connection_the_server_dropped_is_retried_not_answered_503(settings, pg_database, enqueued):
    from web import create_app

    pg_settings, engine = postgresql_store(settings, pg_database)
    app = create_app(pg_settings, enqueue=enqueued)
    client = app.test_client()
    assert post_signed(client, checkout_event(event_id="evt_before_drop")).status_code == 200
    # The database restarts (here: ends every session but ours), leaving web's pooled connections dead.
    with engine.connect() as admin:
        ended = admin.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert ended >= 1

    response = post_signed(client, checkout_event(event_id="evt_after_drop"))

    assert response.status_code == 200, response.data
    assert response.json["duplicate"] is False
    assert [e.event_id for e in stored_events(make_sessionmaker(engine))] == ["evt_before_drop", "evt_after_drop"]
    assert len(enqueued) == 2
    app.extensions["billhook"].dispose()
    engine.dispose()


@pytest.mark.postgres
def test_an_event_whose_insert_committed_before_the_connection_dropped_is_still_enqueued(
    settings, pg_database, enqueued, monkeypatch
):
    from shared import inbox
    from web import create_app

    pg_settings, engine = postgresql_store(settings, pg_database)
    app = create_app(pg_settings, enqueue=enqueued)
    dropped = []
    record = inbox.record_event_on_cursor

    def answer_lost(cursor, sql, **fields):
        # The INSERT ran in autocommit (committed); then the server ends the session, and the
        # intake sees the drop (the retry must find the row that did commit).
        stored = record(cursor, sql, **fields)
        if not dropped:
            dropped.append(stored)
            with engine.connect() as admin:
                admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": cursor.connection.info.backend_pid})
            cursor.execute("SELECT 1")  # raises: the server closed the connection
        return stored

    monkeypatch.setattr(inbox, "record_event_on_cursor", answer_lost)

    response = post_signed(app.test_client(), checkout_event(event_id="evt_answer_lost"))

    assert response.status_code == 200, response.data
    assert dropped, "the drop was not simulated"
    [row] = stored_events(make_sessionmaker(engine))
    assert (row.event_id, row.status) == ("evt_answer_lost", "received")
    assert enqueued == [row.id]  # found on the retry, and queued: not left to the sweeper
    app.extensions["billhook"].dispose()
    engine.dispose()


def test_duplicate_delivery_answers_200_and_enqueues_nothing_new(client, seeded, enqueued):
    evt = checkout_event()
    post_signed(client, evt)

    again = post_signed(client, evt)

    assert again.status_code == 200
    assert again.json["duplicate"] is True
    assert len(stored_events(seeded)) == 1
    assert len(enqueued) == 1


def test_unknown_event_type_is_stored_ignored_and_not_enqueued(client, seeded, enqueued):
    evt = se.event("customer.tax_id.created", se.fixture("tax_id"))

    response = post_signed(client, evt)

    assert response.status_code == 200
    assert response.json["status"] == "ignored"
    [row] = stored_events(seeded)
    assert row.status == "ignored"
    assert enqueued == []


def test_either_of_two_rotated_secrets_verifies(client, seeded, enqueued):
    new_secret = "whsec_rotated_" + "f00d" * 8
    with seeded.begin() as session:
        credentials.set_provider(session, "stripe", webhook_secrets=[new_secret, TEST_WEBHOOK_SECRET])

    assert post_signed(client, checkout_event(), secret=TEST_WEBHOOK_SECRET).status_code == 200
    assert post_signed(client, checkout_event(), secret=new_secret).status_code == 200
    assert len(enqueued) == 2


def test_intake_logs_one_line_naming_the_event_but_not_the_payload(client, seeded, caplog):
    evt = checkout_event()
    with caplog.at_level(logging.INFO, logger="billhook.web"):
        post_signed(client, evt)
        post_signed(client, evt)

    logged = "\n".join(r.getMessage() for r in caplog.records)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name.startswith("billhook.web")]
    assert [(line["msg"], line["event"], line["type"], line["outcome"], line["status"]) for line in lines] == [
        ("request", evt["id"], "checkout.session.completed", "accepted", 200),
        ("request", evt["id"], "checkout.session.completed", "duplicate", 200),
    ]
    assert "web@example.com" not in logged
    assert TEST_WEBHOOK_SECRET not in logged


# -- refused deliveries -----------------------------------------------------------------------


def test_missing_signature_is_400(client, seeded, enqueued):
    response = client.post(URL, data=json.dumps(checkout_event()), headers={"Content-Type": "application/json"})

    assert_json_error(response, 400, "missing_signature")
    assert stored_events(seeded) == []


def test_bad_signature_is_400(client, seeded, enqueued):
    body, headers = se.signed(checkout_event(), TEST_WEBHOOK_SECRET)
    tampered = body.replace(b"acct_web", b"acct_evil")

    response = client.post(URL, data=tampered, headers=headers)

    assert_json_error(response, 400, "invalid_signature")
    assert stored_events(seeded) == []
    assert enqueued == []


def test_unparseable_signature_header_is_400(client, seeded):
    response = client.post(URL, data=b"{}", headers={"Stripe-Signature": "garbage"})

    assert_json_error(response, 400, "invalid_signature")


def test_signature_made_with_another_secret_is_400(client, seeded):
    response = post_signed(client, checkout_event(), secret="whsec_somebody_else_" + "0" * 24)

    assert_json_error(response, 400, "invalid_signature")


def test_timestamp_older_than_300_seconds_is_400_stale(client, seeded):
    response = post_signed(client, checkout_event(), timestamp=int(time.time()) - 301)

    assert_json_error(response, 400, "stale_timestamp")
    assert stored_events(seeded) == []


def test_stale_timestamp_is_reported_as_stale_during_a_rotation(client, seeded):
    with seeded.begin() as session:
        credentials.set_provider(session, "stripe", webhook_secrets=[TEST_WEBHOOK_SECRET, "whsec_other_" + "9" * 24])

    response = post_signed(client, checkout_event(), timestamp=int(time.time()) - 301)

    assert_json_error(response, 400, "stale_timestamp")


def test_timestamp_within_tolerance_is_accepted(client, seeded):
    assert post_signed(client, checkout_event(), timestamp=int(time.time()) - 240).status_code == 200


def test_malformed_json_with_a_valid_signature_is_400(client, seeded, enqueued):
    response = post_raw(client, b'{"id": "evt_1", "type": ')

    assert_json_error(response, 400, "malformed_json")
    assert stored_events(seeded) == []


def test_deeply_nested_json_with_a_valid_signature_is_400(client, seeded):
    response = post_raw(client, b"[" * 100_000 + b"]" * 100_000)

    assert_json_error(response, 400, "malformed_json")


def test_non_utf8_body_is_400(client, seeded):
    response = post_raw(client, b'{"id": "evt_\xff\xfe", "type": "x"}')

    assert_json_error(response, 400, "malformed_body")


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2, 3]",
        b'"just a string"',
        b'{"type": "checkout.session.completed"}',
        b'{"id": 42, "type": "checkout.session.completed"}',
        b'{"id": "evt_1"}',
        b'{"id": "", "type": "checkout.session.completed"}',
        json.dumps({"id": "evt_" + "x" * 200, "type": "checkout.session.completed"}).encode(),
        b'{"id": "evt_\\u0000", "type": "checkout.session.completed"}',
        b'{"id": "evt_1", "type": "checkout.session.completed", "created": "yesterday"}',
        b'{"id": "evt_1", "type": "checkout.session.completed", "created": 99999999999999999999}',
    ],
    ids=[
        "array",
        "string",
        "no-id",
        "numeric-id",
        "no-type",
        "empty-id",
        "long-id",
        "nul-in-id",
        "created-not-a-number",
        "created-out-of-range",
    ],
)
def test_json_that_is_not_an_event_is_400(client, seeded, enqueued, body):
    response = post_raw(client, body)

    assert_json_error(response, 400, "malformed_event")
    assert stored_events(seeded) == []


def test_body_over_one_mebibyte_is_413_json(client, seeded):
    evt = checkout_event()
    evt["data"]["object"]["metadata"]["padding"] = "x" * (1024 * 1024)

    response = post_signed(client, evt)

    assert_json_error(response, 413, "payload_too_large")
    assert stored_events(seeded) == []


def test_get_on_the_webhook_url_is_a_json_405(client, seeded):
    assert_json_error(client.get(URL), 405, "method_not_allowed")


# -- the store and the broker -----------------------------------------------------------------


def test_no_webhook_secret_configured_is_503(client, seeded, enqueued):
    with seeded.begin() as session:
        credentials.set_provider(session, "stripe", webhook_secrets=[])

    response = post_signed(client, checkout_event())

    assert_json_error(response, 503, "not_configured")


def test_inactive_stripe_provider_is_503(client, seeded):
    with seeded.begin() as session:
        credentials.set_provider(session, "stripe", active=False)

    assert_json_error(post_signed(client, checkout_event()), 503, "not_configured")


def test_broker_down_still_answers_200_and_the_sweeper_enqueues_the_event_later(settings, seeded):
    from web import create_app

    def broker_down(event_pk: int) -> None:
        raise ConnectionError("redis is down")

    client = create_app(settings, enqueue=broker_down).test_client()

    response = post_signed(client, checkout_event())

    assert response.status_code == 200
    [row] = stored_events(seeded)
    assert row.status == "received"

    swept = Enqueued()
    soon = datetime.now(UTC) + timedelta(seconds=5)
    assert processing.sweep(seeded, swept, now=soon, grace_seconds=60) == []
    after_grace = datetime.now(UTC) + timedelta(seconds=61)
    assert processing.sweep(seeded, swept, now=after_grace, grace_seconds=60) == [row.id]
    assert swept == [row.id]


def test_dropped_events_table_answers_503_not_500(client, engine, seeded, enqueued):
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE webhook_events"))

    response = post_signed(client, checkout_event())

    assert_json_error(response, 503, "store_unavailable")
    assert enqueued == []


def test_unreachable_database_answers_503_not_500(app, client, settings, enqueued):
    app.extensions["billhook"].dispose()
    db_path = settings.database_url.split("///", 1)[1]
    for suffix in ("", "-wal", "-shm"):
        Path(db_path + suffix).unlink(missing_ok=True)
    Path(db_path).mkdir()  # a directory where the database file was: sqlite cannot open it

    response = post_signed(client, checkout_event())

    assert_json_error(response, 503, "store_unavailable")
    assert enqueued == []


def test_an_accepted_checkout_ends_in_an_active_subscription_and_credits_once_processed(client, seeded, enqueued, now):
    post_signed(client, checkout_event())

    result = processing.process_event(seeded, enqueued[0], clock=lambda: now)

    assert result.outcome == processing.DONE
    with seeded() as session:
        assert ledger.balance(session, "acct_web") == 12_000
        subscription = session.scalars(select(Subscription)).one()
        assert (subscription.status, subscription.plan_id) == ("active", "growth")
        assert session.get(WebhookEvent, enqueued[0]).status == "succeeded"


def test_unreachable_postgresql_answers_503_not_500(settings, enqueued):
    from web import create_app

    nowhere = settings.with_overrides(database_url="postgresql+psycopg://postgres@127.0.0.1:1/billhook")
    app = create_app(nowhere, enqueue=enqueued)

    response = post_signed(app.test_client(), checkout_event())

    assert_json_error(response, 503, "store_unavailable")
    app.extensions["billhook"].dispose()


@pytest.mark.postgres
def test_postgresql_without_the_events_table_answers_503_not_500(settings, pg_database, enqueued):
    from web import create_app

    pg_settings, engine = postgresql_store(settings, pg_database)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE webhook_events CASCADE"))
    engine.dispose()
    app = create_app(pg_settings, enqueue=enqueued)

    response = post_signed(app.test_client(), checkout_event())

    assert_json_error(response, 503, "store_unavailable")
    app.extensions["billhook"].dispose()


def test_the_same_event_delivered_concurrently_is_stored_and_enqueued_once(app, seeded, enqueued):
    body, headers = se.signed(checkout_event(), TEST_WEBHOOK_SECRET)
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def deliver():
        client = app.test_client()
        barrier.wait()
        statuses.append(client.post(URL, data=body, headers=headers).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert statuses == [200] * 4
    assert len(stored_events(seeded)) == 1
    assert len(enqueued) == 1
