from __future__ import annotations

import pytest

from shared import credentials
from shared.email.resend import OutgoingEmail, ResendMailer
from shared.errors import NotConfigured, ProviderError
from tests.fakes.resend_api import RATE_LIMITED, SERVER_ERROR, VALIDATION_ERROR

API_KEY = "re_test_0123456789abcdef"


@pytest.fixture
def mailer(fake_resend):
    return ResendMailer(
        API_KEY, sender="Billing <billing@example.com>", reply_to="help@example.com", api_url=fake_resend.url, timeout=2
    )


def _email(key="outbox-key-1", recipient="ada@example.com") -> OutgoingEmail:
    return OutgoingEmail(
        recipient=recipient,
        subject="Payment received",
        html="<p>Thanks</p>",
        text="Thanks",
        idempotency_key=key,
        tags={"template": "payment_confirmation", "outbox": "7"},
    )


def test_send_posts_the_email_with_key_and_idempotency_key(fake_resend, mailer):
    message_id = mailer.send(_email())

    [call] = fake_resend.calls("POST", "/emails")
    assert call.path == "/emails"
    assert call.header("Authorization") == f"Bearer {API_KEY}"
    assert call.header("Idempotency-Key") == "outbox-key-1"
    assert call.json == {
        "from": "Billing <billing@example.com>",
        "to": ["ada@example.com"],
        "subject": "Payment received",
        "html": "<p>Thanks</p>",
        "text": "Thanks",
        "reply_to": "help@example.com",
        "tags": [{"name": "template", "value": "payment_confirmation"}, {"name": "outbox", "value": "7"}],
    }
    assert message_id == fake_resend.emails[0]["id"]


def test_same_idempotency_key_twice_delivers_one_email(fake_resend, mailer):
    first = mailer.send(_email())
    second = mailer.send(_email())
    assert first == second
    assert len(fake_resend.calls("POST", "/emails")) == 2
    assert len(fake_resend.emails) == 1


def test_emails_of_one_process_share_one_kept_alive_connection(fake_resend):
    # A mailer lives for one email (it is built from the providers row each time); the connection
    # outlives it, so a busy worker does not pay a TLS handshake per email.
    for key in ("keep-alive-1", "keep-alive-2", "keep-alive-3"):
        ResendMailer(API_KEY, sender="b@example.com", api_url=fake_resend.url, timeout=2).send(_email(key))

    ports = {call.client_port for call in fake_resend.calls("POST", "/emails")}
    assert len(fake_resend.emails) == 3
    assert len(ports) == 1


def test_validation_error_is_permanent(fake_resend, mailer):
    fake_resend.fail_next("/emails", 422, VALIDATION_ERROR)
    with pytest.raises(ProviderError) as caught:
        mailer.send(_email())
    assert caught.value.status == 422
    assert caught.value.retryable is False
    assert "validation_error" in str(caught.value)
    assert API_KEY not in str(caught.value)


@pytest.mark.parametrize("status, body", [(429, RATE_LIMITED), (500, SERVER_ERROR), (503, SERVER_ERROR)])
def test_rate_limit_and_server_errors_are_retryable(fake_resend, mailer, status, body):
    fake_resend.fail_next("/emails", status, {**body, "statusCode": status})
    with pytest.raises(ProviderError) as caught:
        mailer.send(_email())
    assert caught.value.status == status
    assert caught.value.retryable is True


def test_timeout_is_retryable(fake_resend, fake_resend_slow_mailer):
    fake_resend.stall_next("/emails", 2.0)
    with pytest.raises(ProviderError) as caught:
        fake_resend_slow_mailer.send(_email())
    assert caught.value.retryable is True


@pytest.fixture
def fake_resend_slow_mailer(fake_resend):
    return ResendMailer(API_KEY, sender="b@example.com", api_url=fake_resend.url, timeout=0.3)


def test_unreachable_api_is_retryable():
    from cli.embedded_redis import free_port

    mailer = ResendMailer(API_KEY, sender="b@example.com", api_url=f"http://127.0.0.1:{free_port()}", timeout=1)
    with pytest.raises(ProviderError) as caught:
        mailer.send(_email())
    assert caught.value.retryable is True


def test_key_and_addresses_come_from_the_providers_table(session, settings, fake_resend):
    credentials.set_provider(
        session,
        "resend",
        api_key=API_KEY,
        config={"from": "Billing <billing@example.com>", "reply_to": "r@example.com"},
    )
    mailer = ResendMailer.from_store(session, settings.with_overrides(resend_api_url=fake_resend.url))
    mailer.send(_email())
    [call] = fake_resend.calls("POST", "/emails")
    assert call.header("Authorization") == f"Bearer {API_KEY}"
    assert call.json["from"] == "Billing <billing@example.com>"
    assert call.json["reply_to"] == "r@example.com"


def test_missing_key_is_not_configured(session, settings):
    with pytest.raises(NotConfigured):
        ResendMailer.from_store(session, settings)
    credentials.set_provider(session, "resend", api_key=API_KEY, active=False)
    with pytest.raises(NotConfigured):
        ResendMailer.from_store(session, settings)


def test_missing_sender_is_a_retryable_configuration_error(session, settings):
    credentials.set_provider(session, "resend", api_key=API_KEY)
    with pytest.raises(ProviderError) as caught:
        ResendMailer.from_store(session, settings)
    assert caught.value.retryable is True
