"""What the Stripe handler tests share: running an event the way the worker runs it (stored in
the inbox, then `processing.process_event` with the session factory and a fixed clock), reading
the store back, and one subscription's events in the API version under test."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from shared import inbox, processing
from shared.billing import ledger
from shared.models import CreditLedgerEntry, WebhookEvent
from tests.factories import stripe_events as se

ACCOUNT = "acct_42"
DAY = 86_400


def store(session_factory, evt: dict, now: datetime) -> int:
    with session_factory.begin() as session:
        stored = inbox.record_event(
            session,
            provider="stripe",
            event_id=evt["id"],
            type=evt["type"],
            payload=evt,
            event_created_at=datetime.fromtimestamp(evt["created"], UTC),
            handled=True,
            at=now,
        )
    return stored.id


def run(session_factory, evt: dict, now: datetime) -> processing.Result:
    """Deliver and process one event; its error (if any) propagates like it does to the task."""
    return processing.process_event(session_factory, store(session_factory, evt, now), clock=lambda: now)


def balance(session_factory, account_id: str = ACCOUNT) -> int:
    with session_factory() as session:
        return ledger.balance(session, account_id)


def ledger_entries(session_factory, account_id: str = ACCOUNT) -> list[CreditLedgerEntry]:
    with session_factory() as session:
        stmt = select(CreditLedgerEntry).filter_by(account_id=account_id).order_by(CreditLedgerEntry.id)
        return list(session.scalars(stmt))


def only(session_factory, model):
    with session_factory() as session:
        return session.scalars(select(model)).one()


def count(session_factory, model) -> int:
    with session_factory() as session:
        return len(session.scalars(select(model)).all())


def event_status(session_factory, evt: dict) -> str:
    with session_factory() as session:
        return session.scalars(select(WebhookEvent.status).filter_by(event_id=evt["id"])).one()


class StripeSubscription:
    """One Stripe subscription's ids, and its events built from the fixture shapes."""

    def __init__(self, t0: int, plan_id: str = "growth", price_id: str = "price_billhook_growth_monthly"):
        self.t0 = t0
        self.id = se.unique("sub")
        self.customer = se.unique("cus")
        self.plan_id = plan_id
        self.price_id = price_id
        self.metadata = {"account_id": ACCOUNT, "plan_id": plan_id}

    def checkout_completed(self, *, at: int | None = None) -> dict:
        obj = se.checkout_session(
            account_id=ACCOUNT,
            mode="subscription",
            plan_id=self.plan_id,
            customer=self.customer,
            subscription=self.id,
        )
        return se.event("checkout.session.completed", obj, created=self.t0 if at is None else at)

    def invoice(
        self,
        event_type: str = "invoice.paid",
        *,
        reason: str = "subscription_create",
        period: int = 0,
        at: int | None = None,
        invoice_id: str | None = None,
        payment_intent: str | None = None,
        status: str = "paid",
        proration: bool = False,
        api_version: str | None = None,
    ) -> dict:
        start = self.t0 + period * 30 * DAY
        obj = se.invoice(
            subscription_id=self.id,
            customer=self.customer,
            price_id=self.price_id,
            amount=19900,
            period_start=start,
            period_end=start + 30 * DAY,
            billing_reason=reason,
            metadata=self.metadata,
            invoice_id=invoice_id,
            payment_intent=payment_intent,
            status=status,
            proration=proration,
            api_version=api_version,
        )
        return se.event(event_type, obj, created=start + 1 if at is None else at, api_version=api_version)

    def updated(self, *, at: int, event_type: str = "customer.subscription.updated", **fields) -> dict:
        fields.setdefault("price_id", self.price_id)
        fields.setdefault("period_start", self.t0)
        fields.setdefault("period_end", self.t0 + 30 * DAY)
        obj = se.subscription(subscription_id=self.id, customer=self.customer, metadata=self.metadata, **fields)
        return se.event(event_type, obj, created=at)


class CreatedSubscription(StripeSubscription):
    """A subscription whose objects say when Stripe created it (`created`: what orders two live
    subscriptions of one account), paid by its own PaymentIntent."""

    def __init__(self, t0: int, created: int, **kwargs):
        super().__init__(t0, **kwargs)
        self.created = created
        self.intent = se.unique("pi")

    def state(self, *, at: int, status: str = "active", event_type: str = "customer.subscription.created") -> dict:
        evt = self.updated(at=at, event_type=event_type, status=status)
        evt["data"]["object"]["created"] = self.created
        return evt

    def first_period(self) -> list[dict]:
        """Its checkout, `customer.subscription.created` and first invoice, as Stripe sends them."""
        return [
            self.checkout_completed(at=self.created + 5),
            self.state(at=self.created + 1),
            self.invoice(at=self.created + 6, payment_intent=self.intent),
        ]


def package_checkout(
    *, package_id: str = "value", payment_status: str = "paid", amount: int = 2999, at: int, session_id=None
) -> tuple[str, dict]:
    """A credit-package checkout session and its PaymentIntent id."""
    intent = se.unique("pi")
    obj = se.checkout_session(
        account_id=ACCOUNT,
        mode="payment",
        package_id=package_id,
        payment_status=payment_status,
        amount_total=amount,
        payment_intent=intent,
        session_id=session_id,
    )
    return intent, obj


def current_shapes_only(test):
    """For an event type only the current era has (`invoice_payment.paid` came with basil)."""
    test.api_versions = (se.CURRENT,)
    return test
