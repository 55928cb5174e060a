"""The `@handles` table: which handler runs an event of a provider and type.

Only the decorator and its table live here; `shared.dispatch` imports every provider's handlers,
which fills the table, and answers which handler runs an event.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from shared.models import WebhookEvent
from shared.outcome import Outcome

# A handler changes the store through domain functions and reports on the outcome what it did
# (the account it touched, the emails it queued). It never commits, opens a session, reads the
# clock or calls the network: the runner does the transaction, the clock and the retries.
Handler = Callable[[Session, WebhookEvent, datetime, Outcome], None]

_TABLE: dict[tuple[str, str], Handler] = {}


def handles(provider: str, *types: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for event_type in types:
            _TABLE[(provider, event_type)] = fn
        return fn

    return register


def registered(provider: str, event_type: str) -> Handler | None:
    return _TABLE.get((provider, event_type))


def registered_types(provider: str) -> list[str]:
    return sorted(t for p, t in _TABLE if p == provider)
