"""Event handlers: plain functions of (session, event, now) that change the store through domain
functions. They never commit, open sessions, read the clock or call the network: the task
around them does the transaction, the clock and the retries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from shared.models import WebhookEvent

Handler = Callable[[Session, WebhookEvent, datetime], None]

_REGISTRY: dict[tuple[str, str], Handler] = {}


def handles(provider: str, *types: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for event_type in types:
            _REGISTRY[(provider, event_type)] = fn
        return fn

    return register


def handler_for(provider: str, event_type: str) -> Handler | None:
    _load()
    return _REGISTRY.get((provider, event_type))


def is_handled(provider: str, event_type: str) -> bool:
    return handler_for(provider, event_type) is not None


def handled_types(provider: str) -> list[str]:
    _load()
    return sorted(t for p, t in _REGISTRY if p == provider)


def _load() -> None:
    # Importing the provider modules registers their handlers.
    from shared.handlers import paypal, stripe  # noqa: F401
