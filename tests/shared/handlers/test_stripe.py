"""Stripe handlers, run the way the worker runs them: stored in the inbox, then
`processing.process_event` with the session factory and a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from shared import event_ops, inbox, processing
from shared.billing import ledger, subscriptions
from shared.billing.subscriptions import SubscriptionStatus
from shared.errors import PermanentError, RetryLater
from shared.models import Account, CreditLedgerEntry, Invoice, Payment, Subscription, WebhookEvent
from tests.factories import stripe_events as se

ACCOUNT = "acct_42"
DAY = 86_400


@pytest.fixture
def t0(now) -> int:
    """The Stripe timestamp (seconds) of the test's 'now'."""
    return int(now.timestamp())


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
        )
        return se.event(event_type, obj, created=start + 1 if at is None else at)

    def updated(self, *, at: int, event_type: str = "customer.subscription.updated", **fields) -> dict:
        fields.setdefault("price_id", self.price_id)
        fields.setdefault("period_start", self.t0)
        fields.setdefault("period_end", self.t0 + 30 * DAY)
        obj = se.subscription(subscription_id=self.id, customer=self.customer, metadata=self.metadata, **fields)
        return se.event(event_type, obj, created=at)


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


# -- checkout ---------------------------------------------------------------------------------


def test_subscription_checkout_activates_the_subscription_and_grants_plan_credits(seeded, now, t0):
    sub = StripeSubscription(t0)

    result = run(seeded, sub.checkout_completed(), now)

    assert (result.outcome, result.account_id) == (processing.DONE, ACCOUNT)
    subscription = only(seeded, Subscription)
    assert (subscription.account_id, subscription.provider_subscription_id) == (ACCOUNT, sub.id)
    assert (subscription.status, subscription.plan_id) == ("active", "growth")
    assert balance(seeded) == 12_000
    account = only(seeded, Account)
    assert (account.email, account.stripe_customer_id) == ("buyer@example.com", sub.customer)


def test_paid_package_checkout_grants_credits_and_records_payment_and_numbered_invoice(seeded, now, t0):
    intent, obj = package_checkout(at=t0)

    run(seeded, se.event("checkout.session.completed", obj, created=t0), now)

    assert balance(seeded) == 2_000
    payment = only(seeded, Payment)
    assert (payment.status, payment.amount_cents, payment.currency) == ("succeeded", 2999, "usd")
    assert (payment.kind, payment.package_id, payment.credits_granted) == ("credit_package", "value", 2_000)
    assert payment.provider_charge_ref == intent
    invoice = only(seeded, Invoice)
    assert invoice.payment_id == payment.id
    assert invoice.number == f"BH-{now:%Y}-{invoice.id:06d}"
    assert invoice.amount_cents == 2999
    assert invoice.line_items[0]["description"].startswith("Value credit package")


def test_unpaid_package_checkout_grants_nothing_until_async_payment_succeeded(seeded, now, t0):
    _, obj = package_checkout(payment_status="unpaid", at=t0)

    run(seeded, se.event("checkout.session.completed", obj, created=t0), now)
    assert balance(seeded) == 0
    assert count(seeded, Payment) == 0

    obj["payment_status"] = "paid"
    run(seeded, se.event("checkout.session.async_payment_succeeded", obj, created=t0 + 60), now)

    assert balance(seeded) == 2_000
    assert only(seeded, Payment).status == "succeeded"
    assert count(seeded, Invoice) == 1


def test_async_payment_failed_records_a_failed_payment_and_grants_nothing(seeded, now, t0):
    _, obj = package_checkout(payment_status="unpaid", at=t0)
    run(seeded, se.event("checkout.session.completed", obj, created=t0), now)

    run(seeded, se.event("checkout.session.async_payment_failed", obj, created=t0 + 60), now)

    payment = only(seeded, Payment)
    assert (payment.status, payment.credits_granted) == ("failed", 0)
    assert payment.failure_message
    assert balance(seeded) == 0
    assert count(seeded, Invoice) == 0


def test_a_late_failure_notice_after_success_changes_nothing(seeded, now, t0):
    _, obj = package_checkout(payment_status="paid", at=t0)
    run(seeded, se.event("checkout.session.async_payment_succeeded", obj, created=t0 + 60), now)

    run(seeded, se.event("checkout.session.async_payment_failed", obj, created=t0 + 30), now)

    assert only(seeded, Payment).status == "succeeded"
    assert balance(seeded) == 2_000


def test_success_after_a_recorded_failure_grants_credits_and_issues_the_invoice(seeded, now, t0):
    _, obj = package_checkout(payment_status="unpaid", at=t0)
    run(seeded, se.event("checkout.session.async_payment_failed", obj, created=t0 + 30), now)

    run(seeded, se.event("checkout.session.async_payment_succeeded", obj, created=t0 + 60), now)

    payment = only(seeded, Payment)
    assert (payment.status, payment.failure_message, payment.credits_granted) == ("succeeded", None, 2_000)
    assert only(seeded, Invoice).payment_id == payment.id
    assert balance(seeded) == 2_000


def test_checkout_naming_no_account_is_a_permanent_error(seeded, now, t0):
    obj = se.checkout_session(account_id="ignored", mode="payment", package_id="value")
    obj["metadata"].pop("account_id")
    obj["client_reference_id"] = None
    evt = se.event("checkout.session.completed", obj, created=t0)

    with pytest.raises(PermanentError) as raised:
        run(seeded, evt, now)

    assert not processing.is_transient(raised.value)  # the task dead-letters it without retrying
    assert count(seeded, Account) == 0
    assert event_status(seeded, evt) == "received"  # rolled back: the task records the failure around it


def test_checkout_for_an_unknown_package_is_a_permanent_error(seeded, now, t0):
    _, obj = package_checkout(package_id="no_such_package", at=t0)

    with pytest.raises(PermanentError):
        run(seeded, se.event("checkout.session.completed", obj, created=t0), now)
    assert balance(seeded) == 0


# -- invoices ---------------------------------------------------------------------------------


def test_invoice_paid_and_payment_succeeded_for_one_invoice_grant_credits_once(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    renewal_id = se.unique("in")

    run(seeded, sub.invoice("invoice.paid", reason="subscription_cycle", period=1, invoice_id=renewal_id), now)
    run(
        seeded,
        sub.invoice("invoice.payment_succeeded", reason="subscription_cycle", period=1, invoice_id=renewal_id),
        now,
    )

    assert balance(seeded) == 2 * 12_000
    with seeded() as session:
        assert session.scalars(select(Payment).filter_by(provider_payment_id=renewal_id)).one()
        assert len(session.scalars(select(Invoice).filter_by(provider_invoice_id=renewal_id)).all()) == 1


@pytest.mark.parametrize("checkout_first", [True, False], ids=["checkout-first", "invoice-first"])
def test_checkout_and_first_invoice_grant_plan_credits_once_in_either_order(seeded, now, t0, checkout_first):
    sub = StripeSubscription(t0)
    intent = se.unique("pi")
    events = [sub.checkout_completed(), sub.invoice(reason="subscription_create", payment_intent=intent)]
    if not checkout_first:
        events.reverse()

    for evt in events:
        run(seeded, evt, now)

    assert balance(seeded) == 12_000
    [grant] = ledger_entries(seeded)
    payment = only(seeded, Payment)
    assert grant.payment_id == payment.id  # so a refund of the first invoice finds the grant
    assert payment.credits_granted == 12_000
    assert only(seeded, Subscription).status == "active"


def test_renewal_invoice_grants_another_period_of_credits_once(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    run(seeded, sub.invoice(reason="subscription_create"), now)
    renewal = sub.invoice(reason="subscription_cycle", period=1)

    run(seeded, renewal, now)
    run(seeded, se.event("invoice.paid", renewal["data"]["object"], created=renewal["created"]), now)

    assert balance(seeded) == 2 * 12_000
    subscription = only(seeded, Subscription)
    assert subscription.current_period_start == datetime.fromtimestamp(t0 + 30 * DAY, UTC)
    assert subscription.current_period_end == datetime.fromtimestamp(t0 + 60 * DAY, UTC)


def test_proration_invoice_records_the_payment_without_a_new_period_of_credits(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)

    run(seeded, sub.invoice(reason="subscription_create"), now)
    # An upgrade invoiced at once: the proration spans from the change to the period's end.
    proration = se.invoice(
        subscription_id=sub.id,
        customer=sub.customer,
        price_id="price_billhook_scale_monthly",
        amount=5000,
        period_start=t0 + DAY,
        period_end=t0 + 30 * DAY,
        billing_reason="subscription_update",
        metadata=sub.metadata,
        proration=True,
    )

    run(seeded, se.event("invoice.paid", proration, created=t0 + DAY), now)

    assert balance(seeded) == 12_000
    assert count(seeded, Payment) == 2
    subscription = only(seeded, Subscription)
    assert subscription.current_period_start == datetime.fromtimestamp(t0, UTC)  # the period goes on


def test_plan_change_that_restarts_the_billing_cycle_grants_the_new_periods_credits_once(seeded, now, t0):
    # Growth -> scale with a new billing cycle from the change on (Stripe restarts it when the
    # interval changes): the update invoice credits the unused growth time (a proration line) and
    # charges a whole scale period (a full line), which is a new period of the new plan's credits.
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    run(seeded, sub.invoice(reason="subscription_create"), now)
    changed_at = t0 + 10 * DAY
    obj = se.invoice(
        subscription_id=sub.id,
        customer=sub.customer,
        price_id="price_billhook_scale_monthly",
        amount=39900,
        period_start=changed_at,
        period_end=changed_at + 30 * DAY,
        billing_reason="subscription_update",
        metadata={"account_id": ACCOUNT, "plan_id": "scale"},
    )
    credit = {**obj["lines"]["data"][0], "id": se.unique("il"), "amount": -13300}
    credit["parent"] = {
        **credit["parent"],
        "subscription_item_details": {**credit["parent"]["subscription_item_details"], "proration": True},
    }
    credit["pricing"] = {**credit["pricing"], "price_details": {"price": sub.price_id, "product": "prod_growth"}}
    obj["lines"]["data"].insert(0, credit)  # the proration first: the whole period's line must still be found
    update = se.event("invoice.paid", obj, created=changed_at + 1)

    run(seeded, update, now)
    run(seeded, se.event("invoice.paid", obj, created=changed_at + 1), now)  # delivered again, new event id

    assert balance(seeded) == 12_000 + 20_000
    subscription = only(seeded, Subscription)
    assert (subscription.plan_id, subscription.current_period_start) == (
        "scale",
        datetime.fromtimestamp(changed_at, UTC),
    )
    with seeded() as session:
        payment = session.scalars(select(Payment).filter_by(provider_payment_id=obj["id"])).one()
        assert payment.credits_granted == 20_000  # what a refund of it would take back

    renewal = se.invoice(
        subscription_id=sub.id,
        customer=sub.customer,
        price_id="price_billhook_scale_monthly",
        amount=39900,
        period_start=changed_at + 30 * DAY,
        period_end=changed_at + 60 * DAY,
        metadata={"account_id": ACCOUNT, "plan_id": "scale"},
    )
    run(seeded, se.event("invoice.paid", renewal, created=changed_at + 30 * DAY + 1), now)
    assert balance(seeded) == 12_000 + 2 * 20_000


def test_invoice_payment_failed_makes_the_subscription_past_due(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)

    run(seeded, sub.invoice("invoice.payment_failed", reason="subscription_cycle", period=1, status="open"), now)

    assert only(seeded, Subscription).status == "past_due"
    assert balance(seeded) == 12_000


def test_a_failed_first_invoice_leaves_the_subscription_incomplete_and_not_live(seeded, now, t0):
    # Stripe keeps a subscription whose first payment is declined `incomplete`: it never paid.
    sub = StripeSubscription(t0)
    run(seeded, sub.updated(at=t0, event_type="customer.subscription.created", status="incomplete"), now)

    run(seeded, sub.invoice("invoice.payment_failed", reason="subscription_create", status="open", at=t0 + 1), now)

    subscription = only(seeded, Subscription)
    assert subscription.status == SubscriptionStatus.INCOMPLETE
    assert subscription.status not in subscriptions.LIVE_STATUSES
    with seeded() as session:
        assert subscriptions.current_subscription(session, ACCOUNT).status == "incomplete"
    assert balance(seeded) == 0


@pytest.mark.parametrize("status", ["incomplete", "incomplete_expired", "unpaid", "paused"])
def test_a_subscription_stripe_says_is_not_paying_is_not_live(seeded, now, t0, status):
    sub = StripeSubscription(t0)
    run(seeded, sub.updated(at=t0, event_type="customer.subscription.created"), now)

    run(seeded, sub.updated(at=t0 + DAY, status=status), now)

    subscription = only(seeded, Subscription)
    assert subscription.status == status and subscription.status not in subscriptions.LIVE_STATUSES


def test_invoice_for_a_subscription_nobody_is_known_for_retries_later(seeded, now, t0):
    sub = StripeSubscription(t0)
    sub.metadata = {}

    with pytest.raises(RetryLater):
        run(seeded, sub.invoice(reason="subscription_create"), now)
    assert count(seeded, Subscription) == 0


def test_an_invoice_outside_any_subscription_changes_nothing(seeded, now, t0):
    sub = StripeSubscription(t0)
    evt = sub.invoice(reason="manual")
    evt["data"]["object"]["parent"] = None

    assert run(seeded, evt, now).outcome == processing.DONE
    assert count(seeded, Payment) == count(seeded, Subscription) == 0


# -- subscription changes ---------------------------------------------------------------------


def test_a_subscription_naming_only_a_known_customer_belongs_to_that_customers_account(seeded, now, t0):
    first = StripeSubscription(t0)
    run(seeded, first.checkout_completed(), now)
    second = StripeSubscription(t0, plan_id="scale", price_id="price_billhook_scale_monthly")
    second.customer, second.metadata = first.customer, {}

    run(seeded, second.updated(at=t0 + DAY, event_type="customer.subscription.created"), now)

    with seeded() as session:
        created = session.scalars(select(Subscription).filter_by(provider_subscription_id=second.id)).one()
    assert (created.account_id, created.plan_id) == (ACCOUNT, "scale")


def test_subscription_update_changes_plan_by_price_cancel_flag_and_periods(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)

    evt = sub.updated(
        at=t0 + DAY,
        price_id="price_billhook_scale_monthly",
        cancel_at_period_end=True,
        period_start=t0 + DAY,
        period_end=t0 + 31 * DAY,
    )
    run(seeded, evt, now)

    subscription = only(seeded, Subscription)
    assert (subscription.plan_id, subscription.status, subscription.cancel_at_period_end) == ("scale", "active", True)
    assert subscription.current_period_start == datetime.fromtimestamp(t0 + DAY, UTC)
    assert subscription.current_period_end == datetime.fromtimestamp(t0 + 31 * DAY, UTC)
    assert subscription.last_event_id == evt["id"]


def test_subscription_created_event_alone_creates_the_subscription_for_the_metadata_account(seeded, now, t0):
    sub = StripeSubscription(t0)

    run(seeded, sub.updated(at=t0, event_type="customer.subscription.created"), now)

    subscription = only(seeded, Subscription)
    assert (subscription.account_id, subscription.plan_id, subscription.status) == (ACCOUNT, "growth", "active")
    assert balance(seeded) == 0  # credits come with the checkout or the paid invoice


def test_subscription_deleted_cancels_it(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)

    run(seeded, sub.updated(at=t0 + 2 * DAY, event_type="customer.subscription.deleted", status="canceled"), now)

    subscription = only(seeded, Subscription)
    assert subscription.status == "canceled"
    assert subscription.canceled_at is not None
    assert subscription.cancel_at_period_end is False


def test_an_older_update_arriving_after_a_newer_one_changes_nothing(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    newer = sub.updated(at=t0 + 2 * DAY, price_id="price_billhook_scale_monthly", cancel_at_period_end=True)
    older = sub.updated(at=t0 + DAY, price_id="price_billhook_starter_monthly", status="past_due")

    run(seeded, newer, now)
    result = run(seeded, older, now)

    assert result.outcome == processing.DONE  # handled: it just has nothing newer to say
    subscription = only(seeded, Subscription)
    assert (subscription.plan_id, subscription.status, subscription.cancel_at_period_end) == ("scale", "active", True)
    assert subscription.last_event_id == newer["id"]


def test_an_update_older_than_the_deletion_does_not_revive_the_subscription(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    run(seeded, sub.updated(at=t0 + 2 * DAY, event_type="customer.subscription.deleted", status="canceled"), now)

    run(seeded, sub.updated(at=t0 + DAY, status="active"), now)

    assert only(seeded, Subscription).status == "canceled"


# -- refunds ----------------------------------------------------------------------------------


def test_full_refund_reverses_the_package_credits_once(seeded, now, t0):
    intent, obj = package_checkout(at=t0)
    run(seeded, se.event("checkout.session.completed", obj, created=t0), now)
    charge = se.charge(payment_intent=intent, amount=2999, amount_refunded=2999)

    run(seeded, se.event("charge.refunded", charge, created=t0 + DAY), now)
    run(seeded, se.event("charge.refunded", charge, created=t0 + DAY), now)  # the same refund, told twice

    assert balance(seeded) == 0
    assert [e.amount for e in ledger_entries(seeded)] == [2_000, -2_000]
    payment = only(seeded, Payment)
    assert (payment.status, payment.amount_refunded_cents) == ("refunded", 2999)


def test_partial_then_full_refund_reverses_cumulatively_once(seeded, now, t0):
    intent, obj = package_checkout(package_id="enterprise", amount=14999, at=t0)
    run(seeded, se.event("checkout.session.completed", obj, created=t0), now)
    charge_id = se.unique("ch")

    partial = se.charge(payment_intent=intent, amount=14999, amount_refunded=5000, charge_id=charge_id)
    run(seeded, se.event("charge.refunded", partial, created=t0 + DAY), now)
    assert only(seeded, Payment).status == "partially_refunded"
    assert balance(seeded) == 15_000 - 15_000 * 5000 // 14999

    full = se.charge(payment_intent=intent, amount=14999, amount_refunded=14999, charge_id=charge_id)
    run(seeded, se.event("charge.refunded", full, created=t0 + 2 * DAY), now)
    run(seeded, se.event("charge.refunded", partial, created=t0 + DAY), now)  # a late copy of the first

    assert balance(seeded) == 0
    assert only(seeded, Payment).status == "refunded"
    assert len(ledger_entries(seeded)) == 3


def test_refund_of_a_subscription_invoice_reverses_the_plan_credits_the_checkout_granted(seeded, now, t0):
    sub = StripeSubscription(t0)
    intent = se.unique("pi")
    run(seeded, sub.checkout_completed(), now)
    run(seeded, sub.invoice(reason="subscription_create", payment_intent=intent), now)

    run(seeded, se.event("charge.refunded", se.charge(payment_intent=intent, amount=19900, amount_refunded=19900)), now)

    assert balance(seeded) == 0


@pytest.mark.parametrize("link_first", [False, True], ids=["invoice-first", "link-first"])
def test_refund_of_a_renewal_is_matched_through_invoice_payment_paid(seeded, now, t0, link_first):
    # Webhook invoices do not name their PaymentIntent; invoice_payment.paid links the two.
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    renewal = sub.invoice(reason="subscription_cycle", period=1)
    invoice_id = renewal["data"]["object"]["id"]
    intent = se.unique("pi")
    link = se.event(
        "invoice_payment.paid",
        se.invoice_payment(invoice_id=invoice_id, payment_intent=intent, amount=19900),
        created=renewal["created"],
    )
    if link_first:
        with pytest.raises(RetryLater):
            run(seeded, link, now)
    run(seeded, renewal, now)
    if link_first:
        processing.process_event(seeded, store(seeded, link, now), clock=lambda: now)
    else:
        run(seeded, link, now)
    assert balance(seeded) == 2 * 12_000

    run(seeded, se.event("charge.refunded", se.charge(payment_intent=intent, amount=19900, amount_refunded=19900)), now)

    assert balance(seeded) == 12_000


def test_invoice_payment_paid_for_a_checkout_invoice_needs_no_link(seeded, now, t0):
    intent, obj = package_checkout(at=t0)
    obj["invoice"] = se.unique("in")
    run(seeded, se.event("checkout.session.completed", obj, created=t0), now)

    link = se.invoice_payment(invoice_id=obj["invoice"], payment_intent=intent, amount=2999)
    result = run(seeded, se.event("invoice_payment.paid", link, created=t0), now)

    assert result.outcome == processing.DONE
    assert only(seeded, Payment).provider_charge_ref == intent


def test_refund_before_its_payment_is_known_retries_later_then_succeeds(seeded, now, t0):
    intent, obj = package_checkout(at=t0)
    refund = se.event(
        "charge.refunded", se.charge(payment_intent=intent, amount=2999, amount_refunded=2999), created=t0 + DAY
    )
    refund_pk = store(seeded, refund, now)

    with pytest.raises(RetryLater) as raised:
        processing.process_event(seeded, refund_pk, clock=lambda: now)
    assert processing.is_transient(raised.value)
    processing.record_failure(seeded, refund_pk, raised.value, at=now, retry_at=now + timedelta(seconds=5))

    run(seeded, se.event("checkout.session.completed", obj, created=t0), now)
    result = processing.process_event(seeded, refund_pk, clock=lambda: now)

    assert result.outcome == processing.DONE
    assert balance(seeded) == 0
    assert event_status(seeded, refund) == "succeeded"


# -- replays ----------------------------------------------------------------------------------


def test_replaying_a_succeeded_event_has_no_new_effects(seeded, now, t0):
    sub = StripeSubscription(t0)
    evt = sub.checkout_completed()
    pk = store(seeded, evt, now)
    processing.process_event(seeded, pk, clock=lambda: now)

    again = processing.process_event(seeded, pk, clock=lambda: now + timedelta(hours=1))
    with seeded.begin() as session:
        assert event_ops.reset_for_replay(session, pk, at=now) is False  # `billhook events replay` refuses it too

    assert again.outcome == processing.ALREADY_DONE
    assert balance(seeded) == 12_000
    assert count(seeded, Subscription) == 1


def test_the_same_checkout_under_a_new_event_id_grants_nothing_new(seeded, now, t0):
    sub = StripeSubscription(t0)
    evt = sub.checkout_completed()
    run(seeded, evt, now)

    resent = se.event(evt["type"], evt["data"]["object"], created=evt["created"])
    run(seeded, resent, now)

    assert balance(seeded) == 12_000
    assert [e.kind for e in ledger_entries(seeded)] == ["subscription_grant"]
