"""Delivering one outgoing event to one endpoint, until a 2xx or the end of the retry window.

One transaction per attempt: the delivery row is locked (a second task for the same row skips
it), the request is made, its result recorded. A worker killed mid-request rolls back: the row is
as it was and the sweeper re-queues it after the grace (the receiver may then see the event twice:
it dedupes on `webhook-id`, the event's id). A failed attempt schedules the next one with
exponential backoff and jitter, `next_attempt_at` on the row; the caller retries through Celery
when that is sooner than the broker's visibility timeout allows, and the sweeper finds the rest.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from shared import handoff
from shared.config import Settings
from shared.models import OutgoingDelivery, OutgoingEndpoint, OutgoingEvent
from shared.models.outgoing import DeliveryStatus
from shared.outgoing import network, signing
from shared.outgoing.endpoints import signing_secrets

DELIVERED = "delivered"
RETRY = "retry"
FAILED = "failed"
ALREADY_DONE = "already_done"
MISSING = "missing"
BUSY = "busy"  # another task holds the row: it is being attempted now
NOT_DUE = "not_due"  # an early duplicate message; the scheduled attempt comes later
PAUSED = "paused"  # the endpoint is disabled: the row waits
# A message may arrive a little before its countdown ends by the database's clock.
EARLY_TOLERANCE = timedelta(seconds=2)

log = logging.getLogger("billhook.outgoing")

Sender = Callable[..., network.Response]


@dataclass(frozen=True)
class Attempt:
    outcome: str
    retry_in: float | None = None
    endpoint_id: str | None = None
    event_type: str | None = None
    status_code: int | None = None
    error: str | None = None


def backoff_seconds(attempts: int, settings: Settings) -> float:
    """Exponential from the base up to the cap, half of it random (jitter spreads retries out)."""
    ceiling = min(settings.outgoing_retry_max_seconds, settings.outgoing_retry_base_seconds * 2 ** max(attempts - 1, 0))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def encode(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def _lock(session: Session, delivery_id: int) -> OutgoingDelivery | None:
    stmt = (
        select(OutgoingDelivery)
        .where(OutgoingDelivery.id == delivery_id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return session.scalars(stmt).one_or_none()


def deliver(
    session_factory: sessionmaker[Session],
    delivery_id: int,
    *,
    settings: Settings,
    clock: Callable[[], datetime],
    send: Sender = network.post,
) -> Attempt:
    with session_factory.begin() as session:
        row = _lock(session, delivery_id)
        if row is None:
            exists = session.scalar(select(OutgoingDelivery.id).where(OutgoingDelivery.id == delivery_id))
            return Attempt(BUSY if exists is not None else MISSING)
        if row.status != DeliveryStatus.PENDING:
            return Attempt(ALREADY_DONE, endpoint_id=row.endpoint_id)
        now = clock()
        if row.next_attempt_at is not None and row.next_attempt_at > now + EARLY_TOLERANCE:
            return Attempt(NOT_DUE, endpoint_id=row.endpoint_id)
        endpoint = session.get(OutgoingEndpoint, row.endpoint_id)
        event = session.get(OutgoingEvent, row.event_id)
        if not endpoint.enabled:
            return Attempt(PAUSED, endpoint_id=endpoint.id, event_type=event.type)
        body = encode(event.body)
        headers = signing.headers(signing_secrets(endpoint, now), event.id, int(now.timestamp()), body)
        row.attempts += 1
        row.first_attempt_at = row.first_attempt_at or now
        status_code, error = _attempt(send, endpoint, body, headers, settings)
        row.last_status_code = status_code
        row.updated_at = clock()
        if error is None:
            row.status = DeliveryStatus.DELIVERED
            row.delivered_at = row.updated_at
            row.last_error = None
            return Attempt(DELIVERED, endpoint_id=endpoint.id, event_type=event.type, status_code=status_code)
        row.last_error = error
        if now - row.first_attempt_at >= timedelta(seconds=settings.outgoing_retry_window_seconds):
            row.status = DeliveryStatus.FAILED
            row.next_attempt_at = None
            return Attempt(FAILED, endpoint_id=endpoint.id, event_type=event.type, status_code=status_code, error=error)
        delay = backoff_seconds(row.attempts, settings)
        row.next_attempt_at = now + timedelta(seconds=delay)
        return Attempt(
            RETRY, retry_in=delay, endpoint_id=endpoint.id, event_type=event.type, status_code=status_code, error=error
        )


def _attempt(
    send: Sender, endpoint: OutgoingEndpoint, body: bytes, headers: dict, settings: Settings
) -> tuple[int | None, str | None]:
    """(status code, error): error None for a 2xx. Never the response body (it may echo anything)."""
    try:
        response = send(
            endpoint.url, body, headers, allow_private=endpoint.allow_private, timeout=settings.outgoing_timeout_seconds
        )
    except network.UnsafeUrl as exc:
        return None, f"refused: {exc}"
    except (OSError, http.client.HTTPException) as exc:
        return None, f"{type(exc).__name__}: {str(exc)[:200]}"
    if 200 <= response.status < 300:
        return response.status, None
    return response.status, f"HTTP {response.status}"


# -- the sweep -------------------------------------------------------------------------------


def due_for_sweep(session: Session, *, now: datetime, grace_seconds: int, limit: int = 500) -> list[int]:
    """Pending deliveries to enabled endpoints whose task may be lost: last queued, attempted or
    swept longer than a grace ago (or due after a wait longer than a countdown may be)."""
    cutoff = now - timedelta(seconds=grace_seconds)
    last_touch = func.coalesce(OutgoingDelivery.next_attempt_at, OutgoingDelivery.created_at)
    stmt = (
        select(OutgoingDelivery.id)
        .join(OutgoingEndpoint, OutgoingEndpoint.id == OutgoingDelivery.endpoint_id)
        .where(OutgoingDelivery.status == DeliveryStatus.PENDING, OutgoingEndpoint.enabled, last_touch < cutoff)
        .order_by(OutgoingDelivery.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def restart_sweep_clock(session: Session, delivery_ids: list[int], *, at: datetime) -> None:
    if delivery_ids:
        session.execute(
            update(OutgoingDelivery)
            .where(OutgoingDelivery.id.in_(delivery_ids), OutgoingDelivery.status == DeliveryStatus.PENDING)
            .values(next_attempt_at=at)
        )


def sweep(
    session_factory: sessionmaker[Session],
    enqueue: Callable[[int], None],
    *,
    now: datetime,
    grace_seconds: int,
    limit: int = 500,
) -> list[int]:
    """Publish pending deliveries whose task may be lost (a broker outage after commit, a killed
    worker) or whose next attempt is due after a long wait (`due_for_sweep`)."""
    return handoff.sweep(
        session_factory,
        enqueue,
        find_due=due_for_sweep,
        restart_clock=restart_sweep_clock,
        now=now,
        grace_seconds=grace_seconds,
        what="delivery",
        limit=limit,
    )


# -- ops -------------------------------------------------------------------------------------

_ROW = select(OutgoingDelivery, OutgoingEvent.type, OutgoingEvent.account_id, OutgoingEvent.sequence).join(
    OutgoingEvent, OutgoingEvent.id == OutgoingDelivery.event_id
)


def list_deliveries(session: Session, *, status: str | None = None, limit: int = 50) -> list[dict]:
    stmt = _ROW.order_by(OutgoingDelivery.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(OutgoingDelivery.status == status)
    return [describe(row, type_, account_id, sequence) for row, type_, account_id, sequence in session.execute(stmt)]


def show_delivery(session: Session, delivery_id: int) -> dict | None:
    found = session.execute(_ROW.where(OutgoingDelivery.id == bindparam("id")), {"id": delivery_id}).one_or_none()
    if found is None:
        return None
    row, type_, account_id, sequence = found
    return {**describe(row, type_, account_id, sequence), "body": session.get(OutgoingEvent, row.event_id).body}


def retry(session: Session, delivery_id: int, *, at: datetime) -> bool:
    """An operator's retry: a failed (or waiting) delivery is due now, with a new retry window.
    False for one delivered already or unknown."""
    row = session.get(OutgoingDelivery, delivery_id, with_for_update=True)
    if row is None or row.status == DeliveryStatus.DELIVERED:
        return False
    row.status = DeliveryStatus.PENDING
    row.first_attempt_at = None
    row.next_attempt_at = at
    row.updated_at = at
    return True


def describe(row: OutgoingDelivery, type_: str, account_id: str, sequence: int) -> dict:
    return {
        "id": row.id,
        "event_id": row.event_id,
        "type": type_,
        "account_id": account_id,
        "sequence": sequence,
        "endpoint_id": row.endpoint_id,
        "status": row.status,
        "attempts": row.attempts,
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "next_attempt_at": row.next_attempt_at,
        "created_at": row.created_at,
        "delivered_at": row.delivered_at,
    }
