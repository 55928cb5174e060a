"""Manual payments (bank transfer, cheque, invoice): requested by the customer or the main app,
decided by an operator.

A request is a `pending` payment (provider `manual`) with a numbered, open invoice carrying the
payment instructions from the `manual` integration provider's config. An operator approves or
rejects it once: the decision is a conditional UPDATE (`... WHERE status = 'pending'`) taken
under the account lock, so of two concurrent decisions exactly one wins. Approval grants the
package's credits, or activates the plan for one period on the account's manual subscription
(provider `manual`, id `manual:<account>`) and grants the plan's credits, each under a key of
the payment's; a period that ends without a new approved payment lapses to `canceled`.

Config (`billhook providers set manual --config '{...}'`): `instructions` (text for every
method) and `instructions_by_method` ({"bank_transfer": "...", ...}, wins for its method). No
active `manual` provider: manual payments are off.
"""

from __future__ import annotations

import calendar
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.billing import invoices, lapses, ledger, notifications, payments, subscriptions
from shared.billing.accounts import ensure_account, lock_account
from shared.billing.checkout import CheckoutRefused, NotFound, NotPurchasable, SubscriptionConflict
from shared.credentials import active_provider
from shared.db import insert_ignore_row
from shared.errors import NotConfigured
from shared.models import CreditPackage, Invoice, ManualPayment, Payment, Plan, Subscription
from shared.outcome import Outcome

PROVIDER = "manual"
METHODS = ("bank_transfer", "cheque", "invoice", "other")
REJECTED = "rejected"
OPEN_INVOICE = "open"
PAID_INVOICE = "paid"
VOID_INVOICE = "void"
MAX_REFERENCE = 200
MAX_REASON = 1000


class ManualPaymentsOff(NotConfigured):
    """No active `manual` provider: nobody would read the payment instructions or decide."""


class RequestKeyReused(CheckoutRefused):
    code = "idempotency_key_reused"


class AlreadyDecided(CheckoutRefused):
    code = "already_decided"


@dataclass(frozen=True)
class Requested:
    payment: Payment
    manual: ManualPayment
    invoice: Invoice
    created: bool


@dataclass(frozen=True)
class Decision:
    payment: Payment
    manual: ManualPayment
    decided_now: bool  # False: it was decided before (by this or the other decision)


def instructions(session: Session, method: str) -> str:
    provider = active_provider(session, PROVIDER)
    if provider is None:
        raise ManualPaymentsOff("manual payments are off: configure the `manual` provider")
    config = provider.config or {}
    by_method = config.get("instructions_by_method") or {}
    text = by_method.get(method) if isinstance(by_method, dict) else None
    return str(text or config.get("instructions") or "Contact us for payment instructions.")


def public_id(request_key: str) -> str:
    """The payment's billhook id, derived from the request's key: a retried request names the same
    payment, and the payments table's unique key decides between two concurrent first tries."""
    return "mp_" + hashlib.sha256(request_key.encode()).hexdigest()[:24]


def request_manual_payment(
    session: Session,
    outcome: Outcome,
    *,
    account_id: str,
    plan_id: str | None,
    package_id: str | None,
    method: str,
    reference: str | None,
    request_key: str,
    requested_by: str,
    at: datetime,
) -> Requested:
    """The pending payment and its open invoice, created once per `request_key`."""
    if (plan_id is None) == (package_id is None):
        raise NotPurchasable("give plan_id or package_id, not both")
    if method not in METHODS:
        raise NotPurchasable(f"method must be one of {', '.join(METHODS)}")
    ensure_account(session, account_id)  # the account lock first, as everywhere
    outcome.touched(account_id)
    existing = session.scalars(select(ManualPayment).filter_by(request_key=request_key)).one_or_none()
    if existing is not None:
        payment = session.get(Payment, existing.payment_id)
        if (payment.plan_id, payment.package_id, existing.method) != (plan_id, package_id, method):
            raise RequestKeyReused("this idempotency key was used for a different manual payment")
        return Requested(payment, existing, payments.invoice_for_payment(session, payment.id), created=False)
    item = _item(session, account_id, plan_id, package_id)
    text = instructions(session, method)
    pid = public_id(request_key)
    payment = insert_ignore_row(
        session,
        Payment,
        {
            "account_id": account_id,
            "provider": PROVIDER,
            "provider_payment_id": pid,
            "kind": "subscription" if isinstance(item, Plan) else "credit_package",
            "status": payments.PENDING,
            "amount_cents": item.price_cents,
            "currency": item.currency.lower(),
            "plan_id": plan_id,
            "package_id": package_id,
            "credits_granted": _credits(item),
            "amount_refunded_cents": 0,
            "created_at": at,
            "updated_at": at,
        },
        ["provider", "provider_payment_id"],
    )
    if payment is None:
        raise RequestKeyReused("this idempotency key is already being used for a manual payment")
    manual = ManualPayment(
        payment_id=payment.id,
        account_id=account_id,
        request_key=request_key,
        method=method,
        reference=(reference or None) and reference[:MAX_REFERENCE],
        requested_by=requested_by[:100],
        created_at=at,
    )
    session.add(manual)
    invoice = payments.issue_invoice(
        session,
        payment,
        payments.PaymentRecord(
            account_id=account_id,
            provider=PROVIDER,
            provider_payment_id=pid,
            kind=payment.kind,
            amount_cents=payment.amount_cents,
            currency=payment.currency,
            provider_invoice_id=pid,
            line_items=[{"description": describe(item), "amount_cents": item.price_cents, "quantity": 1}],
        ),
        at=at,
    )
    invoice.status = OPEN_INVOICE
    invoice.notes = text
    session.flush()
    return Requested(payment, manual, invoice, created=True)


def decide(
    session: Session,
    outcome: Outcome,
    payment_ref: str,
    *,
    approve: bool,
    actor: str,
    reason: str | None,
    at: datetime,
) -> Decision:
    """Approve or reject a pending manual payment, once. Of two concurrent decisions the first to
    flip the status wins; the other finds it decided and changes nothing."""
    found = payments.find_payment(session, PROVIDER, payment_ref)
    if found is None:
        raise NotFound(f"no manual payment {payment_ref!r}")
    outcome.touched(found.account_id)
    # The account lock first, as everywhere: every change to this account's billing waits on it,
    # so taking the manual subscription's lock after the payment's (only on approval, so that a
    # rejection creates no subscription row) cannot deadlock.
    account = lock_account(session, found.account_id)
    new_status = payments.SUCCEEDED if approve else REJECTED
    flipped = session.execute(
        update(Payment)
        .where(Payment.id == found.id, Payment.status == payments.PENDING)
        .values(status=new_status, updated_at=at)
        .execution_options(synchronize_session=False)
    ).rowcount
    payment = payments.find_payment(session, PROVIDER, payment_ref, lock=True)
    manual = session.scalars(select(ManualPayment).filter_by(payment_id=payment.id)).one()
    if flipped != 1:
        return Decision(payment, manual, decided_now=False)
    manual.decided_by = actor[:100]
    manual.decided_at = at
    manual.decision_reason = (reason or None) and reason[:MAX_REASON]
    payments.tell_main_app(
        session, outcome, payment, "manual_payment.approved" if approve else "manual_payment.rejected", at=at
    )
    invoice = payments.invoice_for_payment(session, payment.id)
    item = _item_of(session, payment)
    if not approve:
        if invoice is not None:
            invoice.status = VOID_INVOICE
            invoices.issue_credit_note(
                session,
                invoice,
                reason=invoices.REJECTED,
                amount_cents=invoice.amount_cents,
                idempotency_key=f"credit_note:manual:{payment.provider_payment_id}:rejected",
                at=at,
            )
        notifications.payment_rejected(session, outcome, payment, description=describe(item), reason=reason)
        return Decision(payment, manual, decided_now=True)
    if invoice is not None:
        invoice.status = PAID_INVOICE
    period_end = None
    if isinstance(item, Plan):
        subscription = _activate_period(session, outcome, account.id, item, payment, manual, at=at)
        period_end = subscription.current_period_end
        subscriptions.grant_period_credits(
            session, outcome, subscription, item, idempotency_key=_grant_key(payment), at=at, payment_id=payment.id
        )
    else:
        ledger.grant_credits(
            session,
            outcome,
            account_id=account.id,
            credits=item.credits,
            kind=ledger.GRANT_PURCHASE,
            description=f"{item.name} credit package (manual payment)",
            idempotency_key=_grant_key(payment),
            at=at,
            payment_id=payment.id,
            actor=actor[:100],
        )
    notifications.payment_approved(
        session, outcome, payment, description=describe(item), credits=_credits(item), period_end=period_end
    )
    return Decision(payment, manual, decided_now=True)


def manual_subscription_id(account_id: str) -> str:
    return f"manual:{account_id}"


def _activate_period(
    session: Session,
    outcome: Outcome,
    account_id: str,
    plan: Plan,
    payment: Payment,
    manual: ManualPayment,
    *,
    at: datetime,
) -> Subscription:
    """One more period of the plan: after the current one when the same plan is still running
    (paid ahead), else from now. Set as a decision, not as a provider's event: no clock of another
    machine's can make it stale."""
    subscription = subscriptions.lock_or_create_subscription(
        session, provider=PROVIDER, provider_subscription_id=manual_subscription_id(account_id), account_id=account_id
    )
    running = (
        subscription.status in subscriptions.LIVE_STATUSES
        and subscription.plan_id == plan.id
        and subscription.current_period_end is not None
        and subscription.current_period_end > at
    )
    before = subscriptions.told_state(subscription)
    start = subscription.current_period_end if running else at
    end = add_interval(start, plan.interval)
    subscription.status = subscriptions.ACTIVE
    subscription.plan_id = plan.id
    subscription.current_period_start = start if not running else subscription.current_period_start
    subscription.current_period_end = end
    subscription.cancel_at_period_end = False
    subscription.canceled_at = None
    subscription.last_event_at = at
    subscription.last_event_id = payment.provider_payment_id
    payment.subscription_id = subscription.id
    manual.period_start, manual.period_end = start, end
    subscriptions.tell_main_app(session, outcome, subscription, before, event_id=payment.provider_payment_id, at=at)
    return subscription


def lapse_ended_periods(session: Session, outcome: Outcome, *, now: datetime) -> list[str]:
    """Cancel the manual subscriptions whose paid period has ended (a beat task's work). Each is
    checked again under its locks: an approval that extended it meanwhile wins."""
    due = session.execute(
        select(Subscription.account_id).where(
            Subscription.provider == PROVIDER,
            Subscription.status.in_(subscriptions.LIVE_STATUSES),
            Subscription.current_period_end <= now,
        )
    ).scalars()
    lapsed = []
    for account_id in list(due):
        lock_account(session, account_id)
        subscription = subscriptions.lock_or_create_subscription(
            session,
            provider=PROVIDER,
            provider_subscription_id=manual_subscription_id(account_id),
            account_id=account_id,
        )
        end = subscription.current_period_end
        if subscription.status not in subscriptions.LIVE_STATUSES or end is None or end > now:
            continue
        subscription.status = subscriptions.CANCELED
        subscription.canceled_at = end
        subscription.last_event_at = now
        subscription.last_event_id = "lapsed"
        lapses.record_lapse(
            session,
            outcome,
            account_id=account_id,
            key=f"{PROVIDER}:{subscription.provider_subscription_id}:{end.isoformat()}",
            data={"subscription": subscriptions.subscription_data(subscription), "period_ended_at": end.isoformat()},
            at=now,
        )
        lapsed.append(account_id)
    return lapsed


def pending(session: Session, limit: int = 50) -> list[tuple[Payment, ManualPayment]]:
    stmt = (
        select(Payment, ManualPayment)
        .join(ManualPayment, ManualPayment.payment_id == Payment.id)
        .where(Payment.provider == PROVIDER, Payment.status == payments.PENDING)
        .order_by(Payment.created_at, Payment.id)
        .limit(limit)
    )
    return [(p, m) for p, m in session.execute(stmt)]


def describe(item: Plan | CreditPackage) -> str:
    if isinstance(item, Plan):
        return f"{item.name} plan, one {item.interval}"
    return f"{item.name} credit package ({item.credits:,} credits)"


def add_interval(start: datetime, interval: str, times: int = 1) -> datetime:
    """`times` billing intervals later (earlier when negative); a month from the 31st ends on the
    month's last day."""
    if interval == "day":
        return start + timedelta(days=times)
    if interval == "week":
        return start + timedelta(weeks=times)
    months = (12 if interval == "year" else 1) * times
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


def _grant_key(payment: Payment) -> str:
    return f"manual:{payment.provider_payment_id}:grant"


def _credits(item: Plan | CreditPackage) -> int:
    return item.included_credits if isinstance(item, Plan) else item.credits


def _item(session: Session, account_id: str, plan_id: str | None, package_id: str | None) -> Plan | CreditPackage:
    if plan_id is not None:
        plan = session.get(Plan, plan_id)
        if plan is None or not plan.active:
            raise NotFound(f"no active plan {plan_id!r}")
        live = subscriptions.current_subscription(session, account_id)
        if live is not None and live.status in subscriptions.LIVE_STATUSES and live.provider != PROVIDER:
            raise SubscriptionConflict(
                f"the account already has a live {live.provider} subscription; change or cancel it there"
            )
        return plan
    package = session.get(CreditPackage, package_id)
    if package is None or not package.active:
        raise NotFound(f"no active credit package {package_id!r}")
    return package


def _item_of(session: Session, payment: Payment) -> Plan | CreditPackage:
    if payment.plan_id is not None:
        return session.get(Plan, payment.plan_id)
    return session.get(CreditPackage, payment.package_id)
