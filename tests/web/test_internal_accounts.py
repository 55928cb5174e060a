"""The main app's entitlements API and endpoint management, behind the service token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.billing import ledger
from shared.billing.accounts import ensure_account
from shared.billing.subscriptions import SubscriptionChange, apply_subscription_state, lock_or_create_subscription
from shared.outcome import Outcome
from tests.conftest import Enqueued

AUTH = {"Authorization": "Bearer test-service-token"}


@pytest.fixture
def deliveries() -> Enqueued:
    return Enqueued()


@pytest.fixture
def api(settings, seeded, enqueued, deliveries):
    from web import create_app

    return create_app(settings, enqueue=enqueued, enqueue_email=Enqueued(), enqueue_delivery=deliveries).test_client()


def subscribe(session_factory, account_id: str, *, status: str = "active", at: datetime | None = None) -> None:
    at = at or datetime.now(UTC)
    with session_factory.begin() as session:
        ensure_account(session, account_id, email=f"{account_id}@example.com", name="Ada")
        sub = lock_or_create_subscription(
            session, provider="stripe", provider_subscription_id=f"sub_{account_id}", account_id=account_id
        )
        apply_subscription_state(
            session,
            Outcome(),
            sub,
            SubscriptionChange(status=status, plan_id="growth", current_period_end=at + timedelta(days=30)),
            event_at=at,
            event_id=f"evt_{account_id}_{status}",
            now=at,
        )
        ledger.grant_credits(
            session,
            Outcome(),
            account_id=account_id,
            credits=500,
            kind=ledger.GRANT_PURCHASE,
            description="test",
            idempotency_key=f"grant:{account_id}:{status}",
            at=at,
        )


def test_the_entitlement_of_an_active_account(api, seeded):
    subscribe(seeded, "acct_1")

    response = api.get("/api/v1/internal/accounts/acct_1", headers=AUTH)

    assert response.status_code == 200
    body = response.get_json()
    assert body["entitled"] is True
    assert (body["plan_id"], body["status"], body["balance"]) == ("growth", "active", 500)
    assert body["cancel_at_period_end"] is False and body["current_period_end"]
    assert body["features"] == {}  # the catalog's features, when the plan has them
    assert "email" not in body and "name" not in body


def test_past_due_is_entitled_through_the_grace_only(api, seeded):
    subscribe(seeded, "acct_recent", status="past_due")
    subscribe(seeded, "acct_old", status="past_due", at=datetime.now(UTC) - timedelta(days=8))

    recent = api.get("/api/v1/internal/accounts/acct_recent", headers=AUTH).get_json()
    old = api.get("/api/v1/internal/accounts/acct_old", headers=AUTH).get_json()

    assert recent["entitled"] is True and recent["grace_ends_at"]
    assert old["entitled"] is False


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/internal/accounts/nobody", 404, "account_not_found"),
        ("/api/v1/internal/accounts?changed_since=yesterday", 400, "invalid_parameter"),
        ("/api/v1/internal/accounts?limit=0", 400, "invalid_parameter"),
        ("/api/v1/internal/accounts?cursor=not-a-cursor", 400, "invalid_cursor"),
        # a timestamp without its offset, which the store's UTC columns refuse
        ("/api/v1/internal/accounts?cursor=WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwgIngiXQ==", 400, "invalid_cursor"),
        ("/api/v1/internal/accounts?limit=%C2%B2", 400, "invalid_parameter"),
    ],
)
def test_bad_requests_get_a_specific_4xx(api, path, status, code):
    response = api.get(path, headers=AUTH)

    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code


def test_without_the_service_token_nothing_is_answered(api, seeded):
    subscribe(seeded, "acct_1")

    assert api.get("/api/v1/internal/accounts/acct_1").status_code == 401
    assert api.get("/api/v1/internal/endpoints", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_changed_since_pages_through_the_accounts_whose_billing_changed(api, seeded):
    start = datetime.now(UTC) - timedelta(hours=1)
    for n in range(5):
        subscribe(seeded, f"acct_{n}", at=start + timedelta(minutes=n))
    with seeded.begin() as session:
        ensure_account(session, "acct_untouched")

    seen, cursor = [], None
    while True:
        query = f"changed_since={start.isoformat().replace('+00:00', 'Z')}&limit=2"
        page = api.get(f"/api/v1/internal/accounts?{query}" + (f"&cursor={cursor}" if cursor else ""), headers=AUTH)
        assert page.status_code == 200
        body = page.get_json()
        seen += [a["account_id"] for a in body["accounts"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert seen == [f"acct_{n}" for n in range(5)]
    later = (start + timedelta(minutes=3, seconds=30)).isoformat()
    tail = api.get("/api/v1/internal/accounts", query_string={"changed_since": later}, headers=AUTH).get_json()
    assert [a["account_id"] for a in tail["accounts"]] == ["acct_4"]


def test_an_endpoint_is_added_once_with_its_secret_then_listed_without_it(api):
    added = api.post(
        "/api/v1/internal/endpoints",
        json={"url": "http://127.0.0.1:9/hook", "allow_private": True, "event_types": ["credits.low"]},
        headers=AUTH,
    )

    assert added.status_code == 201
    body = added.get_json()
    assert body["secret"].startswith("whsec_") and body["event_types"] == ["credits.low"]
    listed = api.get("/api/v1/internal/endpoints", headers=AUTH).get_json()["endpoints"]
    assert [e["id"] for e in listed] == [body["id"]]
    assert "secret" not in listed[0] and body["secret"] not in str(listed)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"url": "http://127.0.0.1:9/hook"}, "invalid_endpoint"),  # private without allow_private
        ({"url": "ftp://example.com/hook", "allow_private": True}, "invalid_endpoint"),
        ({"url": "http://127.0.0.1:9/", "allow_private": True, "event_types": ["nope"]}, "invalid_endpoint"),
        ({"url": 42}, "invalid_field"),
        ({"url": "http://127.0.0.1:9/", "allow_private": "yes"}, "invalid_field"),
    ],
)
def test_a_bad_endpoint_is_refused_with_a_400(api, payload, code):
    response = api.post("/api/v1/internal/endpoints", json=payload, headers=AUTH)

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == code


def test_rotate_disable_and_enable_an_endpoint(api):
    endpoint = api.post(
        "/api/v1/internal/endpoints", json={"url": "http://127.0.0.1:9/hook", "allow_private": True}, headers=AUTH
    ).get_json()
    base = f"/api/v1/internal/endpoints/{endpoint['id']}"

    rotated = api.post(f"{base}/rotate-secret", json={"overlap_seconds": 600}, headers=AUTH).get_json()
    disabled = api.post(f"{base}/disable", headers=AUTH).get_json()
    enabled = api.post(f"{base}/enable", headers=AUTH).get_json()

    assert rotated["secret"] != endpoint["secret"] and rotated["previous_secret_signs_until"]
    assert (disabled["enabled"], enabled["enabled"]) == (False, True)
    assert api.post("/api/v1/internal/endpoints/ep_nope/disable", headers=AUTH).status_code == 404
    bad = api.post(f"{base}/rotate-secret", json={"overlap_seconds": -1}, headers=AUTH)
    assert bad.status_code == 400


def test_a_debit_enqueues_its_outgoing_deliveries_after_the_commit(api, seeded, deliveries):
    api.post("/api/v1/internal/endpoints", json={"url": "http://127.0.0.1:9/hook", "allow_private": True}, headers=AUTH)
    subscribe(seeded, "acct_1")

    response = api.post(
        "/api/v1/internal/credits/debit",
        json={"account_id": "acct_1", "amount": 450, "idempotency_key": "use-1"},
        headers=AUTH,
    )

    assert response.status_code == 201
    assert len(deliveries) == 2  # credits.debited, and credits.low (450 of 500 takes it below 100)
