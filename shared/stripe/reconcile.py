"""Reconciliation with Stripe: what the webhooks missed, fetched from Stripe's API.

`reconcile_stripe` pages through GET /v1/events for the types billhook handles, created since a
time, and stores each event the inbox lacks through the same `record_event` as intake (the
unique (provider, event_id) decides, so a delivery racing the reconciler is stored once), then
enqueues the new ones after their page commits. Stripe keeps events for 30 days.

`sync_stripe_subscription` refetches one subscription and applies it as billhook's newest
knowledge: it goes into the inbox as a `customer.subscription.updated` event of billhook's own
(id `billhook_sync_...`, created now) and runs through the same handler and the same high-water
mark as a webhook, so the fix is visible in `events list` and an older delivery arriving
afterwards cannot undo it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from shared import event_ops, handoff, inbox, metrics, processing
from shared.billing.subscriptions import find_subscription
from shared.config import Settings
from shared.dispatch import handled_types
from shared.logs import log_line
from shared.models import Subscription
from shared.stripe.client import API_VERSION, StripeGateway

log = logging.getLogger("billhook.reconcile")

PROVIDER = "stripe"
PAGE_SIZE = 100
MAX_TYPES_PER_LIST = 20
SYNC_EVENT_TYPE = "customer.subscription.updated"


@dataclass
class ReconcileResult:
    pages: int = 0
    seen: int = 0
    inserted: list[int] = field(default_factory=list)
    enqueue_failed: bool = False

    def logged(self, provider: str, since: datetime) -> ReconcileResult:
        """The run's one log line (counts, never the events), and the result."""
        log_line(
            log,
            "reconcile",
            provider=provider,
            since=since.isoformat(),
            pages=self.pages,
            seen=self.seen,
            inserted=len(self.inserted),
        )
        return self


def reconcile_stripe(
    session_factory: sessionmaker[Session],
    settings: Settings,
    *,
    since: datetime,
    now: datetime,
    enqueue: Callable[[int], None],
    page_size: int = PAGE_SIZE,
    gateway: StripeGateway | None = None,
) -> ReconcileResult:
    if gateway is None:
        with session_factory() as session:
            gateway = StripeGateway.from_store(session, settings)
    result = ReconcileResult()
    types = handled_types(PROVIDER)
    for first in range(0, len(types), MAX_TYPES_PER_LIST):  # Stripe takes at most 20 types[] per list
        _reconcile_types(
            session_factory, gateway, types[first : first + MAX_TYPES_PER_LIST], since, now, enqueue, page_size, result
        )
    return result.logged(PROVIDER, since)


def _reconcile_types(session_factory, gateway, types, since, now, enqueue, page_size, result) -> None:
    starting_after = None
    while True:
        events, has_more = gateway.list_events(
            types=types, created_gte=int(since.timestamp()), starting_after=starting_after, limit=page_size
        )
        result.pages += 1
        result.seen += len(events)
        new = _store_page(session_factory, events, now)
        result.inserted.extend(new)
        metrics.RECONCILED_EVENTS.labels(PROVIDER).inc(len(new))
        if not result.enqueue_failed:
            result.enqueue_failed = len(handoff.hand_over(enqueue, new, what="event")) < len(new)
        if not has_more or not events:
            return
        starting_after = events[-1]["id"]


def _store_page(session_factory: sessionmaker[Session], events: list[dict], now: datetime) -> list[int]:
    """Store one page's events the inbox lacks; the ids of the new ones waiting to run."""
    page = [
        event_ops.Listed(
            event["id"],
            event["type"],
            event,
            datetime.fromtimestamp(event["created"], UTC) if event.get("created") else None,
        )
        for event in events
    ]
    return event_ops.store_listed(session_factory, PROVIDER, page, at=now)


# -- one subscription -------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncResult:
    subscription_id: str
    before: dict | None
    after: dict | None
    event_pk: int
    outcome: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def sync_stripe_subscription(
    session_factory: sessionmaker[Session],
    settings: Settings,
    subscription_id: str,
    *,
    now: datetime,
    gateway: StripeGateway | None = None,
) -> SyncResult:
    """Refetch the subscription from Stripe and apply it now. Raises ProviderError when Stripe
    refuses (e.g. no such subscription) and the handler's error when it cannot be applied (e.g.
    no account known for it); either way nothing is changed."""
    with session_factory() as session:
        gateway = gateway or StripeGateway.from_store(session, settings)
        before = _snapshot(find_subscription(session, PROVIDER, subscription_id))
    # The SDK turns Stripe's decimal strings into Decimal; back to the JSON Stripe sent.
    remote = json.loads(json.dumps(gateway.retrieve_subscription(subscription_id), default=str))
    created = int(now.timestamp())
    event = {
        "id": f"billhook_sync_{subscription_id}_{now.strftime('%Y%m%dT%H%M%S%fZ')}",
        "object": "event",
        "type": SYNC_EVENT_TYPE,
        "created": created,
        "api_version": API_VERSION,  # what the subscription was fetched in: read like any event
        "livemode": bool(remote.get("livemode")),
        "data": {"object": remote},
        "request": {"id": None, "idempotency_key": None},
    }
    with session_factory.begin() as session:
        pk = inbox.record_event(
            session,
            provider=PROVIDER,
            event_id=event["id"],
            type=SYNC_EVENT_TYPE,
            payload=event,
            event_created_at=datetime.fromtimestamp(created, UTC),
            handled=True,
            at=now,
        ).id
    try:
        outcome = processing.process_event(session_factory, pk, clock=lambda: now).outcome
    except Exception as exc:
        processing.record_failure(session_factory, pk, exc, at=now, retry_at=None)
        raise
    with session_factory() as session:
        after = _snapshot(find_subscription(session, PROVIDER, subscription_id))
    result = SyncResult(subscription_id, before, after, pk, outcome)
    log_line(log, "subscription sync", provider=PROVIDER, event=pk, outcome=outcome, changed=result.changed)
    return result


def _snapshot(subscription: Subscription | None) -> dict | None:
    if subscription is None:
        return None
    return {
        "account": subscription.account_id,
        "status": subscription.status,
        "plan": subscription.plan_id,
        "current_period_start": subscription.current_period_start,
        "current_period_end": subscription.current_period_end,
        "cancel_at_period_end": subscription.cancel_at_period_end,
        "canceled_at": subscription.canceled_at,
    }
