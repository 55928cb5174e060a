"""Outgoing events: a billing state change written for the main app in the change's transaction.

`emit` is called by the domain function that makes the change (subscriptions, ledger, payments,
disputes, notifications' low-credits rule), under a key derived from the change's own
idempotency key, so a replayed or duplicated provider event writes none twice: the event's
INSERT ... ON CONFLICT DO NOTHING on that key decides. The account row is locked (the handlers
hold it already) while its `outgoing_sequence` is taken, so an account's sequence has no gaps: a
rolled-back transaction takes its numbers back with it. A delivery row per subscribed endpoint is
written with the event; its id goes on the `Outcome` for the committer to enqueue.

The account's billing state after the change (`data["billing"]`) is filled in once per account
and transaction, just before the commit (`_fill_snapshots`, a `before_commit` listener on every
Session): after the transaction's last change, so it is the state the commit makes, and one
query however many events one provider event tells (an invoice.paid: subscription.activated,
credits.granted, payment.succeeded). The account's `outgoing_sequence` and `billing_changed_at`
are written then too, one UPDATE instead of one an event. Until the commit the rows hold the
body without `billing`; nothing reads them before (deliveries are sent after the commit).

The enabled endpoints are read once a transaction, or once a batch of transactions inside
`endpoints_read_once` (the worker's batch messages): an endpoint added or disabled meanwhile
applies from the next batch, a fraction of a second later.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, event, select, update
from sqlalchemy.orm import Session

from shared.billing.accounts import lock_account
from shared.billing.entitlements import entitlement
from shared.db import held_in_transaction, insert_ignore, update_loaded
from shared.models import Account, OutgoingDelivery, OutgoingEndpoint, OutgoingEvent
from shared.models.base import utcnow
from shared.models.outgoing import DeliveryStatus
from shared.outcome import Outcome

VERSION = 1
TYPES = (
    "subscription.activated",
    "subscription.updated",
    "subscription.canceled",
    "subscription.past_due",
    "subscription.lapsed",
    "payment.succeeded",
    "payment.failed",
    "payment.refunded",
    "credits.granted",
    "credits.debited",
    "credits.reversed",
    "credits.low",
    "manual_payment.approved",
    "manual_payment.rejected",
    "dispute.created",
    "dispute.won",
    "dispute.lost",
)
# Stable ids: the same key always names the same event id (a uuid5 of it).
_NAMESPACE = uuid.UUID("6f1d2c4e-9a51-4c8e-8d0b-0b1e2f0c7a11")

_EVENTS = OutgoingEvent.__table__
_SET_BODY = (
    update(_EVENTS)
    .where(_EVENTS.c.id == bindparam("event_id"))
    .values(body=bindparam("full_body", type_=_EVENTS.c.body.type))
)
_ENABLED_ENDPOINTS = select(OutgoingEndpoint.id, OutgoingEndpoint.event_types).where(OutgoingEndpoint.enabled)
# Keys of this transaction's record (`held_in_transaction`): what it wrote, awaiting the commit.
_AWAITING = (OutgoingEvent, "awaiting_snapshot")
_ENDPOINTS = (OutgoingEndpoint, "enabled")


@dataclass
class _Awaiting:
    """One account's events this transaction wrote: the snapshot and the sequence still to write."""

    account: Account
    sequence: int
    at: datetime
    bodies: dict[str, dict] = field(default_factory=dict)


def event_id_for(key: str) -> str:
    return "evt_" + uuid.uuid5(_NAMESPACE, key).hex


def emit(session: Session, outcome: Outcome, *, account_id: str, type: str, key: str, data: dict, at: datetime) -> bool:
    """Write one outgoing event (and its deliveries) once per `key`; False when the key was taken.

    `data` is the change; the account's billing state after the transaction is added as
    `data["billing"]` before the commit."""
    if type not in TYPES:
        raise ValueError(f"unknown outgoing event type {type!r}")
    account = lock_account(session, account_id)
    if account is None:
        raise ValueError(f"no account {account_id!r} for an outgoing event")
    awaiting = held_in_transaction(session).setdefault(_AWAITING, {})
    mine = awaiting.get(account_id)
    sequence = (mine.sequence if mine else account.outgoing_sequence or 0) + 1
    event_id = event_id_for(key)
    body = {
        "id": event_id,
        "type": type,
        "version": VERSION,
        "created": at.isoformat(),
        "account_id": account_id,
        "sequence": sequence,
        "data": data,
    }
    row = {
        "id": event_id,
        "idempotency_key": key,
        "account_id": account_id,
        "type": type,
        "sequence": sequence,
        "body": body,
        "created_at": at,
    }
    # Under the account lock every writer of this account's keys waits for the one before it;
    # the unique key decides, a committed duplicate and one of this transaction's alike.
    if insert_ignore(session, OutgoingEvent, row, ["idempotency_key"], returning=OutgoingEvent.id) is None:
        return False
    if mine is None:
        mine = awaiting[account_id] = _Awaiting(account, sequence, at)
    mine.sequence, mine.at = sequence, max(mine.at, at)
    mine.bodies[event_id] = body
    outcome.queued_deliveries(_queue_deliveries(session, event_id, type, at))
    return True


@event.listens_for(Session, "before_commit")
def _fill_snapshots(session: Session) -> None:
    """Before the commit of a transaction that emitted: each account's sequence and change time,
    then its snapshot, read once after the transaction's last change, into each of its events."""
    if session.in_nested_transaction():
        return  # a savepoint's release: the transaction goes on
    awaiting = held_in_transaction(session).pop(_AWAITING, None)
    if not awaiting:
        return
    rows = []
    for account_id, mine in awaiting.items():
        _write_sequence(session, mine)
        billing = entitlement(session, account_id, now=mine.at)  # after the transaction's last change
        for event_id, body in mine.bodies.items():
            rows.append({"event_id": event_id, "full_body": {**body, "data": {**body["data"], "billing": billing}}})
    # One executemany by primary key, Core on the transaction's connection: the events were
    # written by Core INSERTs, no ORM object holds them (the ORM's bulk UPDATE cost twice as much).
    session.connection().execute(_SET_BODY, rows)


def _write_sequence(session: Session, mine: _Awaiting) -> None:
    """The account's last sequence number and change time, on its locked row (`update_loaded`)."""
    update_loaded(
        session, mine.account, outgoing_sequence=mine.sequence, billing_changed_at=mine.at, updated_at=utcnow()
    )


def _queue_deliveries(session: Session, event_id: str, type: str, at: datetime) -> list[int]:
    ids = []
    for endpoint_id, event_types in _enabled_endpoints(session):
        if event_types and type not in event_types:
            continue
        delivery_id = insert_ignore(
            session,
            OutgoingDelivery,
            {
                "event_id": event_id,
                "endpoint_id": endpoint_id,
                "status": DeliveryStatus.PENDING,
                "attempts": 0,
                "created_at": at,
                "updated_at": at,
            },
            ["endpoint_id", "event_id"],
            returning=OutgoingDelivery.id,
        )
        if delivery_id is not None:
            ids.append(delivery_id)
    return ids


# Inside `endpoints_read_once`: a holder, empty until the batch's first read.
_READ_FOR_BATCH: ContextVar[list | None] = ContextVar("billhook_endpoints_for_batch", default=None)


@contextmanager
def endpoints_read_once() -> Iterator[None]:
    """Within: the transactions that emit (one after the other, a batch of events) read the
    enabled endpoints once, in the first of them, and the others use what it read."""
    token = _READ_FOR_BATCH.set([])
    try:
        yield
    finally:
        _READ_FOR_BATCH.reset(token)


def _enabled_endpoints(session: Session) -> list:
    """The enabled endpoints, read once a transaction (every event of one transaction goes to the
    same endpoints), or once a batch inside `endpoints_read_once`."""
    held = held_in_transaction(session)
    if _ENDPOINTS not in held:
        batch = _READ_FOR_BATCH.get()
        if batch:
            held[_ENDPOINTS] = batch[0]
        else:
            held[_ENDPOINTS] = session.execute(_ENABLED_ENDPOINTS).all()
            if batch is not None:
                batch.append(held[_ENDPOINTS])
    return held[_ENDPOINTS]
