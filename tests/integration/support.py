"""Plain helpers for the integration tests: polling, storing and reading inbox events."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared import inbox
from shared.handlers import is_handled
from shared.models import WebhookEvent

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.05, message: str = "") -> T:
    """Poll until `predicate()` is truthy and return its value; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate!r}")
        time.sleep(interval)


def store_event(session_factory: sessionmaker[Session], evt: dict, provider: str = "stripe") -> int:
    """Put a provider event in the inbox the way intake does (without HTTP) and return its row id."""
    with session_factory.begin() as session:
        stored = inbox.record_event(
            session,
            provider=provider,
            event_id=evt["id"],
            type=evt["type"],
            payload=evt,
            event_created_at=datetime.fromtimestamp(evt["created"], UTC) if evt.get("created") else None,
            handled=is_handled(provider, evt["type"]),
            at=datetime.now(UTC),
        )
    return stored.id


def event_row(session_factory: sessionmaker[Session], event_id: str, provider: str = "stripe") -> WebhookEvent | None:
    with session_factory() as session:
        return session.scalars(select(WebhookEvent).filter_by(provider=provider, event_id=event_id)).one_or_none()


def event_status(session_factory: sessionmaker[Session], event_id: str, provider: str = "stripe") -> str | None:
    row = event_row(session_factory, event_id, provider)
    return row.status if row else None


def all_succeeded(session_factory: sessionmaker[Session], event_ids: list[str], provider: str = "stripe") -> bool:
    with session_factory() as session:
        done = session.scalar(
            select(func.count())
            .select_from(WebhookEvent)
            .where(WebhookEvent.provider == provider, WebhookEvent.event_id.in_(event_ids))
            .where(WebhookEvent.status == "succeeded")
        )
    return done == len(set(event_ids))
