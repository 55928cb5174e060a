"""What ops do with the inbox: find events, see what one produced, replay, purge old ones, store
the events a provider lists (reconciliation).

Replay is safe because every effect is keyed in the store (ledger idempotency keys, one payment
per provider payment, the subscription high-water mark, email keys): running an event again can
only find its effects already there.

Retention: `purge` deletes done events (succeeded or ignored) received before a cutoff. Ledger
entries point at the event that made them (`source_event_id`); purge sets that to NULL in the
same transaction rather than keeping the event. The ledger entry itself stays, with its
idempotency key naming the provider object (`stripe:subscription:sub_..:period:..`) and its
payment, so the money trail survives; what retention removes is the raw payload with its
personal data. A provider redelivering a purged event long after (Stripe stops after 3 days,
hence the 7-day floor in the CLI) is stored anew and runs to no effect, for the same keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from shared import inbox
from shared.dispatch import is_handled
from shared.models import CreditLedgerEntry, Payment, Subscription, WebhookEvent
from shared.models.events import DONE_STATUSES, EventStatus

MIN_RETENTION_DAYS = 7
PURGE_BATCH = 500


@dataclass(frozen=True)
class EventFilter:
    provider: str | None = None
    type: str | None = None
    status: str | None = None
    account: str | None = None
    since: datetime | None = None
    before: int | None = None  # a page's cursor: only events older than this one (by id)
    limit: int = 50


def find_events(session: Session, f: EventFilter) -> list[WebhookEvent]:
    """Newest first."""
    stmt = select(WebhookEvent).order_by(WebhookEvent.id.desc()).limit(f.limit)
    if f.before is not None:
        stmt = stmt.where(WebhookEvent.id < f.before)
    for column, value in (("provider", f.provider), ("type", f.type), ("status", f.status), ("account_id", f.account)):
        if value:
            stmt = stmt.where(getattr(WebhookEvent, column) == value)
    if f.since is not None:
        stmt = stmt.where(WebhookEvent.received_at >= f.since)
    return list(session.scalars(stmt))


# -- effects ----------------------------------------------------------------------------------


def event_effects(session: Session, event: WebhookEvent) -> dict:
    """What the event produced or touched: its ledger entries, the payments and the
    subscription its object names. `applied` says the subscription's current state came from
    this very event (its high-water mark)."""
    entries = list(
        session.scalars(select(CreditLedgerEntry).filter_by(source_event_id=event.id).order_by(CreditLedgerEntry.id))
    )
    obj = _object(event)
    refs = {_ref(obj.get("id")), _ref(obj.get("payment_intent"))} - {None}
    payment_ids = {e.payment_id for e in entries if e.payment_id is not None}
    conditions = [Payment.id.in_(payment_ids)] if payment_ids else []
    if refs:
        conditions.append(
            (Payment.provider == event.provider)
            & (Payment.provider_payment_id.in_(refs) | Payment.provider_charge_ref.in_(refs))
        )
    payments = list(session.scalars(select(Payment).where(or_(*conditions)).order_by(Payment.id))) if conditions else []
    subscription_refs = {_subscription_ref(obj)} - {None}
    subscriptions = (
        list(
            session.scalars(
                select(Subscription).where(
                    Subscription.provider == event.provider,
                    Subscription.provider_subscription_id.in_(subscription_refs),
                )
            )
        )
        if subscription_refs
        else []
    )
    return {
        "ledger_entries": [
            {
                "id": e.id,
                "account": e.account_id,
                "amount": e.amount,
                "kind": e.kind,
                "key": e.idempotency_key,
                "at": e.created_at,
            }
            for e in entries
        ],
        "payments": [
            {
                "id": p.id,
                "account": p.account_id,
                "provider_payment_id": p.provider_payment_id,
                "kind": p.kind,
                "status": p.status,
                "amount_cents": p.amount_cents,
                "currency": p.currency,
                "amount_refunded_cents": p.amount_refunded_cents,
            }
            for p in payments
        ],
        "subscription": None
        if not subscriptions
        else {
            "id": subscriptions[0].provider_subscription_id,
            "account": subscriptions[0].account_id,
            "status": subscriptions[0].status,
            "plan": subscriptions[0].plan_id,
            "current_period_end": subscriptions[0].current_period_end,
            "applied": subscriptions[0].last_event_id == event.event_id,
        },
    }


def _object(event: WebhookEvent) -> dict:
    data = (event.payload or {}).get("data") if isinstance(event.payload, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    if obj is None and isinstance(event.payload, dict):
        obj = event.payload.get("resource")  # PayPal's shape
    return obj if isinstance(obj, dict) else {}


def _ref(value) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _subscription_ref(obj: dict) -> str | None:
    if obj.get("object") == "subscription":
        return _ref(obj.get("id"))
    details = (obj.get("parent") or {}).get("subscription_details") or {}
    return _ref(details.get("subscription")) or _ref(obj.get("subscription"))


# -- replay -----------------------------------------------------------------------------------


def replay_candidates(
    session: Session,
    *,
    event_pk: int | None = None,
    failed: bool = False,
    since: datetime | None = None,
    include_done: bool = False,
) -> list[int]:
    """One event; or every failed one; or every event received since a time. Done events only
    with `include_done` (a re-run after a handler fix), and ignored ones only when their type
    now has a handler."""
    if event_pk is not None:
        return [event_pk]
    stmt = select(WebhookEvent.id, WebhookEvent.provider, WebhookEvent.type, WebhookEvent.status).order_by(
        WebhookEvent.id
    )
    if failed:
        stmt = stmt.where(WebhookEvent.status == EventStatus.FAILED)
    if since is not None:
        stmt = stmt.where(WebhookEvent.received_at >= since)
    if not include_done:
        stmt = stmt.where(WebhookEvent.status.not_in(DONE_STATUSES))
    return [
        row.id
        for row in session.execute(stmt)
        if row.status != EventStatus.IGNORED or is_handled(row.provider, row.type)
    ]


def reset_for_replay(session: Session, event_pk: int, *, at: datetime, include_done: bool = False) -> bool:
    """Make the event `received` again so the worker runs it once more. False for a missing
    event or a done one without `include_done`. An event being processed right now holds its row
    lock: this waits for that run and decides on its outcome."""
    event = inbox.lock_event(session, event_pk)
    if event is None:
        return False
    if event.status in DONE_STATUSES and not include_done:
        return False
    event.status = EventStatus.RECEIVED
    event.next_attempt_at = None
    event.updated_at = at
    return True


# -- retention --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurgeResult:
    events: int
    ledger_entries_unlinked: int


def purge_done_events(session: Session, *, before: datetime, dry_run: bool = False) -> PurgeResult:
    """Delete done (succeeded/ignored) events received before `before`, unlinking the ledger
    entries that name them (see the module docstring). Failed and waiting events are kept."""
    events = unlinked = 0
    while True:
        pks = list(
            session.scalars(
                select(WebhookEvent.id)
                .where(WebhookEvent.status.in_(DONE_STATUSES), WebhookEvent.received_at < before)
                .order_by(WebhookEvent.id)
                .limit(PURGE_BATCH)
                .offset(events if dry_run else 0)
            )
        )
        if not pks:
            return PurgeResult(events, unlinked)
        linked = session.scalars(select(CreditLedgerEntry.id).where(CreditLedgerEntry.source_event_id.in_(pks))).all()
        events += len(pks)
        unlinked += len(linked)
        if dry_run:
            continue
        if linked:
            session.execute(
                update(CreditLedgerEntry).where(CreditLedgerEntry.id.in_(linked)).values(source_event_id=None)
            )
        session.execute(delete(WebhookEvent).where(WebhookEvent.id.in_(pks)))


@dataclass(frozen=True)
class Listed:
    """One event of a provider's event list (reconciliation), as the inbox stores it."""

    event_id: str
    type: str
    payload: dict
    created_at: datetime | None


def store_listed(
    session_factory: sessionmaker[Session], provider: str, page: list[Listed], *, at: datetime
) -> list[int]:
    """Store one page of a provider's event list in one transaction: the events the inbox lacks
    (one already there, from intake or an earlier run, is left alone); the ids of the new ones
    waiting to run, for the caller to queue once this has committed."""
    new = []
    with session_factory.begin() as session:
        for event in page:
            stored = inbox.record_event(
                session,
                provider=provider,
                event_id=event.event_id,
                type=event.type,
                payload=event.payload,
                event_created_at=event.created_at,
                handled=is_handled(provider, event.type),
                at=at,
            )
            if stored.new and stored.status == EventStatus.RECEIVED:
                new.append(stored.id)
    return new
