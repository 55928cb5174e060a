"""A thin adapter over the `resend` SDK: builds the send request and maps every SDK failure to
`ProviderError` (429, 5xx, timeouts and connection errors are retryable; a 4xx saying the
request itself is wrong is not). No business logic lives here (see shared/email/delivery.py).

The API key and the from/reply-to addresses come from the integration providers table (provider
`resend`: api_key, config `from` and `reply_to`); the API base from `settings.resend_api_url`,
else the provider's `endpoint`, else Resend's own (tests point it at a local stand-in). The
outbox key goes out as Resend's `Idempotency-Key`, so a resend of the same row never emails twice.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import requests
import resend
from resend.exceptions import ResendError
from resend.http_client import HTTPClient
from sqlalchemy.orm import Session

from shared.config import Settings
from shared.credentials import active_provider
from shared.errors import NotConfigured, ProviderError
from shared.models import IntegrationProvider

PROVIDER = "resend"
DEFAULT_API_URL = "https://api.resend.com"
DEFAULT_TIMEOUT_SECONDS = 10
# Auth and key problems are the operator's to fix, not the email's fault: keep retrying meanwhile.
_RETRYABLE_STATUSES = {401, 403, 409, 429}
# The SDK keeps its key, base URL and HTTP client in module globals: one send at a time per process.
_SDK_LOCK = threading.Lock()


class KeepAliveClient(HTTPClient):
    """The SDK's own client calls `requests.request`, a new connection (and TLS handshake) per
    email. This one keeps a session per process, whose connections stay open between sends. Used
    under `_SDK_LOCK`, one request at a time; a forked child starts a session of its own (it must
    not write to its parent's sockets)."""

    def __init__(self, timeout: float):
        self._timeout = timeout
        self._session: requests.Session | None = None
        self._pid: int | None = None

    def request(self, method, url, headers, json=None, files=None, data=None):
        if self._pid != os.getpid():
            self._session, self._pid = requests.Session(), os.getpid()
        try:
            response = self._session.request(
                method,
                url,
                headers=headers,
                json=json if data is None else None,
                data=data,
                files=files,
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise RuntimeError(f"Request failed: {exc}") from exc  # the SDK's HttpClientError, as before
        return response.content, response.status_code, response.headers


_clients: dict[float, KeepAliveClient] = {}


def _client(timeout: float) -> KeepAliveClient:
    """One client per timeout, shared by every mailer of the process (a mailer lives for one email)."""
    with _SDK_LOCK:
        client = _clients.get(timeout)
        if client is None:
            client = _clients[timeout] = KeepAliveClient(timeout)
        return client


@dataclass(frozen=True)
class OutgoingEmail:
    recipient: str
    subject: str
    html: str
    text: str
    idempotency_key: str
    tags: dict[str, str] | None = None


def is_configured(provider: IntegrationProvider | None) -> bool:
    return provider is not None and provider.active and bool(provider.api_key)


class ResendMailer:
    name = PROVIDER

    def __init__(
        self,
        api_key: str,
        *,
        sender: str,
        reply_to: str | None = None,
        api_url: str | None = None,
        timeout: int = DEFAULT_TIMEOUT_SECONDS,
    ):
        self._api_key = api_key
        self._sender = sender
        self._reply_to = reply_to
        self._api_url = (api_url or DEFAULT_API_URL).rstrip("/")
        self._http = _client(timeout)

    @classmethod
    def from_provider(cls, provider: IntegrationProvider | None, settings: Settings) -> ResendMailer:
        if not is_configured(provider):
            raise NotConfigured("Resend has no API key in the providers table (billhook providers set resend)")
        config = provider.config or {}
        sender = config.get("from")
        if not sender:
            # The operator can fix this; the row retries meanwhile rather than failing for good.
            raise ProviderError(
                PROVIDER, 'config "from" is not set (billhook providers set resend --config ...)', retryable=True
            )
        return cls(
            provider.api_key,
            sender=sender,
            reply_to=config.get("reply_to") or None,
            api_url=settings.resend_api_url or provider.endpoint,
            timeout=int(config.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)),
        )

    @classmethod
    def from_store(cls, session: Session, settings: Settings) -> ResendMailer:
        return cls.from_provider(active_provider(session, PROVIDER), settings)

    def send(self, email: OutgoingEmail) -> str:
        """Send one email; returns Resend's email id."""
        params: dict = {
            "from": self._sender,
            "to": [email.recipient],
            "subject": email.subject,
            "html": email.html,
            "text": email.text,
        }
        if self._reply_to:
            params["reply_to"] = self._reply_to
        if email.tags:
            params["tags"] = [{"name": k, "value": v} for k, v in email.tags.items()]
        try:
            with _SDK_LOCK:
                resend.api_key = self._api_key
                resend.api_url = self._api_url
                resend.default_http_client = self._http
                response = resend.Emails.send(params, {"idempotency_key": email.idempotency_key})
        except ResendError as exc:
            raise _provider_error(exc) from None
        except Exception as exc:  # the SDK's own parsing failures: treat as a server-side problem
            raise ProviderError(PROVIDER, f"unexpected response: {type(exc).__name__}", retryable=True) from None
        message_id = response.get("id") if isinstance(response, dict) else None
        if not message_id:
            raise ProviderError(PROVIDER, "the response has no email id", retryable=True)
        return str(message_id)


def _provider_error(exc: ResendError) -> ProviderError:
    try:
        status = int(exc.code)
    except (TypeError, ValueError):
        status = 500
    retryable = status >= 500 or status in _RETRYABLE_STATUSES
    # Resend's messages name the field at fault, never the key; keep the first line only.
    message = (str(exc.message or exc.error_type or "error").strip().splitlines() or ["error"])[0][:300]
    return ProviderError(PROVIDER, f"{status} {exc.error_type}: {message}", status=status, retryable=retryable)
