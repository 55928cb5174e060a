"""The ops page's query parameters and path ids: what is not one of the store's ids (a positive
PostgreSQL integer) is a 400, never a 500 from PostgreSQL refusing it inside the query."""

from __future__ import annotations

import pytest

from tests.web.test_ops import OPS, OPS_AUTH, store, token_of
from web import create_app


@pytest.fixture
def ops_store(any_store, enqueued):
    """The ops client and its session factory, on SQLite and on the real PostgreSQL."""
    app = create_app(any_store.settings.with_overrides(flower_basic_auth=OPS_AUTH), enqueue=enqueued)
    yield app.test_client(), any_store.session_factory
    app.extensions["billhook"].dispose()


@pytest.mark.parametrize(
    "before",
    ["99999999999999999999999", "2147483648", "9223372036854775808", "-1", "0", "abc", "1.5", "1e3", " 1", "١"],
)
def test_a_cursor_that_is_not_an_event_id_is_400(ops_store, before):
    ops, _ = ops_store
    response = ops.get("/ops", query_string={"before": before}, headers=OPS)

    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.is_json and response.json["error"]["code"] == "invalid_parameter"


def test_the_largest_id_as_cursor_lists_every_event(ops_store):
    ops, session_factory = ops_store
    pk = store(session_factory, status="failed", error="x")

    response = ops.get("/ops?before=2147483647", headers=OPS)

    assert response.status_code == 200
    assert f"event-{pk}" in response.get_data(as_text=True)


@pytest.mark.parametrize("event_id", ["99999999999999999999999", "2147483648", "0"])
def test_a_replay_of_an_id_out_of_the_stores_range_is_400(ops_store, event_id):
    ops, session_factory = ops_store
    store(session_factory)  # the page shows its form token once it lists an event
    token = token_of(ops.get("/ops", headers=OPS).get_data(as_text=True))

    response = ops.post(f"/ops/events/{event_id}/replay", data={"csrf_token": token}, headers=OPS)

    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.is_json and response.json["error"]["code"] == "invalid_event_id"


def test_the_ops_pages_refusals_are_json_errors(settings, seeded, enqueued):
    off = create_app(settings, enqueue=enqueued).test_client().get("/ops")
    app = create_app(settings.with_overrides(flower_basic_auth=OPS_AUTH), enqueue=enqueued)
    unauthenticated = app.test_client().get("/ops")
    pk = store(seeded)
    no_token = app.test_client().post(f"/ops/events/{pk}/replay", data={}, headers=OPS)

    for response, status, code in (
        (off, 503, "not_configured"),
        (unauthenticated, 401, "authentication_required"),
        (no_token, 403, "invalid_form_token"),
    ):
        assert response.status_code == status
        assert response.is_json and response.json["error"]["code"] == code
    assert unauthenticated.headers["WWW-Authenticate"].startswith("Basic ")


@pytest.mark.parametrize(
    "ref, reason, status", [("MP%00", "", 303), ("MP-1", "ok\x00", 400), ("MP-1", "bell\x07", 400)]
)
def test_a_manual_payment_decision_with_text_the_store_cannot_keep_is_refused(ops_store, ref, reason, status):
    ops, session_factory = ops_store
    store(session_factory)
    token = token_of(ops.get("/ops", headers=OPS).get_data(as_text=True))

    response = ops.post(
        f"/ops/manual-payments/{ref}/approve", data={"csrf_token": token, "reason": reason}, headers=OPS
    )

    assert response.status_code == status, response.get_data(as_text=True)[:300]
    if status == 303:
        assert "notice=unknown_payment" in response.headers["Location"]
    else:
        assert response.is_json and response.json["error"]["code"] == "invalid_field"
