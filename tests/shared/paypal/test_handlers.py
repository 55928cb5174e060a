"""PayPal handlers, run the way the worker runs them: stored in the inbox, then
`processing.process_event` with the session factory and a fixed clock. Duplicates (the same
event again, or another source of the same effect) and reordered deliveries."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from shared import processing
from shared.billing import ledger
from shared.billing.accounts import ensure_account
from shared.errors import PermanentError, RetryLater
from shared.models import Account, CreditLedgerEntry, EmailOutbox, Invoice, Payment, Subscription, WebhookEvent
from shared.outcome import Outcome
from shared.paypal import orders as paypal_orders
from tests.factories import paypal_events as pe
from tests.factories.inbox import store_event

ACCOUNT = "acct_pp"
STARTER_PRICE, STARTER_CREDITS = 999, 500  # the seed's "starter" credit package
GROWTH_CREDITS = 12_000  # the seed's "growth" plan, PayPal plan P-BILLHOOK-GROWTH


def store(session_factory, evt: dict, now: datetime) -> int:
    return store_event(session_factory, evt, at=now)


def run(session_factory, evt: dict, now: datetime) -> processing.Result:
    return processing.process_event(session_factory, store(session_factory, evt, now), clock=lambda: now)


def balance(session_factory, account_id: str = ACCOUNT) -> int:
    with session_factory() as session:
        return ledger.balance(session, account_id)


def count(session_factory, model) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(model))


def only(session_factory, model):
    with session_factory() as session:
        return session.scalars(select(model)).one()


def capture_event(order_id: str, *, status: str = "COMPLETED", amount: int = STARTER_PRICE, **kwargs) -> dict:
    event_type = {"COMPLETED": "PAYMENT.CAPTURE.COMPLETED", "DECLINED": "PAYMENT.CAPTURE.DENIED"}[status]
    resource = pe.capture(
        order_id=order_id, account_id=ACCOUNT, package_id="starter", amount_cents=amount, status=status, **kwargs
    )
    return pe.event(event_type, resource)


# -- orders and captures ----------------------------------------------------------------------


def test_completed_capture_grants_package_credits_payment_and_invoice_once(seeded, now):
    evt = capture_event("ORDER1")

    assert run(seeded, evt, now).outcome == processing.DONE
    assert run(seeded, evt, now).outcome == processing.ALREADY_DONE  # the same delivery again

    assert balance(seeded) == STARTER_CREDITS
    payment = only(seeded, Payment)
    assert (payment.provider, payment.provider_payment_id, payment.status) == ("paypal", "ORDER1", "succeeded")
    assert (payment.amount_cents, payment.currency, payment.credits_granted) == (999, "usd", STARTER_CREDITS)
    assert payment.provider_charge_ref == evt["resource"]["id"]
    assert only(seeded, Invoice).payment_id == payment.id
    with seeded() as session:
        assert session.get(WebhookEvent, 1).account_id == ACCOUNT


def test_capture_endpoint_then_webhook_grant_once_whichever_first(seeded, now):
    order = pe.order(account_id=ACCOUNT, package_id="starter", amount_cents=STARTER_PRICE, order_id="ORDER2")
    capture = pe.capture(order_id="ORDER2", account_id=ACCOUNT, package_id="starter", amount_cents=STARTER_PRICE)
    with seeded.begin() as session:  # what the capture endpoint does with PayPal's capture answer
        outcome = paypal_orders.grant_capture(
            session, Outcome(), paypal_orders.CaptureResult.from_order(pe.captured_order(order, capture)), at=now
        )
        assert outcome.credits_granted_now == STARTER_CREDITS

    run(seeded, pe.event("PAYMENT.CAPTURE.COMPLETED", capture), now)
    with seeded.begin() as session:  # the endpoint called twice
        again = paypal_orders.grant_capture(
            session, Outcome(), paypal_orders.CaptureResult.from_order(pe.captured_order(order, capture)), at=now
        )
        assert again.credits_granted_now == 0

    assert balance(seeded) == STARTER_CREDITS
    assert count(seeded, Payment) == 1 and count(seeded, Invoice) == 1


def test_denied_capture_records_failed_payment_without_credits(seeded, now):
    run(seeded, capture_event("ORDER3", status="DECLINED"), now)

    assert balance(seeded) == 0
    payment = only(seeded, Payment)
    assert payment.status == "failed"
    assert "DECLINED_BY_RISK_FRAUD_FILTERS" in payment.failure_message
    assert count(seeded, Invoice) == 0


def test_completed_capture_after_a_denied_one_wins_and_is_invoiced(seeded, now):
    run(seeded, capture_event("ORDER4", status="DECLINED"), now)
    run(seeded, capture_event("ORDER4"), now + timedelta(minutes=1))

    assert balance(seeded) == STARTER_CREDITS
    payment = only(seeded, Payment)
    assert (payment.status, payment.failure_message) == ("succeeded", None)
    assert only(seeded, Invoice).payment_id == payment.id


def test_denied_capture_arriving_after_completion_changes_nothing(seeded, now):
    run(seeded, capture_event("ORDER5"), now)
    run(seeded, capture_event("ORDER5", status="DECLINED"), now)

    assert balance(seeded) == STARTER_CREDITS
    assert only(seeded, Payment).status == "succeeded"


def test_pending_capture_is_recorded_without_credits_until_it_completes(seeded, now):
    pending = pe.capture(
        order_id="ORDER11", account_id=ACCOUNT, package_id="starter", amount_cents=STARTER_PRICE, status="PENDING"
    )
    run(seeded, pe.event("PAYMENT.CAPTURE.PENDING", pending), now)
    assert (only(seeded, Payment).status, balance(seeded), count(seeded, Invoice)) == ("pending", 0, 0)

    run(seeded, capture_event("ORDER11", capture_id=pending["id"]), now)
    assert (only(seeded, Payment).status, balance(seeded), count(seeded, Invoice)) == ("succeeded", STARTER_CREDITS, 1)


def test_an_order_without_a_capture_grants_and_records_nothing(seeded, now):
    order = pe.order(account_id=ACCOUNT, package_id="starter", amount_cents=STARTER_PRICE)
    with seeded.begin() as session:
        outcome = paypal_orders.grant_capture(session, Outcome(), paypal_orders.CaptureResult.from_order(order), at=now)
    assert (outcome.payment, outcome.credits_granted_now) == (None, 0)
    assert count(seeded, Payment) == 0


def mismatches() -> float:
    return REGISTRY.get_sample_value("billhook_payment_mismatch_total", {"provider": "paypal"}) or 0.0


@pytest.mark.parametrize(
    ("value", "currency", "got"),
    [
        (None, "USD", "no amount USD"),
        ("abc", "USD", "'abc' USD"),
        ("NaN", "USD", "'NaN' USD"),
        ("Infinity", "USD", "'Infinity' USD"),
        ("-9.99", "USD", "'-9.99' USD"),
        ("9.99e0", "USD", "'9.99e0' USD"),
        (9.99, "USD", "9.99 USD"),
        ("0.01", "USD", "'0.01' USD"),
        ("99.90", "USD", "'99.90' USD"),
        ("9.99", "EUR", "'9.99' EUR"),
        ("9.99", None, "'9.99' in no readable currency"),
    ],
)
def test_a_capture_not_paying_the_orders_amount_fails_loudly_and_grants_nothing(seeded, now, value, currency, got):
    evt = capture_event("ORDER6")
    amount = evt["resource"]["amount"]
    if value is None:
        del amount["value"]
    else:
        amount["value"] = value
    amount["currency_code"] = currency
    pk = store(seeded, evt, now)
    counted = mismatches()

    with pytest.raises(PermanentError) as raised:
        processing.process_event(seeded, pk, clock=lambda: now)
    processing.record_failure(seeded, pk, raised.value, at=now, retry_at=None)  # as the worker does

    assert not processing.is_transient(raised.value)
    with seeded() as session:
        event = session.get(WebhookEvent, pk)
    assert event.status == "failed"
    assert f"captured {got}, expected 9.99 USD for package 'starter'" in event.last_error
    assert mismatches() == counted + 1
    assert balance(seeded) == 0
    assert count(seeded, Payment) == 0


def test_a_capture_of_the_orders_amount_in_lower_case_currency_grants(seeded, now):
    evt = capture_event("ORDER8")
    evt["resource"]["amount"]["currency_code"] = "usd"

    assert run(seeded, evt, now).outcome == processing.DONE
    assert balance(seeded) == STARTER_CREDITS


def test_capture_with_a_foreign_custom_id_fails_permanently(seeded, now):
    evt = capture_event("ORDER7")
    evt["resource"]["custom_id"] = "not-ours"
    with pytest.raises(PermanentError):
        run(seeded, evt, now)
    assert count(seeded, Payment) == 0


def test_approved_order_is_attributed_to_its_account_without_calling_paypal(seeded, now):
    order = pe.order(account_id=ACCOUNT, package_id="starter", amount_cents=STARTER_PRICE)
    result = run(seeded, pe.event("CHECKOUT.ORDER.APPROVED", order), now)

    assert (result.outcome, result.account_id) == (processing.DONE, ACCOUNT)
    assert count(seeded, Payment) == 0  # the capture task captures it, not the handler
    with seeded() as session:
        assert session.get(Account, ACCOUNT) is not None


# -- refunds ----------------------------------------------------------------------------------


def test_full_refund_reverses_the_credits_once(seeded, now):
    completed = capture_event("ORDER8")
    run(seeded, completed, now)
    refunded = pe.event("PAYMENT.CAPTURE.REFUNDED", pe.refund(capture_id=completed["resource"]["id"], amount_cents=999))

    run(seeded, refunded, now)
    run(seeded, refunded, now)

    assert balance(seeded) == 0
    assert only(seeded, Payment).status == "refunded"


def test_partial_refunds_reverse_their_share_in_any_order(seeded, now):
    completed = capture_event("ORDER9")
    run(seeded, completed, now)
    capture_id = completed["resource"]["id"]
    rest = pe.refund(capture_id=capture_id, amount_cents=499, total_refunded_cents=999)
    half = pe.refund(capture_id=capture_id, amount_cents=500, total_refunded_cents=500)

    run(seeded, pe.event("PAYMENT.CAPTURE.REFUNDED", rest), now)  # the second refund arrives first
    run(seeded, pe.event("PAYMENT.CAPTURE.REFUNDED", half), now)

    assert balance(seeded) == 0
    assert only(seeded, Payment).amount_refunded_cents == 999


def test_refund_before_its_capture_waits_then_reverses(seeded, now):
    completed = capture_event("ORDER10")
    refunded = pe.event("PAYMENT.CAPTURE.REFUNDED", pe.refund(capture_id=completed["resource"]["id"], amount_cents=999))

    with pytest.raises(RetryLater):
        run(seeded, refunded, now)
    run(seeded, completed, now)
    run(seeded, refunded, now)  # the retry

    assert balance(seeded) == 0


# -- subscriptions ----------------------------------------------------------------------------


def activated(start: datetime, *, sub_id: str = "I-SUB1", created: datetime | None = None) -> dict:
    resource = pe.subscription(
        account_id=ACCOUNT,
        plan_id="growth",
        paypal_plan_id="P-BILLHOOK-GROWTH",
        subscription_id=sub_id,
        start_time=start,
        next_billing_time=start + timedelta(days=30),
    )
    return pe.event("BILLING.SUBSCRIPTION.ACTIVATED", resource, created=created or start)


def status_event(event_type: str, start: datetime, at: datetime, *, sub_id: str = "I-SUB1") -> dict:
    resource = pe.subscription(
        account_id=ACCOUNT,
        plan_id="growth",
        paypal_plan_id="P-BILLHOOK-GROWTH",
        subscription_id=sub_id,
        status=event_type.rsplit(".", 1)[-1],
        start_time=start,
        status_update_time=at,
    )
    return pe.event(event_type, resource, created=at)


def sale_event(at: datetime, *, sub_id: str = "I-SUB1", sale_id: str | None = None) -> dict:
    return pe.event(
        "PAYMENT.SALE.COMPLETED",
        pe.sale(subscription_id=sub_id, amount_cents=19900, created=at, sale_id=sale_id),
        created=at,
    )


def test_activation_makes_the_subscription_active_and_grants_first_period_once(seeded, now):
    evt = activated(now)
    run(seeded, evt, now)
    run(seeded, activated(now, created=now + timedelta(seconds=5)), now)  # a second activation event

    sub = only(seeded, Subscription)
    assert (sub.provider, sub.provider_subscription_id, sub.account_id) == ("paypal", "I-SUB1", ACCOUNT)
    assert (sub.status, sub.plan_id) == ("active", "growth")
    assert sub.current_period_end == now + timedelta(days=30)
    assert balance(seeded) == GROWTH_CREDITS


def test_first_sale_pays_the_activated_period_and_renewals_grant_each_period_once(seeded, now):
    run(seeded, activated(now), now)
    first = sale_event(now + timedelta(seconds=30))
    renewal = sale_event(now + timedelta(days=30))

    run(seeded, first, now)
    run(seeded, renewal, now + timedelta(days=30))
    run(seeded, renewal, now + timedelta(days=30))

    assert balance(seeded) == 2 * GROWTH_CREDITS
    with seeded() as session:
        paid = list(session.scalars(select(Payment).order_by(Payment.id)))
        assert [p.provider_payment_id for p in paid] == [first["resource"]["id"], renewal["resource"]["id"]]
        assert [p.amount_cents for p in paid] == [19900, 19900]
        initial = ledger.entry_by_key(session, "paypal:subscription:I-SUB1:initial")
        assert initial.payment_id == paid[0].id  # so a refund of the first sale finds its credits
    assert count(seeded, Invoice) == 2


def test_sale_before_activation_waits_and_then_grants_nothing_extra(seeded, now):
    first = sale_event(now + timedelta(seconds=10))
    with pytest.raises(RetryLater):
        run(seeded, first, now)
    run(seeded, activated(now), now)
    run(seeded, first, now)  # the retry

    assert balance(seeded) == GROWTH_CREDITS
    assert count(seeded, Payment) == 1


def test_cancellation_arriving_before_activation_stays_cancelled(seeded, now):
    cancelled_at = now + timedelta(days=3)
    run(seeded, status_event("BILLING.SUBSCRIPTION.CANCELLED", now, cancelled_at), now)
    run(seeded, activated(now), now)  # older, delivered late

    sub = only(seeded, Subscription)
    assert sub.status == "canceled" and sub.canceled_at == cancelled_at
    assert balance(seeded) == GROWTH_CREDITS  # the activated period was paid for


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        ("BILLING.SUBSCRIPTION.CANCELLED", "canceled"),
        ("BILLING.SUBSCRIPTION.EXPIRED", "canceled"),
        ("BILLING.SUBSCRIPTION.SUSPENDED", "paused"),
    ],
)
def test_status_events_change_the_status_once(seeded, now, event_type, status):
    run(seeded, activated(now), now)
    evt = status_event(event_type, now, now + timedelta(days=2))
    run(seeded, evt, now)
    run(seeded, evt, now)

    assert only(seeded, Subscription).status == status
    assert balance(seeded) == GROWTH_CREDITS


def test_reactivation_after_suspension_is_active_and_grants_nothing_new(seeded, now):
    run(seeded, activated(now), now)
    run(seeded, status_event("BILLING.SUBSCRIPTION.SUSPENDED", now, now + timedelta(days=2)), now)
    run(seeded, activated(now, created=now + timedelta(days=3)), now)

    assert only(seeded, Subscription).status == "active"
    assert balance(seeded) == GROWTH_CREDITS


def test_suspension_delivered_after_a_newer_reactivation_is_ignored(seeded, now):
    run(seeded, activated(now), now)
    run(seeded, activated(now, created=now + timedelta(days=3)), now)
    run(seeded, status_event("BILLING.SUBSCRIPTION.SUSPENDED", now, now + timedelta(days=2)), now)

    assert only(seeded, Subscription).status == "active"


def test_subscription_event_names_its_account_from_custom_id(seeded, now):
    run(seeded, activated(now, sub_id="I-OTHER"), now)
    with seeded() as session:
        assert session.scalars(select(CreditLedgerEntry.account_id)).all() == [ACCOUNT]


def test_sale_that_is_not_a_subscription_payment_is_left_alone(seeded, now):
    evt = sale_event(now)
    del evt["resource"]["billing_agreement_id"]
    assert run(seeded, evt, now).outcome == processing.DONE
    assert count(seeded, Payment) == 0


# -- emails -----------------------------------------------------------------------------------


def emails(session_factory) -> Counter:
    with session_factory() as session:
        return Counter(row.template for row in session.scalars(select(EmailOutbox)))


def email(session_factory, template: str) -> EmailOutbox:
    with session_factory() as session:
        return session.scalars(select(EmailOutbox).filter_by(template=template)).one()


def sale_refund_event(sale: dict, at: datetime, *, amount: int = 19900, total: int | None = None) -> dict:
    refund = pe.sale_refund(sale_id=sale["resource"]["id"], amount_cents=amount, total_refunded_cents=total, created=at)
    return pe.event("PAYMENT.SALE.REFUNDED", refund, created=at)


def test_a_completed_capture_queues_one_receipt_whichever_path_grants(seeded, now):
    order = pe.order(account_id=ACCOUNT, package_id="starter", amount_cents=STARTER_PRICE, order_id="ORDER20")
    capture = pe.capture(order_id="ORDER20", account_id=ACCOUNT, package_id="starter", amount_cents=STARTER_PRICE)
    with seeded.begin() as session:  # the capture endpoint: it publishes these ids after its commit
        endpoint = Outcome()
        paypal_orders.grant_capture(
            session, endpoint, paypal_orders.CaptureResult.from_order(pe.captured_order(order, capture)), at=now
        )
        assert len(endpoint.emails) == 1
    completed = pe.event("PAYMENT.CAPTURE.COMPLETED", capture)

    assert run(seeded, completed, now).emails == ()  # the webhook after it queues nothing more
    assert run(seeded, {**completed, "id": "WH-AGAIN"}, now).emails == ()

    assert emails(seeded) == Counter({"payment_confirmation": 1})
    receipt = email(seeded, "payment_confirmation")
    assert (receipt.account_id, receipt.idempotency_key) == (ACCOUNT, "email:payment_confirmation:paypal:ORDER20")
    assert receipt.context["amount_cents"] == STARTER_PRICE and receipt.context["credits"] == STARTER_CREDITS
    assert receipt.context["invoice_number"] == only(seeded, Invoice).number


def test_the_capture_webhook_that_grants_first_hands_its_receipt_to_the_worker(seeded, now):
    result = run(seeded, capture_event("ORDER21"), now)

    assert len(result.emails) == 1  # processing.Result.emails: published by the worker after the commit
    assert emails(seeded) == Counter({"payment_confirmation": 1})


def test_a_denied_capture_queues_one_payment_failed_per_order(seeded, now):
    run(seeded, capture_event("ORDER22", status="DECLINED"), now)
    run(seeded, capture_event("ORDER22", status="DECLINED"), now)  # another delivery, another event id

    assert emails(seeded) == Counter({"payment_failed": 1})
    failed = email(seeded, "payment_failed")
    assert failed.idempotency_key == "email:payment_failed:paypal:ORDER22"
    assert failed.context["amount_cents"] == STARTER_PRICE


def test_a_denial_arriving_after_the_completion_sends_no_failure_email(seeded, now):
    run(seeded, capture_event("ORDER23"), now)
    run(seeded, capture_event("ORDER23", status="DECLINED"), now)

    assert emails(seeded) == Counter({"payment_confirmation": 1})


def test_a_pending_capture_emails_nothing_until_it_completes(seeded, now):
    pending = pe.capture(
        order_id="ORDER24", account_id=ACCOUNT, package_id="starter", amount_cents=STARTER_PRICE, status="PENDING"
    )
    run(seeded, pe.event("PAYMENT.CAPTURE.PENDING", pending), now)
    assert emails(seeded) == Counter()

    run(seeded, capture_event("ORDER24", capture_id=pending["id"]), now)
    assert emails(seeded) == Counter({"payment_confirmation": 1})


def test_capture_refunds_email_once_per_refunded_level_and_low_credits_once(seeded, now):
    completed = capture_event("ORDER25")
    run(seeded, completed, now)
    capture_id = completed["resource"]["id"]
    half = pe.event("PAYMENT.CAPTURE.REFUNDED", pe.refund(capture_id=capture_id, amount_cents=500))
    rest = pe.event(
        "PAYMENT.CAPTURE.REFUNDED", pe.refund(capture_id=capture_id, amount_cents=499, total_refunded_cents=999)
    )

    run(seeded, half, now)  # 250 credits back: 250 left, above the threshold of 100
    run(seeded, half, now)
    run(seeded, rest, now)  # the rest: 0 left, below it
    run(seeded, {**rest, "id": "WH-REST-AGAIN"}, now)

    assert balance(seeded) == 0
    assert emails(seeded) == Counter({"payment_confirmation": 1, "refund_notification": 2, "low_credits": 1})
    with seeded() as session:
        refunds = session.scalars(
            select(EmailOutbox).filter_by(template="refund_notification").order_by(EmailOutbox.id)
        )
        assert [(r.context["amount_cents"], r.context["credits_reversed"]) for r in refunds] == [(500, 250), (499, 250)]
    assert email(seeded, "low_credits").context == {"name": None, "balance": 0, "threshold": 100}


def test_activation_emails_once_however_often_the_subscription_activates(seeded, now):
    run(seeded, activated(now), now)
    run(seeded, activated(now, created=now + timedelta(seconds=5)), now)
    run(seeded, status_event("BILLING.SUBSCRIPTION.SUSPENDED", now, now + timedelta(days=2)), now)
    run(seeded, activated(now, created=now + timedelta(days=3)), now)  # reactivated

    assert emails(seeded) == Counter({"subscription_activated": 1})
    sent = email(seeded, "subscription_activated")
    assert sent.idempotency_key == "email:subscription_activated:paypal:I-SUB1"
    assert sent.context["credits"] == GROWTH_CREDITS
    assert sent.context["period_end"] == (now + timedelta(days=30)).date().isoformat()


def test_an_activation_delivered_after_its_cancellation_sends_no_activation_email(seeded, now):
    run(seeded, status_event("BILLING.SUBSCRIPTION.CANCELLED", now, now + timedelta(days=3)), now)
    run(seeded, activated(now), now)

    assert emails(seeded) == Counter()


def test_activation_remembers_the_subscribers_address_only_when_none_is_known(seeded, now):
    with seeded.begin() as session:
        ensure_account(session, "acct_known", email="known@example.com")
    run(seeded, activated(now), now)
    other = activated(now, sub_id="I-KNOWN")
    other["resource"]["custom_id"] = "acct_known:growth"
    run(seeded, other, now)

    with seeded() as session:
        assert session.get(Account, ACCOUNT).email == "customer@example.com"
        assert session.get(Account, "acct_known").email == "known@example.com"


def test_the_first_sale_is_confirmed_and_each_renewal_emails_once(seeded, now):
    run(seeded, activated(now), now)
    first = sale_event(now + timedelta(seconds=30))
    renewal = sale_event(now + timedelta(days=30))

    for evt in (first, first, renewal, renewal, {**renewal, "id": "WH-RENEWAL-AGAIN"}):
        run(seeded, evt, now + timedelta(days=30))

    assert emails(seeded) == Counter(
        {"subscription_activated": 1, "payment_confirmation": 1, "subscription_renewal": 1}
    )
    renewed = email(seeded, "subscription_renewal")
    assert renewed.idempotency_key == f"email:subscription_renewal:paypal:{renewal['resource']['id']}"
    assert (renewed.context["amount_cents"], renewed.context["credits"]) == (19900, GROWTH_CREDITS)


def test_a_sale_refund_reverses_the_periods_credits_once_with_one_email(seeded, now):
    run(seeded, activated(now), now)
    first = sale_event(now + timedelta(seconds=30))
    run(seeded, first, now)
    refunded = sale_refund_event(first, now + timedelta(days=1))

    run(seeded, refunded, now)
    run(seeded, refunded, now)
    run(seeded, {**refunded, "id": "WH-SALE-REFUND-AGAIN"}, now)

    assert balance(seeded) == 0
    payment = only(seeded, Payment)
    assert (payment.status, payment.amount_refunded_cents) == ("refunded", 19900)
    assert emails(seeded)["refund_notification"] == 1 and emails(seeded)["low_credits"] == 1
    assert email(seeded, "refund_notification").context["credits_reversed"] == GROWTH_CREDITS


def test_a_partial_sale_refund_reverses_its_share_of_a_renewal(seeded, now):
    run(seeded, activated(now), now)
    renewal = sale_event(now + timedelta(days=30))
    run(seeded, renewal, now + timedelta(days=30))

    run(seeded, sale_refund_event(renewal, now + timedelta(days=31), amount=9950), now + timedelta(days=31))

    assert balance(seeded) == 2 * GROWTH_CREDITS - GROWTH_CREDITS // 2
    with seeded() as session:
        refunded = session.scalars(select(Payment).filter_by(provider_payment_id=renewal["resource"]["id"])).one()
        assert (refunded.status, refunded.amount_refunded_cents) == ("partially_refunded", 9950)


def test_a_sale_refund_before_its_sale_waits_then_reverses(seeded, now):
    run(seeded, activated(now), now)
    first = sale_event(now + timedelta(seconds=30))
    refunded = sale_refund_event(first, now + timedelta(days=1))

    with pytest.raises(RetryLater):
        run(seeded, refunded, now)
    run(seeded, first, now)
    run(seeded, refunded, now)  # the retry

    assert balance(seeded) == 0
    assert emails(seeded)["refund_notification"] == 1


def test_a_sale_refund_without_its_amount_total_counts_this_refund(seeded, now):
    run(seeded, activated(now), now)
    first = sale_event(now + timedelta(seconds=30))
    run(seeded, first, now)
    refunded = sale_refund_event(first, now + timedelta(days=1), amount=19900)
    del refunded["resource"]["total_refunded_amount"]
    del refunded["resource"]["sale_id"]  # the sale link names it too

    run(seeded, refunded, now)

    assert balance(seeded) == 0
