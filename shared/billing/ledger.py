"""The append-only credit ledger. Every entry carries an idempotency key under a unique
constraint: inserting the same key twice is a no-op decided by the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.billing.accounts import lock_account
from shared.db import insert_ignore
from shared.errors import PermanentError
from shared.models import CreditLedgerEntry
from shared.outcome import Outcome
from shared.outgoing import events as outgoing


class LedgerKind(StrEnum):
    """What a ledger entry is (the `kind` column)."""

    GRANT_SUBSCRIPTION = "subscription_grant"
    GRANT_PURCHASE = "purchase_grant"
    GRANT_UPGRADE = "upgrade_grant"  # a mid-period upgrade's credits (shared/billing/upgrades.py)
    REFUND_REVERSAL = "refund_reversal"
    DEBIT = "debit"
    ADJUSTMENT = "adjustment"
    DISPUTE_REVERSAL = "dispute_reversal"
    DISPUTE_RESTORE = "dispute_restore"
    # A duplicate subscription's grant taken back (shared/billing/duplicates.py).
    DUPLICATE_REVERSAL = "duplicate_reversal"


GRANT_SUBSCRIPTION = LedgerKind.GRANT_SUBSCRIPTION
GRANT_PURCHASE = LedgerKind.GRANT_PURCHASE
GRANT_UPGRADE = LedgerKind.GRANT_UPGRADE
REFUND_REVERSAL = LedgerKind.REFUND_REVERSAL
DEBIT = LedgerKind.DEBIT
ADJUSTMENT = LedgerKind.ADJUSTMENT
DISPUTE_REVERSAL = LedgerKind.DISPUTE_REVERSAL
DISPUTE_RESTORE = LedgerKind.DISPUTE_RESTORE
DUPLICATE_REVERSAL = LedgerKind.DUPLICATE_REVERSAL
# What takes back (or gives back) a payment's credits: a refund, a dispute and a duplicate's
# reversal draw on the same credits.
_TAKEN_BACK_KINDS = (REFUND_REVERSAL, DISPUTE_REVERSAL, DISPUTE_RESTORE, DUPLICATE_REVERSAL)
MAX_ADJUSTMENT = 1_000_000_000

# How many of an account's newest entries its summary shows (the API, the CLI, ops).
RECENT_ENTRIES = 20


def add_entry(
    session: Session,
    outcome: Outcome,
    *,
    account_id: str,
    amount: int,
    kind: str,
    description: str,
    idempotency_key: str,
    at: datetime,
    payment_id: int | None = None,
    source_event_id: int | None = None,
    actor: str | None = None,
) -> bool:
    """Append one entry, and its outgoing event; False when an entry with this key already exists."""
    if amount == 0:
        raise ValueError("a ledger entry moves credits")
    added = insert_ignore(
        session,
        CreditLedgerEntry,
        {
            "account_id": account_id,
            "amount": amount,
            "kind": kind,
            "description": description[:300],
            "idempotency_key": idempotency_key,
            "payment_id": payment_id,
            "source_event_id": source_event_id,
            "actor": actor,
            "created_at": at,
        },
        ["idempotency_key"],
    )
    if added:
        type_ = (
            "credits.granted"
            if amount > 0
            else "credits.reversed"
            if kind in (REFUND_REVERSAL, DISPUTE_REVERSAL, DUPLICATE_REVERSAL)
            else "credits.debited"
        )
        outgoing.emit(
            session,
            outcome,
            account_id=account_id,
            type=type_,
            key=f"{type_}:{idempotency_key}",
            data={"credits": {"amount": amount, "kind": kind, "reference": idempotency_key}},
            at=at,
        )
    return added


def grant_credits(
    session: Session,
    outcome: Outcome,
    *,
    account_id: str,
    credits: int,
    kind: str,
    description: str,
    idempotency_key: str,
    at: datetime,
    payment_id: int | None = None,
    source_event_id: int | None = None,
    actor: str | None = None,
) -> bool:
    if credits <= 0:
        raise ValueError("a grant adds credits")
    return add_entry(
        session,
        outcome,
        account_id=account_id,
        amount=credits,
        kind=kind,
        description=description,
        idempotency_key=idempotency_key,
        at=at,
        payment_id=payment_id,
        source_event_id=source_event_id,
        actor=actor,
    )


def duplicate_reversal_key(grant_key: str) -> str:
    """The key of the reversal of a duplicate subscription's grant: one per grant."""
    return f"{grant_key}:duplicate"


def entry_by_key(session: Session, idempotency_key: str) -> CreditLedgerEntry | None:
    return session.scalars(select(CreditLedgerEntry).filter_by(idempotency_key=idempotency_key)).one_or_none()


def balance(session: Session, account_id: str) -> int:
    total = session.scalar(select(func.sum(CreditLedgerEntry.amount)).filter_by(account_id=account_id))
    return int(total or 0)


def recent_entries(session: Session, account_id: str, limit: int = RECENT_ENTRIES) -> list[CreditLedgerEntry]:
    stmt = (
        select(CreditLedgerEntry)
        .filter_by(account_id=account_id)
        .order_by(CreditLedgerEntry.created_at.desc(), CreditLedgerEntry.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def reversed_for_payment(session: Session, payment_id: int) -> int:
    """Credits taken back for a payment and not given back (a positive number): by its refunds and
    its open or lost disputes, so a refund after a dispute (or the reverse) never takes twice."""
    total = session.scalar(
        select(func.sum(CreditLedgerEntry.amount)).where(
            CreditLedgerEntry.payment_id == payment_id, CreditLedgerEntry.kind.in_(_TAKEN_BACK_KINDS)
        )
    )
    return -int(total or 0)


class InsufficientCredits(PermanentError):
    def __init__(self, balance: int, amount: int):
        super().__init__(f"the balance ({balance}) does not cover {amount} credits")
        self.balance = balance
        self.amount = amount


class KeyReused(PermanentError):
    """An idempotency key already used for a different entry."""


class UnknownAccount(PermanentError):
    pass


@dataclass(frozen=True)
class Debit:
    entry_id: int
    amount: int
    balance_before: int
    balance_after: int
    replayed: bool


def debit_credits(
    session: Session,
    outcome: Outcome,
    *,
    account_id: str,
    amount: int,
    description: str,
    idempotency_key: str,
    at: datetime,
) -> Debit:
    """Take credits once per key, never below zero. The account row is locked first, so two
    concurrent debits see each other's entries and cannot both spend the last credits; a replay
    of a key returns the first debit."""
    if amount <= 0:
        raise ValueError("a debit takes a positive number of credits")
    if lock_account(session, account_id) is None:
        raise UnknownAccount(f"no account {account_id!r}")
    existing = entry_by_key(session, idempotency_key)
    if existing is not None:
        if existing.account_id != account_id or existing.amount != -amount or existing.kind != DEBIT:
            raise KeyReused(f"idempotency key {idempotency_key!r} was used for a different entry")
        after = balance(session, account_id)
        return Debit(existing.id, amount, after + amount, after, replayed=True)
    before = balance(session, account_id)
    if before < amount:
        raise InsufficientCredits(before, amount)
    add_entry(
        session,
        outcome,
        account_id=account_id,
        amount=-amount,
        kind=DEBIT,
        description=description,
        idempotency_key=idempotency_key,
        at=at,
    )
    entry = entry_by_key(session, idempotency_key)
    return Debit(entry.id, amount, before, before - amount, replayed=False)


@dataclass(frozen=True)
class Adjustment:
    entry_id: int
    amount: int
    balance_before: int
    balance_after: int
    replayed: bool


def adjust_credits(
    session: Session,
    outcome: Outcome,
    *,
    account_id: str,
    amount: int,
    reason: str,
    actor: str,
    idempotency_key: str,
    at: datetime,
) -> Adjustment:
    """An operator's signed correction, once per key, recording who and why. It may take the
    balance below zero: it corrects what is owed, it does not spend. A replay of a key returns the
    first adjustment; the key used for another entry raises KeyReused."""
    if amount == 0 or abs(amount) > MAX_ADJUSTMENT:
        raise ValueError(f"an adjustment moves 1 to {MAX_ADJUSTMENT} credits, either way")
    if lock_account(session, account_id) is None:
        raise UnknownAccount(f"no account {account_id!r}")
    existing = entry_by_key(session, idempotency_key)
    if existing is not None:
        if existing.account_id != account_id or existing.amount != amount or existing.kind != ADJUSTMENT:
            raise KeyReused(f"idempotency key {idempotency_key!r} was used for a different entry")
        after = balance(session, account_id)
        return Adjustment(existing.id, amount, after - amount, after, replayed=True)
    before = balance(session, account_id)
    add_entry(
        session,
        outcome,
        account_id=account_id,
        amount=amount,
        kind=ADJUSTMENT,
        description=reason,
        idempotency_key=idempotency_key,
        at=at,
        actor=actor[:100],
    )
    entry = entry_by_key(session, idempotency_key)
    return Adjustment(entry.id, amount, before, before + amount, replayed=False)
