"""A thin adapter over the stripe SDK's `StripeClient`: it builds the requests billhook makes and
maps every SDK failure to `ProviderError`. No business logic lives here (see shared/stripe/checkout.py).

Every call is bounded in total: the provider's `timeout_seconds` (default 10 s) covers all attempts
and the backoff between them, so a Stripe that accepts connections and never answers costs a web
thread at most that long (well under gunicorn's 30 s), answered 504 (`ProviderTimeout`).

The API key comes from the integration providers table; the base URL from
`settings.stripe_api_base`, else the provider's `endpoint`, else Stripe's own (tests point it at
a local stand-in). Every create call carries an idempotency key.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
import stripe
from sqlalchemy.orm import Session

from shared.config import Settings
from shared.credentials import active_provider
from shared.errors import NotConfigured, ProviderError, ProviderTimeout
from shared.models import IntegrationProvider

# The API version every request is made in (the SDK's pinned one): what the objects it returns are
# rendered in. Kept within shared.stripe.versions' range by tests/shared/stripe/test_versions.py.
API_VERSION: str = stripe.api_version

PROVIDER = "stripe"
# The total for one call, every attempt and the backoff between them included.
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_NETWORK_RETRIES = 1
CONNECT_TIMEOUT_SECONDS = 3.0
# Below this much time left, another attempt could not get an answer: give up instead.
_MIN_ATTEMPT_SECONDS = 0.05
_MAX_GATEWAYS = 8
_gateways: dict[tuple, StripeGateway] = {}
_gateways_lock = threading.Lock()
_SECRET_PATTERN = re.compile(r"\b(sk|rk|pk)_(test|live)_[A-Za-z0-9*]+")


@dataclass(frozen=True)
class CheckoutOptions:
    """Checkout Session options an operator sets in the stripe provider's config."""

    allow_promotion_codes: bool = False
    automatic_tax: bool = False
    tax_id_collection: bool = False
    billing_address_collection: str | None = None  # "auto" or "required"

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        customer_update: dict[str, str] = {}
        if self.allow_promotion_codes:
            params["allow_promotion_codes"] = True
        if self.automatic_tax:
            params["automatic_tax"] = {"enabled": True}
            # Stripe taxes an existing customer by its address: Checkout must be allowed to save it.
            customer_update["address"] = "auto"
        if self.tax_id_collection:
            params["tax_id_collection"] = {"enabled": True}
            customer_update["name"] = "auto"  # Stripe requires it to store the business name with the id
        if self.billing_address_collection:
            params["billing_address_collection"] = self.billing_address_collection
        if customer_update:
            params["customer_update"] = customer_update
        return params


class StripeGateway:
    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_network_retries: int = DEFAULT_MAX_NETWORK_RETRIES,
    ):
        base = {"api": api_base.rstrip("/")} if api_base else None
        self._http = BoundedRequestsClient(total_seconds=timeout, attempts=max_network_retries + 1)
        self._client = stripe.StripeClient(
            api_key, base_addresses=base, max_network_retries=max_network_retries, http_client=self._http
        )

    @classmethod
    def from_provider(cls, provider: IntegrationProvider | None, settings: Settings) -> StripeGateway:
        """The gateway for these credentials, reused across requests so its connections are kept
        alive (a fresh TLS handshake per checkout costs more than the call)."""
        if provider is None or not provider.api_key:
            raise NotConfigured("Stripe has no API key in the providers table (billhook providers set stripe)")
        config = provider.config or {}
        options = (
            provider.api_key,
            settings.stripe_api_base or provider.endpoint,
            float(config.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)),
            int(config.get("max_network_retries", DEFAULT_MAX_NETWORK_RETRIES)),
        )
        with _gateways_lock:
            gateway = _gateways.get(options)
            if gateway is None:
                if len(_gateways) >= _MAX_GATEWAYS:
                    _gateways.clear()  # keys rotated many times: start over rather than grow
                api_key, api_base, timeout, retries = options
                gateway = _gateways[options] = cls(
                    api_key, api_base=api_base, timeout=timeout, max_network_retries=retries
                )
        return gateway

    @classmethod
    def from_store(cls, session: Session, settings: Settings) -> StripeGateway:
        return cls.from_provider(active_provider(session, PROVIDER), settings)

    # -- calls ----------------------------------------------------------------------------------

    def create_customer(
        self, *, account_id: str, email: str | None, name: str | None, idempotency_key: str
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"metadata": {"account_id": account_id}}
        if email:
            params["email"] = email
        if name:
            params["name"] = name
        return self._call(self._client.v1.customers.create, params, idempotency_key)

    def create_checkout_session(
        self,
        *,
        mode: str,
        price_id: str,
        customer_id: str,
        client_reference_id: str,
        metadata: dict[str, str],
        success_url: str,
        cancel_url: str,
        idempotency_key: str,
        trial_period_days: int = 0,
        options: CheckoutOptions | None = None,
    ) -> dict[str, Any]:
        """A hosted Checkout Session. The metadata goes on the session and on what it creates (the
        subscription, or the payment intent) so later invoices and charges carry it too."""
        params: dict[str, Any] = {
            "mode": mode,
            "customer": customer_id,
            "client_reference_id": client_reference_id,
            "line_items": [{"price": price_id, "quantity": 1}],
            "metadata": metadata,
            "success_url": success_url,
            "cancel_url": cancel_url,
            **(options or CheckoutOptions()).params(),
        }
        if mode == "subscription":
            params["subscription_data"] = {"metadata": metadata}
            if trial_period_days:
                params["subscription_data"]["trial_period_days"] = trial_period_days
        else:
            params["payment_intent_data"] = {"metadata": metadata}
        return self._call(self._client.v1.checkout.sessions.create, params, idempotency_key)

    def cancel_subscription_at_period_end(self, subscription_id: str, *, idempotency_key: str) -> dict[str, Any]:
        return self._update_subscription(subscription_id, {"cancel_at_period_end": True}, idempotency_key)

    def resume_subscription(self, subscription_id: str, *, idempotency_key: str) -> dict[str, Any]:
        """Undo a scheduled cancellation (`cancel_at_period_end`) while the period lasts."""
        return self._update_subscription(subscription_id, {"cancel_at_period_end": False}, idempotency_key)

    def _update_subscription(self, subscription_id: str, params: dict[str, Any], idempotency_key: str) -> dict:
        with self._bounded():
            result = self._client.v1.subscriptions.update(subscription_id, params, {"idempotency_key": idempotency_key})
        return result.to_dict()

    def create_portal_session(self, *, customer_id: str, return_url: str, idempotency_key: str) -> dict[str, Any]:
        params = {"customer": customer_id, "return_url": return_url}
        return self._call(self._client.v1.billing_portal.sessions.create, params, idempotency_key)

    def retrieve_checkout_session(self, session_id: str) -> dict[str, Any]:
        """The session as Stripe sent it (the SDK's objects turn decimal strings into Decimal): the
        JSON its webhook carries, so the inbox can store it as an event's object."""
        with self._bounded():
            obj = self._client.v1.checkout.sessions.retrieve(session_id)
        return dict(obj.last_response.data) if obj.last_response is not None else obj.to_dict()

    def open_checkout_sessions(self, customer_id: str) -> list[dict[str, Any]]:
        """The customer's Checkout Sessions still open (Stripe expires them after 24 h)."""
        params = {"customer": customer_id, "status": "open", "limit": 100}
        with self._bounded():
            page = self._client.v1.checkout.sessions.list(params)
        raw = page.last_response.data if page.last_response is not None else {"data": [s.to_dict() for s in page.data]}
        return [dict(each) for each in raw["data"]]

    def expire_checkout_session(self, session_id: str) -> dict[str, Any]:
        with self._bounded():
            return self._client.v1.checkout.sessions.expire(session_id).to_dict()

    def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]:
        with self._bounded():
            return self._client.v1.subscriptions.retrieve(subscription_id).to_dict()

    def cancel_subscription_now(self, subscription_id: str) -> dict[str, Any]:
        """End it at once; Stripe sends customer.subscription.deleted. (A DELETE takes no
        idempotency key: the caller checks the subscription is not canceled already.)"""
        with self._bounded():
            return self._client.v1.subscriptions.cancel(subscription_id).to_dict()

    def refund(self, charge_ref: str, *, idempotency_key: str) -> dict[str, Any]:
        """Refund a PaymentIntent (`pi_...`) or a Charge (`ch_...`) in full; Stripe sends charge.refunded."""
        params = {"charge" if charge_ref.startswith("ch_") else "payment_intent": charge_ref}
        return self._call(self._client.v1.refunds.create, params, idempotency_key)

    def list_events(
        self, *, types: list[str], created_gte: int, starting_after: str | None = None, limit: int = 100
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of GET /v1/events (newest first): (events, has_more). Page on with the last
        event's id as `starting_after`."""
        params: dict[str, Any] = {"types": types, "created": {"gte": created_gte}, "limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        with self._bounded():
            page = self._client.v1.events.list(params)
        # The events as Stripe sent them (the SDK's objects turn decimal strings into Decimal):
        # the same JSON a webhook delivery carries, so the inbox stores one shape.
        raw = page.last_response.data if page.last_response is not None else {"data": [e.to_dict() for e in page.data]}
        return [dict(event) for event in raw["data"]], bool(page.has_more)

    def change_subscription_price(
        self,
        subscription_id: str,
        *,
        item_id: str,
        price_id: str,
        proration_behavior: str,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> dict[str, Any]:
        params = {
            "items": [{"id": item_id, "price": price_id}],
            "proration_behavior": proration_behavior,
            "metadata": metadata,
        }
        with self._bounded():
            result = self._client.v1.subscriptions.update(subscription_id, params, {"idempotency_key": idempotency_key})
        return result.to_dict()

    # -- the catalog: Products and Prices ---------------------------------------------------------

    def prices_by_lookup_key(self, lookup_keys: list[str]) -> dict[str, dict[str, Any]]:
        """The active Prices holding these lookup keys, by key (a key missing from the answer has
        no Price). Stripe takes at most 10 keys per list call."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(lookup_keys), 10):
            params = {"lookup_keys": lookup_keys[start : start + 10], "active": True, "limit": 100}
            try:
                page = self._client.v1.prices.list(params)
            except stripe.StripeError as exc:
                raise provider_error(exc) from exc
            for price in page.data:
                found[price.lookup_key] = price.to_dict()
        return found

    def retrieve_price(self, price_id: str) -> dict[str, Any] | None:
        """The Price, or None when the account has no such Price."""
        try:
            return self._client.v1.prices.retrieve(price_id).to_dict()
        except stripe.InvalidRequestError as exc:
            if getattr(exc, "code", None) == "resource_missing":
                return None
            raise provider_error(exc) from exc
        except stripe.StripeError as exc:
            raise provider_error(exc) from exc

    def ensure_product(self, product_id: str, *, name: str, metadata: dict[str, str]) -> dict[str, Any]:
        """The Product with this id, created when missing: billhook names its Products itself, so
        pushing the catalog twice finds the first run's Products."""
        try:
            return self._client.v1.products.retrieve(product_id).to_dict()
        except stripe.InvalidRequestError as exc:
            if getattr(exc, "code", None) != "resource_missing":
                raise provider_error(exc) from exc
        except stripe.StripeError as exc:
            raise provider_error(exc) from exc
        params = {"id": product_id, "name": name, "metadata": metadata}
        return self._call(self._client.v1.products.create, params, f"billhook-product-{product_id}")

    def create_price(
        self,
        *,
        product_id: str,
        unit_amount: int,
        currency: str,
        interval: str | None,
        lookup_key: str,
        nickname: str,
        metadata: dict[str, str],
        idempotency_key: str,
        transfer_lookup_key: bool = False,
    ) -> dict[str, Any]:
        """A new Price (Prices are immutable: a new amount is a new Price). `transfer_lookup_key`
        moves the key from the Price holding it, which keeps that Price and its subscribers."""
        params: dict[str, Any] = {
            "product": product_id,
            "unit_amount": unit_amount,
            "currency": currency,
            "lookup_key": lookup_key,
            "nickname": nickname,
            "metadata": metadata,
        }
        if interval:
            params["recurring"] = {"interval": interval}
        if transfer_lookup_key:
            params["transfer_lookup_key"] = True
        return self._call(self._client.v1.prices.create, params, idempotency_key)

    def _call(self, method, params: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        with self._bounded():
            return method(params, {"idempotency_key": idempotency_key}).to_dict()

    @contextmanager
    def _bounded(self) -> Iterator[None]:
        """One call within its total time bound, its SDK failure mapped to a ProviderError."""
        try:
            with self._http.budget():
                yield
        except stripe.StripeError as exc:
            raise provider_error(exc) from exc


class BoundedRequestsClient(stripe.RequestsClient):
    """The SDK's requests client with one time budget per call shared by its attempts.

    requests' timeouts bound a connect and each silence on the socket, not a call: with the SDK's
    retries and backoff a black-holed endpoint cost 2 x 20 s + backoff. Here each attempt gets
    at most an equal share of the budget (so a retry still has time left), the backoff never
    sleeps past the deadline, and no attempt starts once the budget is spent. The deadline is
    per thread: one gateway serves every request thread of a process."""

    def __init__(self, *, total_seconds: float, attempts: int):
        super().__init__(timeout=total_seconds)
        self.total_seconds = total_seconds
        self.attempts = max(1, attempts)
        self._deadline = threading.local()

    @contextmanager
    def budget(self) -> Iterator[None]:
        self._deadline.at = time.monotonic() + self.total_seconds
        try:
            yield
        finally:
            self._deadline.at = None

    def _remaining(self) -> float:
        deadline = getattr(self._deadline, "at", None)
        return self.total_seconds if deadline is None else deadline - time.monotonic()

    @property
    def _timeout(self) -> tuple[float, float]:  # read by RequestsClient for each attempt
        read = min(self._remaining(), self.total_seconds / self.attempts)
        return (min(CONNECT_TIMEOUT_SECONDS, read), read)

    @_timeout.setter
    def _timeout(self, _value) -> None:  # the SDK's constructor sets a fixed one: the property decides
        pass

    def request(self, method, url, headers, post_data=None):
        if self._remaining() < _MIN_ATTEMPT_SECONDS:
            raise stripe.APIConnectionError("the call's time budget is spent", should_retry=False) from TimeoutError()
        return super().request(method, url, headers, post_data)

    def _sleep_time_seconds(self, num_retries: int) -> float:
        return max(0.0, min(super()._sleep_time_seconds(num_retries), self._remaining() - _MIN_ATTEMPT_SECONDS))


def provider_error(exc: stripe.StripeError) -> ProviderError:
    """One small error for every SDK failure. The message is safe to show a user: the card error's
    user message, else a description built from the error's type and code, never the raw text
    (which may quote part of a key)."""
    status = getattr(exc, "http_status", None)
    if isinstance(exc, stripe.CardError):
        message = exc.user_message or "the card was declined"
        return ProviderError(PROVIDER, _scrub(f"card declined: {message}"), status=status)
    if isinstance(exc, stripe.APIConnectionError):
        if isinstance(exc.__cause__, requests.Timeout | TimeoutError):
            return ProviderTimeout(PROVIDER, "no response from Stripe within billhook's timeout", retryable=True)
        return ProviderError(PROVIDER, "Stripe could not be reached (network error)", retryable=True)
    if isinstance(exc, stripe.RateLimitError):
        return ProviderError(PROVIDER, "Stripe is rate limiting requests", status=status, retryable=True)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return ProviderError(PROVIDER, "Stripe refused billhook's API key", status=status)
    code = getattr(exc, "code", None)
    if isinstance(exc, stripe.InvalidRequestError):
        detail = f" ({code})" if code else ""
        param = f" on parameter {exc.param}" if getattr(exc, "param", None) else ""
        return ProviderError(PROVIDER, _scrub(f"Stripe rejected the request{detail}{param}"), status=status)
    retryable = status is None or status >= 500
    return ProviderError(
        PROVIDER, f"Stripe failed the request (HTTP {status or 'error'})", status=status, retryable=retryable
    )


def _scrub(text: str) -> str:
    return _SECRET_PATTERN.sub("[redacted]", text)[:300]
