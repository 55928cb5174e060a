"""Putting a provider event into the inbox the way intake does (`inbox.record_event`), for tests
that start from a stored event: Stripe's shape (`type`, `created`) or PayPal's (`event_type`,
`create_time`), and optionally the state a run would have left it in."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from shared import inbox
from shared.dispatch import is_handled
from shared.models import WebhookEvent
from tests.factories import stripe_events as se


def created_at(evt: dict) -> datetime | None:
    if "event_type" in evt:  # PayPal
        return datetime.fromisoformat(evt["create_time"].replace("Z", "+00:00")) if evt.get("create_time") else None
    return datetime.fromtimestamp(evt["created"], UTC) if evt.get("created") is not None else None


def store_event(
    session_factory: sessionmaker[Session],
    evt: dict,
    *,
    at: datetime | None = None,
    event_created_at: datetime | None = None,
    handled: bool | None = None,
    **state,
) -> int:
    """Record `evt` (received `at`, default now) as intake would: a type without a handler is
    `ignored`, unless `handled` says otherwise. Returns its row id; `state` (status, last_error,
    attempts, ...) is then set on the row as a run would have."""
    provider, event_type = ("paypal", evt["event_type"]) if "event_type" in evt else ("stripe", evt["type"])
    with session_factory.begin() as session:
        pk = inbox.record_event(
            session,
            provider=provider,
            event_id=evt["id"],
            type=event_type,
            payload=evt,
            event_created_at=event_created_at or created_at(evt),
            handled=is_handled(provider, event_type) if handled is None else handled,
            at=at or datetime.now(UTC),
        ).id
        if state:
            session.execute(update(WebhookEvent).filter_by(id=pk).values(**state))
    return pk


def record(
    session: Session,
    now: datetime,
    *,
    event_type: str = "invoice.paid",
    handled: bool = True,
    event_id: str | None = None,
) -> inbox.Stored:
    """Record a Stripe invoice event on an open session (the inbox's own tests)."""
    evt = se.event(event_type, {"object": "invoice"}, event_id=event_id)
    return inbox.record_event(
        session,
        provider="stripe",
        event_id=evt["id"],
        type=evt["type"],
        payload=evt,
        event_created_at=now,
        handled=handled,
        at=now,
    )
