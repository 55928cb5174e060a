"""Outgoing events: a billing state change written for the main app in the change's transaction.

`emit` is called by the domain function that makes the change (subscriptions, ledger, payments,
disputes, notifications' low-credits rule), under a key derived from the change's own
idempotency key, so a replayed or duplicated provider event writes none twice: the event's
INSERT ... ON CONFLICT DO NOTHING on that key decides. The account row is locked (the handlers
hold it already) while its `outgoing_sequence` is taken, so an account's sequence has no gaps: a
rolled-back transaction takes its numbers back with it. A delivery row per subscribed endpoint is
written with the event; its id goes on the `Outcome` for the committer to enqueue.

`emit` only notes the event; the transaction's events are written just before its commit
(`_write_events`, a `before_commit` listener on every Session), after its last change: each
account's sequence and change time (one UPDATE statement for all accounts), their billing states
(`data["billing"]`, one query however many events the transaction tells: an invoice.paid tells
subscription.activated, credits.granted and payment.succeeded, and a worker's batch of provider
events is one transaction), then every event in one multi-row INSERT and their deliveries in
another. Nothing reads the rows before the commit (deliveries are sent after it),
and the delivery ids reach the `Outcome` then: its committer reads them after the commit.

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
from shared.billing.entitlements import entitlements
from shared.db import held_in_transaction, insert_ignore_many, update_loaded, update_loaded_many
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
# A written event renumbered (`_close_gaps`): its sequence, in the row and in its body.
_RENUMBER = (
    update(_EVENTS)
    .where(_EVENTS.c.id == bindparam("event_id"))
    .values(
        sequence=bindparam("new_sequence", type_=_EVENTS.c.sequence.type),
        body=bindparam("full_body", type_=_EVENTS.c.body.type),
    )
)
_ENABLED_ENDPOINTS = select(OutgoingEndpoint.id, OutgoingEndpoint.event_types).where(OutgoingEndpoint.enabled)
# Keys of this transaction's record (`held_in_transaction`): what it emitted, awaiting the commit.
_AWAITING = (OutgoingEvent, "awaiting_commit")
_ENDPOINTS = (OutgoingEndpoint, "enabled")


@dataclass
class _Emitted:
    event_id: str
    type: str
    data: dict
    at: datetime
    outcome: Outcome


@dataclass
class _Awaiting:
    """One account's events this transaction emitted, by key, in the order emitted."""

    account: Account
    last_sequence: int  # the account's, before this transaction's events
    changed_before: datetime | None  # its `billing_changed_at` before them
    events: dict[str, _Emitted] = field(default_factory=dict)


def event_id_for(key: str) -> str:
    return "evt_" + uuid.uuid5(_NAMESPACE, key).hex


def emit(session: Session, outcome: Outcome, *, account_id: str, type: str, key: str, data: dict, at: datetime) -> None:
    """Write one outgoing event (and its deliveries) once per `key`, at the commit: a key this
    transaction emitted already, or one a committed event holds, writes nothing.

    `data` is the change; the account's billing state after the transaction is added as
    `data["billing"]`."""
    if type not in TYPES:
        raise ValueError(f"unknown outgoing event type {type!r}")
    account = lock_account(session, account_id)
    if account is None:
        raise ValueError(f"no account {account_id!r} for an outgoing event")
    awaiting = held_in_transaction(session).setdefault(_AWAITING, {})
    mine = awaiting.get(account_id)
    if mine is None:
        mine = awaiting[account_id] = _Awaiting(account, account.outgoing_sequence or 0, account.billing_changed_at)
    if key not in mine.events:
        mine.events[key] = _Emitted(event_id_for(key), type, data, at, outcome)


@event.listens_for(Session, "before_commit")
def _write_events(session: Session) -> None:
    """Before the commit of a transaction that emitted: each account's sequence and change time,
    its billing state read once after the transaction's last change, then its events and their
    deliveries, a multi-row INSERT each."""
    if session.in_nested_transaction():
        return  # a savepoint's release: the transaction goes on
    awaiting = held_in_transaction(session).pop(_AWAITING, None)
    if not awaiting:
        return
    changed_at = {account_id: max(e.at for e in mine.events.values()) for account_id, mine in awaiting.items()}
    _write_sequences(session, awaiting, changed_at)
    states = entitlements(session, changed_at)  # after the transaction's last change
    rows, emitted = [], {}
    for account_id, mine in awaiting.items():
        billing = states.get(account_id)
        for sequence, (key, e) in enumerate(mine.events.items(), mine.last_sequence + 1):
            rows.append(_row(account_id, key, e, sequence, billing))
            emitted[e.event_id] = e
    # Under the account lock every writer of this account's keys waits for the one before it: the
    # unique key decides which are new (a key a committed event holds is left out).
    inserted = insert_ignore_many(session, OutgoingEvent, rows, ["idempotency_key"], (OutgoingEvent.id,))
    written = {event_id for (event_id,) in inserted}
    if len(written) < len(rows):
        rows = _close_gaps(session, awaiting, rows, written)
    _write_deliveries(session, rows, emitted)


def _row(account_id: str, key: str, e: _Emitted, sequence: int, billing: dict | None) -> dict:
    body = {
        "id": e.event_id,
        "type": e.type,
        "version": VERSION,
        "created": e.at.isoformat(),
        "account_id": account_id,
        "sequence": sequence,
        "data": {**e.data, "billing": billing},
    }
    return {
        "id": e.event_id,
        "idempotency_key": key,
        "account_id": account_id,
        "type": e.type,
        "sequence": sequence,
        "body": body,
        "created_at": e.at,
    }


def _close_gaps(session: Session, awaiting: dict[str, _Awaiting], rows: list[dict], written: set[str]) -> list[dict]:
    """Some keys were taken by committed events (a change told before, under another provider
    event): the written events of each account take consecutive numbers after its last one, and
    the account keeps its last number and change time when none of its events was new. Returns the
    written rows. Rare: it costs what the gaps need."""
    kept, renumbered = [], []
    for account_id, mine in awaiting.items():
        sequence = mine.last_sequence
        for row in rows:
            if row["account_id"] != account_id or row["id"] not in written:
                continue
            sequence += 1
            if row["sequence"] != sequence:
                row["sequence"] = sequence
                row["body"] = {**row["body"], "sequence": sequence}
                renumbered.append({"event_id": row["id"], "new_sequence": sequence, "full_body": row["body"]})
            kept.append(row)
        if sequence != mine.account.outgoing_sequence:
            values = {"outgoing_sequence": sequence}
            if sequence == mine.last_sequence:  # none of its events was new
                values["billing_changed_at"] = mine.changed_before
            update_loaded(session, mine.account, **values)
    if renumbered:
        session.connection().execute(_RENUMBER, renumbered)
    return kept


def _write_sequences(session: Session, awaiting: dict[str, _Awaiting], changed_at: dict[str, datetime]) -> None:
    """Each account's last sequence number and change time, on its locked row: one statement for
    all of them (`update_loaded_many`)."""
    updated_at = utcnow()
    update_loaded_many(
        session,
        [
            (
                mine.account,
                {
                    "outgoing_sequence": mine.last_sequence + len(mine.events),
                    "billing_changed_at": changed_at[account_id],
                    "updated_at": updated_at,
                },
            )
            for account_id, mine in awaiting.items()
        ],
    )


def _write_deliveries(session: Session, rows: list[dict], emitted: dict[str, _Emitted]) -> None:
    """A delivery per subscribed endpoint for each written event, one multi-row INSERT; each id
    reported on the outcome of the call that emitted the event."""
    deliveries = [
        {
            "event_id": row["id"],
            "endpoint_id": endpoint_id,
            "status": DeliveryStatus.PENDING,
            "attempts": 0,
            "created_at": row["created_at"],
            "updated_at": row["created_at"],
        }
        for row in rows
        for endpoint_id, event_types in _enabled_endpoints(session)
        if not event_types or row["type"] in event_types
    ]
    returning = (OutgoingDelivery.id, OutgoingDelivery.event_id)
    by_event: dict[str, list[int]] = {}
    for delivery_id, event_id in insert_ignore_many(
        session, OutgoingDelivery, deliveries, ["endpoint_id", "event_id"], returning
    ):
        by_event.setdefault(event_id, []).append(delivery_id)
    for row in rows:
        if ids := by_event.get(row["id"]):
            emitted[row["id"]].outcome.queued_deliveries(sorted(ids))


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
