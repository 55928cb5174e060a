"""GET /healthz and /readyz: liveness without dependencies; readiness names what failed."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command

from cli.db import alembic_config
from shared import inbox
from shared.db import make_engine, make_sessionmaker
from tests.factories import stripe_events as se
from web import create_app, health


def test_healthz_answers_without_touching_dependencies(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_is_503_naming_a_dead_broker_and_an_unmigrated_store(client):
    # The unit settings' broker (port 1) does not answer; the schema was made by create_all, not Alembic.
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json
    assert body["status"] == "unready"
    assert sorted(body["failed"]) == ["broker", "migrations"]
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"] == {
        "ok": False,
        "error": "ConnectionError",
        "duration_ms": body["checks"]["broker"]["duration_ms"],
    }
    assert "database at none" in body["checks"]["migrations"]["error"]


def test_readyz_reports_migrations_current_once_the_store_is_upgraded(settings, enqueued):
    command.upgrade(alembic_config(settings.database_url), "head")
    client = create_app(settings, enqueue=enqueued).test_client()
    body = client.get("/readyz").json
    assert body["checks"]["migrations"]["ok"] is True
    assert body["checks"]["migrations"]["revision"]
    assert body["failed"] == ["broker"]


def test_readyz_is_503_when_the_database_does_not_answer_and_never_shows_its_url(settings, enqueued):
    down = settings.with_overrides(database_url="postgresql+psycopg://billhook:s3cret-pw@127.0.0.1:1/nowhere")
    client = create_app(down, enqueue=enqueued).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert {"database", "migrations"} <= set(response.json["failed"])
    assert response.json["checks"]["database"]["error"] == "OperationalError"
    assert "s3cret" not in response.get_data(as_text=True)


def test_readyz_stays_200_and_warns_about_stripe_events_in_versions_billhook_cannot_read(
    settings, enqueued, monkeypatch
):
    command.upgrade(alembic_config(settings.database_url), "head")
    monkeypatch.setattr(health, "_check_broker", lambda: {"ok": True})  # the unit settings' broker is down
    now = datetime.now(UTC)
    engine = make_engine(settings)
    with make_sessionmaker(engine).begin() as session:
        for version in ("2017-08-15", se.CURRENT):
            evt = se.event("customer.subscription.updated", {"object": "subscription"}, api_version=version)
            inbox.record_event(
                session,
                provider="stripe",
                event_id=evt["id"],
                type=evt["type"],
                payload=evt,
                event_created_at=now,
                handled=True,
                at=now,
            )
    engine.dispose()
    response = create_app(settings, enqueue=enqueued).test_client().get("/readyz")

    assert response.status_code == 200, response.json
    assert response.json["stripe_api_versions"] == {"2017-08-15": 1, se.CURRENT: 1}
    [warning] = response.json["warnings"]
    assert "API version 2017-08-15" in warning and "they fail" in warning
