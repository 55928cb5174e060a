"""/ops: the ops page behind Flower's basic auth, and its replay form (token + same origin)."""

from __future__ import annotations

import base64
import re

import pytest

from shared.models import WebhookEvent
from tests.factories import stripe_events as se
from tests.factories.inbox import store_event
from web import create_app

OPS_AUTH = "ops:correct-horse,audit:battery-staple"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


OPS = basic("ops", "correct-horse")


@pytest.fixture
def ops_app(settings, seeded, enqueued):
    return create_app(settings.with_overrides(flower_basic_auth=OPS_AUTH), enqueue=enqueued)


@pytest.fixture
def ops(ops_app):
    return ops_app.test_client()


def store(session_factory, *, status: str = "received", error: str | None = None, attempts: int = 0) -> int:
    evt = se.event("invoice.paid", {"id": se.unique("in"), "object": "invoice"})
    return store_event(session_factory, evt, status=status, last_error=error, attempts=attempts)


def token_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)[1]


def test_ops_page_is_off_without_configured_credentials(client):
    response = client.get("/ops", headers=OPS)
    assert response.status_code == 503
    assert "FLOWER_BASIC_AUTH" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "headers", [{}, basic("ops", "wrong"), basic("nobody", "correct-horse"), {"Authorization": "Bearer x"}]
)
def test_ops_page_asks_for_basic_auth(ops, headers):
    response = ops.get("/ops", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Basic realm="billhook ops"')


def test_ops_page_lists_events_with_status_attempts_and_escaped_error(ops, seeded):
    failed = store(seeded, status="failed", error="PermanentError: <script>alert(1)</script>", attempts=3)
    done = store(seeded, status="succeeded", attempts=1)

    response = ops.get("/ops", headers=basic("audit", "battery-staple"))

    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert f'id="event-{failed}" data-status="failed"' in page and f'id="event-{done}" data-status="succeeded"' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert page.count("<button") == 1  # only the failed event offers a replay
    assert "failed (1)" in page and "succeeded (1)" in page
    assert response.headers["X-Frame-Options"] == "DENY"


def test_ops_page_filters_by_status(ops, seeded):
    failed = store(seeded, status="failed", error="x")
    done = store(seeded, status="succeeded")
    page = ops.get("/ops?status=failed", headers=OPS).get_data(as_text=True)
    assert f"event-{failed}" in page and f"event-{done}" not in page


def test_ops_page_pages_back_through_older_events_within_the_status_filter(ops, seeded, monkeypatch):
    monkeypatch.setattr("web.ops.PAGE_SIZE", 2)
    failed = [store(seeded, status="failed", error=f"e{i}") for i in range(5)]
    store(seeded, status="succeeded")

    pages, url = [], "/ops?status=failed"
    while url and len(pages) < 5:  # bounded: a cursor that did not move would loop
        page = ops.get(url, headers=OPS).get_data(as_text=True)
        pages.append([int(pk) for pk in re.findall(r'id="event-(\d+)"', page)])
        older = re.search(r'href="([^"]+)" id="older"', page)
        url = older[1].replace("&amp;", "&") if older else None

    assert pages == [failed[4:2:-1], failed[2:0:-1], failed[0:1]]  # newest first, each once, then no link
    assert 'id="newest"' in page


def test_replay_button_requeues_the_event_and_publishes_it(ops, seeded, enqueued):
    pk = store(seeded, status="failed", error="TransientError: x", attempts=8)
    token = token_of(ops.get("/ops", headers=OPS).get_data(as_text=True))

    response = ops.post(
        f"/ops/events/{pk}/replay", data={"csrf_token": token}, headers={**OPS, "Origin": "http://localhost"}
    )

    assert response.status_code == 303
    assert response.headers["Location"] == f"/ops?replayed={pk}&notice=replayed"
    assert enqueued == [pk]
    with seeded() as session:
        assert session.get(WebhookEvent, pk).status == "received"
    assert f"Event {pk} queued again." in ops.get(response.headers["Location"], headers=OPS).get_data(as_text=True)


def test_replay_refuses_a_post_without_the_page_token(ops, seeded, enqueued):
    pk = store(seeded, status="failed", error="x")
    for data in ({}, {"csrf_token": "0" * 64}):
        response = ops.post(f"/ops/events/{pk}/replay", data=data, headers=OPS)
        assert response.status_code == 403
    assert enqueued == []


def test_replay_refuses_a_cross_site_post_even_with_a_token(ops, seeded, enqueued):
    pk = store(seeded, status="failed", error="x")
    token = token_of(ops.get("/ops", headers=OPS).get_data(as_text=True))
    for origin in ("https://evil.example", "null"):
        response = ops.post(f"/ops/events/{pk}/replay", data={"csrf_token": token}, headers={**OPS, "Origin": origin})
        assert response.status_code == 403
    assert enqueued == []


def test_replay_needs_basic_auth_too(ops, seeded):
    pk = store(seeded, status="failed", error="x")
    assert ops.post(f"/ops/events/{pk}/replay", data={"csrf_token": "x"}).status_code == 401


def test_replay_of_a_done_event_changes_nothing_and_says_so(ops, seeded, enqueued):
    pk = store(seeded, status="succeeded")
    waiting = store(seeded, status="failed", error="x")
    token = token_of(ops.get("/ops", headers=OPS).get_data(as_text=True))  # the form of the failed one

    response = ops.post(f"/ops/events/{pk}/replay", data={"csrf_token": token}, headers=OPS)

    assert response.headers["Location"].endswith("notice=not_replayable")
    assert enqueued == []
    with seeded() as session:
        assert (session.get(WebhookEvent, pk).status, session.get(WebhookEvent, waiting).status) == (
            "succeeded",
            "failed",
        )
