"""`billhook providers set/show`: secrets are stored in full and never printed in full."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from shared import credentials, inbox
from tests.factories import stripe_events as se

API_KEY = "sk_test_51AbCdEfGhIjKlMnOpQrStUv"
OLD_SECRET = "whsec_old_0123456789abcdef0123456789"
NEW_SECRET = "whsec_new_fedcba9876543210fedcba9876"


def test_providers_set_stores_secrets_and_prints_them_masked(billhook):
    result = billhook("providers", "set", "stripe", "--api-key", API_KEY, "--webhook-secret", NEW_SECRET)

    shown = json.loads(result.output)
    assert shown["api_key"] == "sk_****StUv"
    assert shown["webhook_secrets"] == ["whsec_****9876"]
    assert API_KEY not in result.output and NEW_SECRET not in result.output
    with billhook.session_factory() as session:
        stored = credentials.get_provider(session, "stripe")
        assert (stored.api_key, stored.webhook_secrets) == (API_KEY, [NEW_SECRET])


def test_providers_show_never_prints_a_secret_in_full(billhook):
    billhook(
        "providers",
        "set",
        "stripe",
        "--api-key",
        API_KEY,
        "--webhook-secret",
        NEW_SECRET,
        "--webhook-secret",
        OLD_SECRET,
    )
    billhook("providers", "set", "paypal", "--api-key", "client-id-AAAA1111", "--api-secret", "client-secret-BBBB2222")

    result = billhook("providers", "show")

    for secret in (API_KEY, NEW_SECRET, OLD_SECRET, "client-secret-BBBB2222"):
        assert secret not in result.output
    shown = {p["name"]: p for p in json.loads(result.output)}
    assert set(shown) == {"stripe", "paypal"}
    assert len(shown["stripe"]["webhook_secrets"]) == 2  # both kept during a rotation


def test_providers_set_changes_only_what_it_is_given(billhook):
    billhook("providers", "set", "resend", "--api-key", "re_key_0000111122223333", "--config", '{"from": "a@x.io"}')

    billhook("providers", "set", "resend", "--config", '{"reply_to": "b@x.io"}', "--inactive")

    with billhook.session_factory() as session:
        stored = credentials.get_provider(session, "resend")
        assert stored.api_key == "re_key_0000111122223333"
        assert stored.config == {"from": "a@x.io", "reply_to": "b@x.io"}
        assert stored.active is False


def test_providers_set_refuses_config_that_is_not_a_json_object(billhook):
    not_json = billhook("providers", "set", "stripe", "--config", "{nope", ok=False)
    not_object = billhook("providers", "set", "stripe", "--config", "[1, 2]", ok=False)

    assert not_json.exit_code == not_object.exit_code == 2
    assert "--config" in not_json.output


def test_providers_set_refuses_an_unknown_provider(billhook):
    assert billhook("providers", "set", "bitpay", "--api-key", "x", ok=False).exit_code == 2


def test_providers_show_reports_the_stripe_api_versions_seen_recently(billhook):
    billhook("providers", "set", "stripe", "--api-key", API_KEY, "--webhook-secret", NEW_SECRET)
    now = datetime.now(UTC)
    with billhook.session_factory.begin() as session:
        for version in ("2017-08-15", "2017-08-15", se.PRE_BASIL):
            evt = se.event("invoice.paid", {"object": "invoice"}, api_version=version)
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

    [stripe] = json.loads(billhook("providers", "show", "stripe").output)

    assert stripe["api_versions"]["seen_recently"] == {"2017-08-15": 2, se.PRE_BASIL: 1}
    [warning] = stripe["api_versions"]["warnings"]
    assert "2 recent Stripe events in API version 2017-08-15" in warning
