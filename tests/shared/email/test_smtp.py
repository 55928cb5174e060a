from __future__ import annotations

import pytest

from cli.embedded_redis import free_port
from shared.email.resend import OutgoingEmail
from shared.email.smtp import SmtpMailer
from shared.errors import ProviderError
from tests.fakes.smtp import LocalSmtp


@pytest.fixture
def smtp():
    server = LocalSmtp().start()
    yield server
    server.stop()


def _email(recipient="ada@example.com") -> OutgoingEmail:
    return OutgoingEmail(
        recipient=recipient, subject="Payment received", html="<p>Thanks</p>", text="Thanks\n", idempotency_key="k-1"
    )


def test_sends_html_and_text_alternatives(smtp):
    mailer = SmtpMailer("127.0.0.1", smtp.port, sender="Billing <billing@example.com>", reply_to="help@example.com")
    message_id = mailer.send(_email())

    [message] = smtp.inbox.messages
    assert message["To"] == "ada@example.com"
    assert message["From"] == "Billing <billing@example.com>"
    assert message["Reply-To"] == "help@example.com"
    assert message["Subject"] == "Payment received"
    assert message["Message-ID"] == f"<{message_id}>"
    assert message.get_body(("plain",)).get_content().strip() == "Thanks"
    assert message.get_body(("html",)).get_content().strip() == "<p>Thanks</p>"


def test_the_same_outbox_key_carries_the_same_message_id(smtp):
    mailer = SmtpMailer("127.0.0.1", smtp.port)
    assert mailer.send(_email()) == mailer.send(_email())


def test_refused_recipient_is_permanent(smtp):
    smtp.inbox.refuse["nobody@example.com"] = "550 5.1.1 no such user"
    with pytest.raises(ProviderError) as caught:
        SmtpMailer("127.0.0.1", smtp.port).send(_email("nobody@example.com"))
    assert caught.value.retryable is False
    assert caught.value.status == 550


def test_temporary_refusal_is_retryable(smtp):
    smtp.inbox.refuse["busy@example.com"] = "451 4.3.0 try again later"
    with pytest.raises(ProviderError) as caught:
        SmtpMailer("127.0.0.1", smtp.port).send(_email("busy@example.com"))
    assert caught.value.retryable is True


def test_no_server_is_retryable():
    with pytest.raises(ProviderError) as caught:
        SmtpMailer("127.0.0.1", free_port(), timeout=1).send(_email())
    assert caught.value.retryable is True
