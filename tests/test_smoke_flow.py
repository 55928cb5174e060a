from shared import ledger, processing
from shared.models import Subscription, WebhookEvent
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.factories import stripe_events as se


def test_signed_checkout_ends_in_active_subscription_and_credits(client, seeded, enqueued, now):
    evt = se.event(
        "checkout.session.completed",
        se.checkout_session(account_id="acct_smoke", mode="subscription", plan_id="growth"),
    )
    body, headers = se.signed(evt, TEST_WEBHOOK_SECRET)
    response = client.post("/webhooks/stripe", data=body, headers=headers)
    assert response.status_code == 200, response.json
    assert len(enqueued) == 1
    result = processing.process_event(seeded, enqueued[0], clock=lambda: now)
    assert result.outcome == processing.DONE
    with seeded() as session:
        assert ledger.balance(session, "acct_smoke") == 12_000
        sub = session.query(Subscription).one()
        assert (sub.status, sub.plan_id) == ("active", "growth")
        assert session.get(WebhookEvent, enqueued[0]).status == "succeeded"
