"""The SMTP fallback, over Python's smtplib: used when Resend is not configured. Host and port
come from settings (SMTP_HOST, SMTP_PORT). Connection failures and 4xx replies are retryable;
a 5xx reply refusing the sender or recipient is not."""

from __future__ import annotations

import hashlib
import smtplib
from email.message import EmailMessage
from email.utils import formatdate

from shared.email.resend import OutgoingEmail
from shared.errors import ProviderError

PROVIDER = "smtp"
DEFAULT_SENDER = "billhook <no-reply@billhook.invalid>"
DEFAULT_TIMEOUT_SECONDS = 10


class SmtpMailer:
    name = PROVIDER

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        sender: str = DEFAULT_SENDER,
        reply_to: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ):
        self._host = host
        self._port = port
        self._sender = sender
        self._reply_to = reply_to
        self._timeout = timeout

    def send(self, email: OutgoingEmail) -> str:
        message = self._message(email)
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            code = min((c for c, _ in exc.recipients.values()), default=550)
            raise ProviderError(PROVIDER, f"recipient refused ({code})", status=code, retryable=code < 500) from None
        except smtplib.SMTPResponseException as exc:
            raise ProviderError(
                PROVIDER, f"server replied {exc.smtp_code}", status=exc.smtp_code, retryable=exc.smtp_code < 500
            ) from None
        except (smtplib.SMTPException, OSError) as exc:  # OSError covers timeouts and refused connections
            raise ProviderError(PROVIDER, f"cannot deliver: {type(exc).__name__}", retryable=True) from None
        return message["Message-ID"].strip("<>")

    def _message(self, email: OutgoingEmail) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = email.recipient
        message["Subject"] = email.subject
        message["Date"] = formatdate(usegmt=True)
        # Derived from the outbox key: a re-send carries the same id, which receivers can dedupe on.
        digest = hashlib.sha256(email.idempotency_key.encode()).hexdigest()[:32]
        message["Message-ID"] = f"<{digest}@billhook>"
        if self._reply_to:
            message["Reply-To"] = self._reply_to
        message.set_content(email.text)
        message.add_alternative(email.html, subtype="html")
        return message
