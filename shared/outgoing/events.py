"""Outgoing events: a billing state change written for the main app in the change's transaction.

`emit` is called by the domain function that makes the change (subscriptions, ledger, payments,
notifications' low-credits rule), under a key derived from the change's own idempotency key, so a
replayed or duplicated provider event writes none twice. The account row is locked (the handlers
hold it already) while its `outgoing_sequence` is taken, so an account's sequence has no gaps: a
rolled-back transaction takes its number back with it. A delivery row per subscribed endpoint is
written with the event; its id goes on the `Outcome` for the committer to enqueue.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from shared.billing.accounts import lock_account
from shared.billing.entitlements import entitlement
from shared.db import insert_ignore
from shared.models import OutgoingDelivery, OutgoingEndpoint, OutgoingEvent
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

_KEY_TAKEN = select(OutgoingEvent.id).where(OutgoingEvent.idempotency_key == bindparam("key"))
_ENABLED_ENDPOINTS = select(OutgoingEndpoint.id, OutgoingEndpoint.event_types).where(OutgoingEndpoint.enabled)


def event_id_for(key: str) -> str:
    return "evt_" + uuid.uuid5(_NAMESPACE, key).hex


def emit(session: Session, outcome: Outcome, *, account_id: str, type: str, key: str, data: dict, at: datetime) -> bool:
    """Write one outgoing event (and its deliveries) once per `key`; False when the key was taken.

    `data` is the change; the account's billing state after it is added as `data["billing"]`."""
    if type not in TYPES:
        raise ValueError(f"unknown outgoing event type {type!r}")
    account = lock_account(session, account_id)
    if account is None:
        raise ValueError(f"no account {account_id!r} for an outgoing event")
    # Under the account lock every writer of this account's keys waits for the one before it, so
    # this read sees a committed duplicate; the unique key still decides if it ever did not.
    if session.scalar(_KEY_TAKEN, {"key": key}) is not None:
        return False
    account.outgoing_sequence = (account.outgoing_sequence or 0) + 1
    account.billing_changed_at = at
    event_id = event_id_for(key)
    body = {
        "id": event_id,
        "type": type,
        "version": VERSION,
        "created": at.isoformat(),
        "account_id": account_id,
        "sequence": account.outgoing_sequence,
        "data": {**data, "billing": entitlement(session, account_id, now=at)},
    }
    session.add(
        OutgoingEvent(
            id=event_id,
            idempotency_key=key,
            account_id=account_id,
            type=type,
            sequence=account.outgoing_sequence,
            body=body,
            created_at=at,
        )
    )
    session.flush()
    outcome.queued_deliveries(_queue_deliveries(session, event_id, type, at))
    return True


def _queue_deliveries(session: Session, event_id: str, type: str, at: datetime) -> list[int]:
    ids = []
    for endpoint_id, event_types in session.execute(_ENABLED_ENDPOINTS):
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
