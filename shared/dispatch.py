"""Which handler runs an event. Importing every provider's handlers here fills the `@handles`
table (`shared.inbox.registry`) before anyone asks."""

from __future__ import annotations

from shared.inbox.registry import Handler, registered, registered_types
from shared.paypal import handlers as _paypal_handlers  # noqa: F401 - registers the PayPal handlers
from shared.stripe import handlers as _stripe_handlers  # noqa: F401 - registers the Stripe handlers


def handler_for(provider: str, event_type: str) -> Handler | None:
    return registered(provider, event_type)


def is_handled(provider: str, event_type: str) -> bool:
    return registered(provider, event_type) is not None


def handled_types(provider: str) -> list[str]:
    return registered_types(provider)
