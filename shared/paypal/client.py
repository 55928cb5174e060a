"""A thin `requests` client for PayPal's REST API: it builds the requests billhook makes and maps
every failure to `ProviderError` (`PayPalError`). No business logic lives here: what an order or a
subscription means to billhook (custom_id, grants) is in shared/paypal/orders.py.

Credentials come from the integration providers table: client id = `api_key`, client secret =
`api_secret`. The base URL is `settings.paypal_api_base` (tests point it at a local stand-in),
else the provider's `endpoint`, else PayPal's sandbox or live host per `provider.sandbox`.

The OAuth2 client-credentials token is cached per (base URL, client id) until shortly before it
expires, across client instances (a client is cheap to build per request or task); a 401 on a
call drops the cached token and retries the call once with a fresh one.

Every call is bounded in total: the provider's `timeout_seconds` (default 10 s) covers the token
request and both attempts, so a PayPal that accepts connections and never answers costs a web
thread at most that long, answered 504 (`PayPalTimeout`).

Every create/capture carries `PayPal-Request-Id`: PayPal answers a repeated request id with the
first call's result instead of acting twice, which is what makes a capture from the browser return
and a capture from the webhook task the same capture.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from sqlalchemy.orm import Session

from shared.config import Settings
from shared.credentials import active_provider
from shared.errors import NotConfigured, ProviderError, ProviderTimeout
from shared.models import IntegrationProvider
from shared.paypal.amounts import format_amount
from shared.paypal.tokens import TOKENS, TokenCache

PROVIDER = "paypal"
SANDBOX_API_BASE = "https://api-m.sandbox.paypal.com"
LIVE_API_BASE = "https://api-m.paypal.com"
# The total for one call: the token request and every attempt included.
DEFAULT_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 3.0
MAX_REQUEST_ID_LENGTH = 108
WEBHOOK_HEADERS = (
    "PAYPAL-AUTH-ALGO",
    "PAYPAL-CERT-URL",
    "PAYPAL-TRANSMISSION-ID",
    "PAYPAL-TRANSMISSION-SIG",
    "PAYPAL-TRANSMISSION-TIME",
)


class PayPalError(ProviderError):
    """A PayPal failure. `name` is PayPal's error name (e.g. UNPROCESSABLE_ENTITY), `issue` the
    first detail's issue (e.g. ORDER_ALREADY_CAPTURED, INSTRUMENT_DECLINED), `debug_id` PayPal's
    id for support. None of them holds a secret."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        name: str | None = None,
        issue: str | None = None,
        debug_id: str | None = None,
    ):
        super().__init__(PROVIDER, message, status=status, retryable=retryable)
        self.name = name
        self.issue = issue
        self.debug_id = debug_id


class PayPalTimeout(PayPalError, ProviderTimeout):
    """PayPal did not answer within the call's time bound."""


# -- the client -------------------------------------------------------------------------------


class PayPalGateway:
    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        base_url: str = SANDBOX_API_BASE,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        tokens: TokenCache | None = None,
        http: requests.Session | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._total_seconds = timeout
        self._tokens = tokens or TOKENS
        self._token_key = TokenCache.key(self.base_url, client_id, client_secret)
        self._http = http or requests.Session()

    def __repr__(self) -> str:  # never show the secret
        return f"PayPalGateway(base_url={self.base_url!r})"

    @classmethod
    def from_provider(cls, provider: IntegrationProvider | None, settings: Settings, **kwargs: Any) -> PayPalGateway:
        if provider is None or not provider.api_key or not provider.api_secret:
            raise NotConfigured(
                "PayPal has no client id/secret in the providers table "
                "(billhook providers set paypal --api-key CLIENT_ID --api-secret SECRET)"
            )
        config = provider.config or {}
        kwargs.setdefault("timeout", float(config.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)))
        return cls(provider.api_key, provider.api_secret, base_url=api_base(provider, settings), **kwargs)

    @classmethod
    def from_store(cls, session: Session, settings: Settings, **kwargs: Any) -> PayPalGateway:
        return cls.from_provider(active_provider(session, PROVIDER), settings, **kwargs)

    # -- orders (Orders v2) -----------------------------------------------------------------------

    def create_order(
        self,
        *,
        amount_cents: int,
        currency: str,
        custom_id: str,
        description: str,
        return_url: str,
        cancel_url: str,
        request_id: str,
        brand_name: str | None = None,
    ) -> dict[str, Any]:
        """`POST /v2/checkout/orders`, intent CAPTURE, one purchase unit. `custom_id` is how the
        webhook finds the account and package (see shared.paypal.orders.order_custom_id). The
        buyer approves at `approve_url(order)`."""
        experience: dict[str, Any] = {
            "return_url": return_url,
            "cancel_url": cancel_url,
            "user_action": "PAY_NOW",
            "shipping_preference": "NO_SHIPPING",
        }
        if brand_name:
            experience["brand_name"] = brand_name[:127]
        body = {
            "intent": "CAPTURE",
            "purchase_units": [
                {
                    "custom_id": custom_id,
                    "description": description[:127],
                    "amount": {"currency_code": currency.upper(), "value": format_amount(amount_cents, currency)},
                }
            ],
            "payment_source": {"paypal": {"experience_context": experience}},
        }
        return self._request("POST", "/v2/checkout/orders", json_body=body, request_id=request_id)

    def capture_order(self, order_id: str, *, request_id: str) -> dict[str, Any]:
        """`POST /v2/checkout/orders/{id}/capture`. The same `request_id` returns the first
        capture's result (use shared.paypal.orders.capture_request_id). An order captured under
        another request id raises PayPalError with issue ORDER_ALREADY_CAPTURED: `get_order` then
        tells the result."""
        return self._request(
            "POST", f"/v2/checkout/orders/{_path_id(order_id)}/capture", json_body={}, request_id=request_id
        )

    def get_order(self, order_id: str) -> dict[str, Any]:
        """`GET /v2/checkout/orders/{id}`."""
        return self._request("GET", f"/v2/checkout/orders/{_path_id(order_id)}")

    # -- subscriptions ------------------------------------------------------------------------

    def create_subscription(
        self,
        *,
        plan_id: str,
        custom_id: str,
        return_url: str,
        cancel_url: str,
        request_id: str,
        email: str | None = None,
        brand_name: str | None = None,
    ) -> dict[str, Any]:
        """`POST /v1/billing/subscriptions` for a PayPal plan id (P-...). `custom_id` names the
        account and plan (shared.paypal.orders.subscription_custom_id); the buyer approves at
        `approve_url(subscription)`."""
        context: dict[str, Any] = {
            "return_url": return_url,
            "cancel_url": cancel_url,
            "user_action": "SUBSCRIBE_NOW",
            "shipping_preference": "NO_SHIPPING",
        }
        if brand_name:
            context["brand_name"] = brand_name[:127]
        body: dict[str, Any] = {"plan_id": plan_id, "custom_id": custom_id, "application_context": context}
        if email:
            body["subscriber"] = {"email_address": email}
        return self._request("POST", "/v1/billing/subscriptions", json_body=body, request_id=request_id)

    def revise_subscription(
        self, subscription_id: str, *, plan_id: str, return_url: str, cancel_url: str, request_id: str
    ) -> dict[str, Any]:
        """`POST /v1/billing/subscriptions/{id}/revise` to another PayPal plan. The buyer approves
        the change at `approve_url(answer)`; the plan changes when PayPal says so by webhook."""
        context = {"return_url": return_url, "cancel_url": cancel_url, "user_action": "CONTINUE"}
        body = {"plan_id": plan_id, "application_context": context}
        path = f"/v1/billing/subscriptions/{_path_id(subscription_id)}/revise"
        return self._request("POST", path, json_body=body, request_id=request_id)

    def cancel_subscription(self, subscription_id: str, *, reason: str) -> None:
        """`POST /v1/billing/subscriptions/{id}/cancel` (PayPal answers 204). PayPal refuses to
        cancel one that is already cancelled (422 SUBSCRIPTION_STATUS_INVALID)."""
        path = f"/v1/billing/subscriptions/{_path_id(subscription_id)}/cancel"
        self._request("POST", path, json_body={"reason": reason[:128]})

    def list_webhook_events(
        self, *, start_time: str, end_time: str, page_size: int = 100, page: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of `GET /v1/notifications/webhooks-events` (newest first) and the path of the
        next page, if any. `page` is a path a previous call returned. Only the path and query of
        PayPal's `next` link are kept, so the token never goes to a host other than `base_url`."""
        if page is None:
            query = urlencode({"page_size": page_size, "start_time": start_time, "end_time": end_time})
            page = f"/v1/notifications/webhooks-events?{query}"
        data = self._request("GET", page)
        events = [e for e in data.get("events") or [] if isinstance(e, dict) and isinstance(e.get("id"), str)]
        return events, _next_page(data)

    # -- webhooks -----------------------------------------------------------------------------

    def verify_webhook_signature(self, *, headers: Mapping[str, str], event: bytes | dict, webhook_id: str) -> bool:
        """`POST /v1/notifications/verify-webhook-signature`: True when PayPal answers SUCCESS.

        `headers` are the delivery's headers (any case); `event` is best given as the raw body
        bytes, which are embedded verbatim: PayPal signs the bytes it sent, and re-serialising the
        JSON can change them."""
        upper = {k.upper(): v for k, v in headers.items()}
        fields = {
            "auth_algo": upper.get("PAYPAL-AUTH-ALGO"),
            "cert_url": upper.get("PAYPAL-CERT-URL"),
            "transmission_id": upper.get("PAYPAL-TRANSMISSION-ID"),
            "transmission_sig": upper.get("PAYPAL-TRANSMISSION-SIG"),
            "transmission_time": upper.get("PAYPAL-TRANSMISSION-TIME"),
            "webhook_id": webhook_id,
        }
        raw_event = event if isinstance(event, bytes) else json.dumps(event, separators=(",", ":")).encode()
        body = json.dumps(fields, separators=(",", ":")).encode()[:-1] + b',"webhook_event":' + raw_event + b"}"
        result = self._request("POST", "/v1/notifications/verify-webhook-signature", raw_body=body)
        return result.get("verification_status") == "SUCCESS"

    # -- plumbing -----------------------------------------------------------------------------

    def access_token(self, deadline: float | None = None) -> str:
        token = self._tokens.get(self._token_key)
        if token is not None:
            return token
        try:
            response = self._http.post(
                f"{self.base_url}/v1/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(self._client_id, self._client_secret),
                headers={"Accept": "application/json"},
                timeout=self._timeout(deadline),
            )
        except requests.RequestException as exc:
            raise _network_error(exc) from exc
        if response.status_code in (400, 401, 403):
            raise PayPalError("PayPal refused billhook's client credentials", status=response.status_code)
        if response.status_code >= 300:
            raise _http_error(response)
        try:
            data = response.json()
            value, expires_in = data["access_token"], float(data.get("expires_in", 300))
        except (ValueError, KeyError, TypeError) as exc:
            raise PayPalError("PayPal answered the token request without a token", retryable=True) from exc
        self._tokens.put(self._token_key, value, expires_in)
        return value

    def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: dict | None = None,
        raw_body: bytes | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        if json_body is not None:
            raw_body = json.dumps(json_body, separators=(",", ":")).encode()
        headers = {"Accept": "application/json"}
        if raw_body is not None:
            headers["Content-Type"] = "application/json"
        if request_id is not None:
            if not request_id or len(request_id) > MAX_REQUEST_ID_LENGTH:
                raise ValueError("PayPal-Request-Id must be 1..108 characters")
            headers["PayPal-Request-Id"] = request_id
            headers["Prefer"] = "return=representation"
        deadline = time.monotonic() + self._total_seconds
        for attempt in (1, 2):
            headers["Authorization"] = f"Bearer {self.access_token(deadline)}"
            try:
                response = self._http.request(
                    method, f"{self.base_url}{path}", data=raw_body, headers=headers, timeout=self._timeout(deadline)
                )
            except requests.RequestException as exc:
                raise _network_error(exc) from exc
            if response.status_code == 401 and attempt == 1:
                self._tokens.drop(self._token_key)  # revoked or expired early: one fresh try
                continue
            break
        if response.status_code >= 300:
            raise _http_error(response)
        if not response.content:
            return {}
        try:
            data = response.json()
        except ValueError as exc:
            raise PayPalError("PayPal answered with a body that is not JSON", status=response.status_code) from exc
        return data if isinstance(data, dict) else {"items": data}

    def _timeout(self, deadline: float | None) -> tuple[float, float]:
        """requests' (connect, read) timeouts for one request: what is left of the call's budget,
        so a PayPal that stops answering is given up at the call's deadline."""
        remaining = self._total_seconds if deadline is None else deadline - time.monotonic()
        if remaining <= 0:
            raise PayPalTimeout("PayPal timed out", retryable=True)
        return (min(CONNECT_TIMEOUT_SECONDS, remaining), remaining)


def api_base(provider: IntegrationProvider, settings: Settings) -> str:
    return settings.paypal_api_base or provider.endpoint or (SANDBOX_API_BASE if provider.sandbox else LIVE_API_BASE)


def approve_url(resource: dict[str, Any]) -> str | None:
    """Where the buyer approves an order ("payer-action") or a subscription ("approve")."""
    for link in resource.get("links") or []:
        if link.get("rel") in ("payer-action", "approve"):
            return link.get("href")
    return None


def _next_page(data: dict[str, Any]) -> str | None:
    for link in data.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "next" and isinstance(link.get("href"), str):
            parts = urlsplit(link["href"])
            if parts.path.startswith("/v1/notifications/webhooks-events"):
                return f"{parts.path}?{parts.query}" if parts.query else parts.path
    return None


def _path_id(value: str) -> str:
    """An id that goes into a URL path; anything else is answered as PayPal would answer an
    unknown id, without a request."""
    if not isinstance(value, str) or not 0 < len(value) <= 64 or not all(c.isalnum() or c in "-_" for c in value):
        raise PayPalError("PayPal refused the request (INVALID_RESOURCE_ID)", status=404, issue="INVALID_RESOURCE_ID")
    return value


def _network_error(exc: requests.RequestException) -> PayPalError:
    if isinstance(exc, requests.Timeout):
        return PayPalTimeout("PayPal timed out", retryable=True)
    return PayPalError("PayPal could not be reached", retryable=True)


def _http_error(response: requests.Response) -> PayPalError:
    """PayPal's error body: {"name", "message", "debug_id", "details": [{"issue", "description"}]}
    (OAuth errors use {"error", "error_description"}). Only names and issue codes are kept."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    details = body.get("details") or []
    issue = details[0].get("issue") if details and isinstance(details[0], dict) else None
    name = body.get("name") or body.get("error")
    status = response.status_code
    retryable = status >= 500 or status == 429
    label = issue or name or f"HTTP {status}"
    return PayPalError(
        f"PayPal refused the request ({label})" if not retryable else f"PayPal failed the request ({label})",
        status=status,
        retryable=retryable,
        name=name if isinstance(name, str) else None,
        issue=issue if isinstance(issue, str) else None,
        debug_id=body.get("debug_id") if isinstance(body.get("debug_id"), str) else None,
    )
