"""/ops/deliveries: outgoing deliveries on the ops page, and the retry form (token + same origin)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.billing.accounts import ensure_account
from shared.models import OutgoingDelivery
from shared.models.outgoing import DeliveryStatus
from shared.outcome import Outcome
from shared.outgoing import endpoints
from shared.outgoing import events as outgoing
from tests.conftest import Enqueued
from tests.web.test_ops import OPS, OPS_AUTH, token_of
from web import create_app


@pytest.fixture
def deliveries_enqueued() -> Enqueued:
    return Enqueued()


@pytest.fixture
def ops(settings, seeded, enqueued, deliveries_enqueued):
    app = create_app(
        settings.with_overrides(flower_basic_auth=OPS_AUTH),
        enqueue=enqueued,
        enqueue_email=Enqueued(),
        enqueue_delivery=deliveries_enqueued,
    )
    return app.test_client()


def failed_delivery(session_factory) -> int:
    now = datetime.now(UTC)
    outcome = Outcome()
    with session_factory.begin() as session:
        endpoints.add_endpoint(session, "http://127.0.0.1:9/hook", allow_private=True, at=now)
        ensure_account(session, "acct_ops")
        outgoing.emit(session, outcome, account_id="acct_ops", type="payment.failed", key="k", data={}, at=now)
    (delivery_id,) = outcome.deliveries  # written at the commit
    with session_factory.begin() as session:
        row = session.get(OutgoingDelivery, delivery_id)
        row.status, row.last_error, row.attempts = DeliveryStatus.FAILED, "HTTP 503", 9
    return delivery_id


def test_the_failed_deliveries_are_listed_with_their_last_error(ops, seeded):
    delivery_id = failed_delivery(seeded)

    page = ops.get("/ops/deliveries?status=failed", headers=OPS)

    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'id="delivery-{delivery_id}" data-status="failed"' in html
    assert "HTTP 503" in html and "payment.failed" in html


def test_the_retry_button_makes_it_due_and_enqueues_it(ops, seeded, deliveries_enqueued):
    delivery_id = failed_delivery(seeded)
    token = token_of(ops.get("/ops/deliveries", headers=OPS).get_data(as_text=True))

    response = ops.post(f"/ops/deliveries/{delivery_id}/retry", data={"csrf_token": token}, headers=OPS)

    assert response.status_code == 303
    assert deliveries_enqueued == [delivery_id]
    with seeded() as session:
        assert session.get(OutgoingDelivery, delivery_id).status == DeliveryStatus.PENDING


def test_a_retry_without_the_page_token_is_refused(ops, seeded, deliveries_enqueued):
    delivery_id = failed_delivery(seeded)

    response = ops.post(f"/ops/deliveries/{delivery_id}/retry", data={}, headers=OPS)

    assert response.status_code == 403
    assert deliveries_enqueued == []


def test_the_deliveries_page_needs_the_ops_login(ops):
    assert ops.get("/ops/deliveries").status_code == 401
