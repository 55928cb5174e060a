"""Provider credentials, kept in the integration providers table."""

from __future__ import annotations

import secrets
import threading
import time

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from shared.models import IntegrationProvider

PROVIDERS = ("stripe", "paypal", "resend", "manual")
MASK_HIDDEN_MIN = 12


_PROVIDER_BY_NAME = select(IntegrationProvider).where(IntegrationProvider.name == bindparam("name"))  # per email


def get_provider(session: Session, name: str) -> IntegrationProvider | None:
    return session.scalars(_PROVIDER_BY_NAME, {"name": name}).one_or_none()


def active_provider(session: Session, name: str) -> IntegrationProvider | None:
    provider = get_provider(session, name)
    return provider if provider is not None and provider.active else None


def set_provider(session: Session, name: str, **fields) -> IntegrationProvider:
    """Create or update a provider; fields left as None are not changed."""
    if name not in PROVIDERS:
        raise ValueError(f"unknown provider {name!r}; expected one of {', '.join(PROVIDERS)}")
    provider = get_provider(session, name)
    if provider is None:
        provider = IntegrationProvider(name=name, webhook_secrets=[], config={})
        session.add(provider)
    for key, value in fields.items():
        if value is not None:
            setattr(provider, key, value)
    session.flush()
    return provider


def seed_providers(session: Session) -> list[str]:
    """Seed a Stripe row with a random development webhook secret so a fresh machine can accept
    signed events at once (`billhook events send` signs with it). Real secrets replace it via
    `billhook providers set`."""
    created = []
    if get_provider(session, "stripe") is None:
        set_provider(session, "stripe", webhook_secrets=["whsec_dev_" + secrets.token_hex(16)], sandbox=True)
        created.append("stripe")
    return created


def mask(value: str | None) -> str | None:
    """Enough of a secret to recognise it, never enough to use it."""
    if not value:
        return value
    prefix = value[: value.index("_") + 1] if "_" in value[:10] else ""
    # Show the prefix, then the last four, only while at least 12 characters stay hidden: on a
    # short value they would give most of it away.
    if len(value) - len(prefix) < MASK_HIDDEN_MIN:
        return "****"
    tail = value[-4:] if len(value) - len(prefix) - 4 >= MASK_HIDDEN_MIN else ""
    return f"{prefix}****{tail}"


def masked_provider(provider: IntegrationProvider) -> dict:
    return {
        "name": provider.name,
        "active": provider.active,
        "sandbox": provider.sandbox,
        "api_key": mask(provider.api_key),
        "api_secret": mask(provider.api_secret),
        "webhook_secrets": [mask(s) for s in provider.webhook_secrets or []],
        "webhook_id": provider.webhook_id,
        "endpoint": provider.endpoint,
        "config": provider.config or {},
    }


class WebhookSecretCache:
    """Webhook secrets for the intake hot path, read from the store at most every `ttl` seconds."""

    def __init__(self, session_factory: sessionmaker, ttl: float = 30.0, clock=time.monotonic):
        self._session_factory = session_factory
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: dict[str, tuple[float, list[str]]] = {}

    def cached(self, name: str) -> list[str] | None:
        """The secrets while they are fresh, None when `secrets_for` would read the store: an
        event loop calls that in a thread only then."""
        hit = self._cached.get(name)
        if hit is not None and self._clock() - hit[0] < self._ttl:
            return hit[1]
        return None

    def secrets_for(self, name: str) -> list[str]:
        now = self._clock()
        hit = self._cached.get(name)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        with self._session_factory() as session:
            provider = active_provider(session, name)
            values = list(provider.webhook_secrets or []) if provider else []
        with self._lock:
            self._cached[name] = (now, values)
        return values

    def clear(self) -> None:
        with self._lock:
            self._cached.clear()
