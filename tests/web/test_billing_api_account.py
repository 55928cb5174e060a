"""GET /api/v1/billing/account says whether the caller is entitled now, and when a past_due
subscription's grace ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.models import Account, Subscription


def past_due_since(seeded, account_id: str, since: datetime) -> None:
    with seeded.begin() as session:
        session.add(Account(id=account_id))
        session.flush()
        session.add(
            Subscription(
                account_id=account_id,
                provider="stripe",
                provider_subscription_id=f"sub_{account_id}",
                plan_id="growth",  # the seed's grace: 7 days
                status="past_due",
                past_due_since=since,
            )
        )


def test_a_past_due_account_is_entitled_inside_its_grace_and_not_after(client, seeded, auth):
    now = datetime.now(UTC).replace(microsecond=0)
    past_due_since(seeded, "acct_grace", now - timedelta(days=1))
    past_due_since(seeded, "acct_lapsed", now - timedelta(days=8))

    inside = client.get("/api/v1/billing/account", headers=auth("acct_grace")).json
    after = client.get("/api/v1/billing/account", headers=auth("acct_lapsed")).json

    assert inside["entitled"] is True
    assert inside["subscription"]["grace_ends_at"] == (now + timedelta(days=6)).isoformat()
    assert after["entitled"] is False
    assert after["subscription"]["grace_ends_at"] == (now - timedelta(days=1)).isoformat()


def test_an_account_without_a_subscription_is_not_entitled(client, seeded, auth):
    with seeded.begin() as session:
        session.add(Account(id="acct_new"))

    body = client.get("/api/v1/billing/account", headers=auth("acct_new")).json

    assert (body["entitled"], body["subscription"]) == (False, None)
