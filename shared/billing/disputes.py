"""Disputes (chargebacks), whichever provider reports them: the disputed share of a payment's
credits taken back once while the dispute is open or lost, given back once when it is won.

The dispute row's state follows its newest event (the high-water mark `last_event_at`), and a
decided dispute (won or lost) never goes back to open, so any order of delivery ends in the
same state. The ledger then follows the state, each move under a key of its own:
`dispute:<provider>:<id>:reversal` and `...:restore`. Taking back happens even when the balance
goes below zero: the credits are owed. The main app is told `dispute.created` once per dispute
and `dispute.won` / `dispute.lost` once per decision, after the ledger moves they caused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from shared.billing import invoices, ledger, notifications, payments
from shared.db import for_update, lock_or_insert
from shared.models import Account, Dispute, Payment
from shared.outcome import Outcome
from shared.outgoing import events as outgoing

OPEN = "open"
WON = "won"
LOST = "lost"
DECIDED = (WON, LOST)
STATES = (OPEN, WON, LOST)


@dataclass(frozen=True)
class DisputeReport:
    """What one provider event says about a dispute, in billhook's words."""

    provider: str
    provider_dispute_id: str
    state: str  # open | won | lost
    amount_cents: int
    currency: str
    provider_status: str | None = None
    reason: str | None = None
    opened_at: datetime | None = None


_LOCK = for_update(
    select(Dispute).where(
        Dispute.provider == bindparam("provider"), Dispute.provider_dispute_id == bindparam("provider_dispute_id")
    )
)


def apply_dispute(
    session: Session,
    outcome: Outcome,
    account: Account,
    payment: Payment,
    report: DisputeReport,
    *,
    event_at: datetime,
    at: datetime,
    source_event_id: int | None = None,
) -> Dispute:
    """Record what the event says and bring the ledger in line with the dispute's state. The
    caller holds the account lock, then the payment lock (see `accounts.ensure_account`)."""
    if report.state not in STATES:
        raise ValueError(f"unknown dispute state {report.state!r}")
    dispute = lock_or_insert(
        session,
        (Dispute, report.provider, report.provider_dispute_id),
        _LOCK,
        {"provider": report.provider, "provider_dispute_id": report.provider_dispute_id},
        Dispute,
        {
            "provider": report.provider,
            "provider_dispute_id": report.provider_dispute_id,
            "account_id": payment.account_id,
            "payment_id": payment.id,
            "amount_cents": report.amount_cents,
            "currency": report.currency.lower(),
            "state": report.state,
            "provider_status": report.provider_status,
            "reason": report.reason,
            "opened_at": report.opened_at or event_at,
            "closed_at": event_at if report.state in DECIDED else None,
            "last_event_at": event_at,
            "credits_reversed": 0,
            "credits_restored": 0,
            "created_at": at,
            "updated_at": at,
        },
        ["provider", "provider_dispute_id"],
    )
    _apply_report(dispute, report, event_at)
    _follow_state(session, outcome, account, payment, dispute, at=at, source_event_id=source_event_id)
    tell_main_app(session, outcome, payment, dispute, at=at)
    return dispute


def tell_main_app(session: Session, outcome: Outcome, payment: Payment, dispute: Dispute, *, at: datetime) -> None:
    """`dispute.created` once per dispute, then `dispute.won` or `dispute.lost` once per decision.
    Whichever event arrives first, the creation is told first; its data is the dispute as it
    stands now (a closure delivered before the creation tells both, each with the decided state)."""
    key = f"{dispute.provider}:{dispute.provider_dispute_id}"
    data = {"dispute": dispute_data(dispute, payment)}
    outgoing.emit(
        session,
        outcome,
        account_id=dispute.account_id,
        type="dispute.created",
        key=f"dispute.created:{key}",
        data=data,
        at=at,
    )
    if dispute.state in DECIDED:
        type_ = f"dispute.{dispute.state}"
        outgoing.emit(
            session, outcome, account_id=dispute.account_id, type=type_, key=f"{type_}:{key}", data=data, at=at
        )


def dispute_data(dispute: Dispute, payment: Payment) -> dict:
    return {
        "provider": dispute.provider,
        "id": dispute.provider_dispute_id,
        "state": dispute.state,
        "provider_status": dispute.provider_status,
        "reason": dispute.reason,
        "amount_cents": dispute.amount_cents,
        "currency": dispute.currency,
        "payment_id": payment.provider_payment_id,
        "credits_reversed": dispute.credits_reversed,
        "credits_restored": dispute.credits_restored,
    }


def _apply_report(dispute: Dispute, report: DisputeReport, event_at: datetime) -> None:
    """The newest event wins, except that a decision is final: a late `open` changes nothing."""
    if dispute.state in DECIDED and report.state not in DECIDED:
        return
    if dispute.last_event_at is not None and event_at < dispute.last_event_at and report.state not in DECIDED:
        return
    if dispute.state in DECIDED and report.state in DECIDED and event_at < (dispute.last_event_at or event_at):
        return
    dispute.state = report.state
    dispute.provider_status = report.provider_status or dispute.provider_status
    dispute.reason = report.reason or dispute.reason
    dispute.amount_cents = report.amount_cents or dispute.amount_cents
    dispute.last_event_at = max(event_at, dispute.last_event_at or event_at)
    if report.state in DECIDED and dispute.closed_at is None:
        dispute.closed_at = event_at


def _follow_state(
    session: Session,
    outcome: Outcome,
    account: Account,
    payment: Payment,
    dispute: Dispute,
    *,
    at: datetime,
    source_event_id: int | None,
) -> None:
    key = f"dispute:{dispute.provider}:{dispute.provider_dispute_id}"
    reversal = ledger.entry_by_key(session, f"{key}:reversal")
    if dispute.state in (OPEN, LOST) and reversal is None:
        owed = disputed_credits(session, payment, dispute.amount_cents)
        if owed > 0:
            before = ledger.balance(session, account.id)
            ledger.add_entry(
                session,
                outcome,
                account_id=account.id,
                amount=-owed,
                kind=ledger.DISPUTE_REVERSAL,
                description=f"Dispute {dispute.provider_dispute_id} of payment {payment.provider_payment_id}",
                idempotency_key=f"{key}:reversal",
                at=at,
                payment_id=payment.id,
                source_event_id=source_event_id,
            )
            dispute.credits_reversed = owed
            notifications.low_credits_if_crossed(
                session,
                outcome,
                account,
                before=before,
                after=before - owed,
                cause_key=f"{key}:reversal",
                at=at,
            )
    if dispute.state == LOST:
        invoice = payments.invoice_for_payment(session, payment.id)
        if invoice is not None:
            invoices.issue_credit_note(
                session,
                invoice,
                reason=invoices.DISPUTE_LOST,
                amount_cents=dispute.amount_cents,
                idempotency_key=f"credit_note:{key}:lost",
                at=at,
            )
    if dispute.state == WON and reversal is not None:
        restored = ledger.add_entry(
            session,
            outcome,
            account_id=account.id,
            amount=-reversal.amount,
            kind=ledger.DISPUTE_RESTORE,
            description=f"Dispute {dispute.provider_dispute_id} won",
            idempotency_key=f"{key}:restore",
            at=at,
            payment_id=payment.id,
            source_event_id=source_event_id,
        )
        if restored:
            dispute.credits_restored = -reversal.amount


def disputed_credits(session: Session, payment: Payment, disputed_cents: int) -> int:
    """The disputed amount's share of the payment's credits, less what refunds (or other
    disputes) already took back."""
    if payment.credits_granted <= 0:
        return 0
    if payment.amount_cents <= 0 or disputed_cents >= payment.amount_cents:
        share = payment.credits_granted
    else:
        share = payment.credits_granted * max(disputed_cents, 0) // payment.amount_cents
    left = payment.credits_granted - ledger.reversed_for_payment(session, payment.id)
    return max(min(share, left), 0)


def disputes_of_account(session: Session, account_id: str, limit: int = 20) -> list[Dispute]:
    stmt = (
        select(Dispute)
        .filter_by(account_id=account_id)
        .order_by(Dispute.created_at.desc(), Dispute.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))
