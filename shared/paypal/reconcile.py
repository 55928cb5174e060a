"""Reconciliation with PayPal: the webhook events PayPal sent (or failed to send) that the inbox
lacks, fetched from `GET /v1/notifications/webhooks-events`.

PayPal lists its webhook events under the same ids it delivers (WH-...), so each listed event goes
through the same `record_event` as intake: the unique (provider, event_id) decides, and a delivery
racing the reconciler is stored once. The new ones are queued after their page commits; a down
broker leaves them to the inbox sweeper. Like Stripe's, every event PayPal lists is stored
(unhandled types as ignored), so `events list` shows what PayPal sent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from shared import event_ops, handoff, metrics
from shared.config import Settings
from shared.paypal.client import PROVIDER, PayPalGateway
from shared.stripe.reconcile import ReconcileResult

PAGE_SIZE = 100
# A guard against a `next` link that never ends (PayPal's list is bounded by the time window).
MAX_PAGES = 1000


def reconcile_paypal(
    session_factory: sessionmaker[Session],
    settings: Settings,
    *,
    since: datetime,
    now: datetime,
    enqueue: Callable[[int], None],
    page_size: int = PAGE_SIZE,
    gateway: PayPalGateway | None = None,
) -> ReconcileResult:
    """Raises NotConfigured when PayPal has no credentials, PayPalError when PayPal refuses or
    cannot be reached (the pages stored before it stay stored)."""
    if gateway is None:
        with session_factory() as session:
            gateway = PayPalGateway.from_store(session, settings)
    result = ReconcileResult()
    page = None
    while result.pages < MAX_PAGES:
        events, page = gateway.list_webhook_events(
            start_time=_paypal_time(since), end_time=_paypal_time(now), page_size=page_size, page=page
        )
        result.pages += 1
        result.seen += len(events)
        new = _store_page(session_factory, events, now)
        result.inserted.extend(new)
        metrics.RECONCILED_EVENTS.labels(PROVIDER).inc(len(new))
        if not result.enqueue_failed:
            result.enqueue_failed = len(handoff.hand_over(enqueue, new, what="event")) < len(new)
        if page is None or not events:
            break
    return result.logged(PROVIDER, since)


def _store_page(session_factory: sessionmaker[Session], events: list[dict], now: datetime) -> list[int]:
    page = [
        event_ops.Listed(event["id"], event["event_type"], event, _parse_time(event.get("create_time")))
        for event in events
        # an event without a type billhook could never read; intake would refuse it too
        if isinstance(event.get("event_type"), str)
    ]
    return event_ops.store_listed(session_factory, PROVIDER, page, at=now)


def _paypal_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
