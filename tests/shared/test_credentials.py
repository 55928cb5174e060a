"""Provider credentials: stored in the providers table, shown masked, read through a short cache."""

from __future__ import annotations

import json

import pytest

from shared import credentials
from shared.credentials import WebhookSecretCache, mask


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        ("sk_test_51HxYzAbCdEfGhIjKlMnOp", "sk_****MnOp"),
        ("whsec_0123456789abcdef0123456789abcdef", "whsec_****cdef"),
        ("re_AbCdEfGh12345678", "re_****5678"),
        ("plainsecretvalue", "****alue"),
        ("sk_test_1234567890", "sk_****"),
        ("sk_live_1234", "****"),
        ("whsec_abc", "****"),
        ("abcdefgh_", "****"),
        ("short", "****"),
    ],
)
def test_mask_shows_a_prefix_and_the_last_four_characters_at_most(secret, shown):
    assert mask(secret) == shown
    assert secret not in mask(secret)


@pytest.mark.parametrize("length", range(1, 40))
def test_mask_always_hides_at_least_twelve_characters(length):
    secret = ("sk_" + "x" * 40)[:length]

    shown = mask(secret).replace("****", "")

    assert len(secret) - len(shown) >= min(12, len(secret))


def test_mask_passes_empty_values_through():
    assert mask(None) is None
    assert mask("") == ""


def test_a_masked_provider_contains_no_secret_in_full(session):
    provider = credentials.set_provider(
        session,
        "paypal",
        api_key="AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
        api_secret="EFgHiJkLmNoPqRsTuVwXyZ9876543210zyxw",
        webhook_secrets=["whsec_old_1111222233334444", "whsec_new_5555666677778888"],
        webhook_id="WH-123",
    )

    shown = json.dumps(credentials.masked_provider(provider))

    for secret in (provider.api_key, provider.api_secret, *provider.webhook_secrets):
        assert secret not in shown
    assert "WH-123" in shown  # an id, not a secret


def test_set_provider_changes_only_the_fields_given(session):
    credentials.set_provider(session, "resend", api_key="re_first_key_0001", sandbox=True)

    provider = credentials.set_provider(session, "resend", sandbox=False)

    assert (provider.api_key, provider.sandbox) == ("re_first_key_0001", False)


def test_set_provider_refuses_an_unknown_provider(session):
    with pytest.raises(ValueError, match="unknown provider"):
        credentials.set_provider(session, "bitpay", api_key="x")


def test_seed_providers_adds_a_dev_stripe_secret_only_when_stripe_is_missing(session_factory):
    with session_factory.begin() as session:
        assert credentials.seed_providers(session) == ["stripe"]
        [secret] = credentials.get_provider(session, "stripe").webhook_secrets
        assert secret.startswith("whsec_dev_")
    with session_factory.begin() as session:
        assert credentials.seed_providers(session) == []
        assert credentials.get_provider(session, "stripe").webhook_secrets == [secret]


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_webhook_secret_cache_reads_the_store_at_most_once_per_ttl(seeded):
    clock = FakeClock()
    cache = WebhookSecretCache(seeded, ttl=30, clock=clock)
    first = cache.secrets_for("stripe")
    with seeded.begin() as session:
        credentials.set_provider(session, "stripe", webhook_secrets=["whsec_rotated_000000000000"])

    clock.now += 29
    assert cache.secrets_for("stripe") == first
    clock.now += 2
    assert cache.secrets_for("stripe") == ["whsec_rotated_000000000000"]


def test_webhook_secret_cache_clear_forgets_at_once(seeded):
    cache = WebhookSecretCache(seeded, ttl=3600, clock=FakeClock())
    cache.secrets_for("stripe")
    with seeded.begin() as session:
        credentials.set_provider(session, "stripe", webhook_secrets=["whsec_new_0000000000000000"])

    cache.clear()

    assert cache.secrets_for("stripe") == ["whsec_new_0000000000000000"]


def test_an_inactive_or_missing_provider_has_no_webhook_secrets(seeded):
    with seeded.begin() as session:
        credentials.set_provider(session, "stripe", active=False)
    cache = WebhookSecretCache(seeded, ttl=0)

    assert cache.secrets_for("stripe") == []
    assert cache.secrets_for("paypal") == []
