"""GET /healthz and /readyz: liveness without dependencies; readiness names what failed."""

from __future__ import annotations

from alembic import command

from cli.db import alembic_config
from web import create_app


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
