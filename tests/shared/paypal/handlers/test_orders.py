"""Orders v2: captures, denials, refunds and their emails, exactly once in any order."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from shared import processing
from shared.errors import PermanentError, RetryLater
from shared.models import Account, EmailOutbox, Invoice, Payment, WebhookEvent
from shared.outcome import Outcome
from shared.paypal import orders as paypal_orders
from tests.factories import paypal_events as pe
from tests.shared.paypal.handlers.support import (
    ACCOUNT,
    STARTER_CREDITS,
    STARTER_PRICE,
    balance,
    capture_event,
    count,
    credit_notes,
    email,
    emails,
    only,
    run,
)


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

    for refund in (rest, half, rest, half):  # the second refund arrives first, each twice
        run(seeded, pe.event("PAYMENT.CAPTURE.REFUNDED", refund, event_id=f"WH-{refund['id']}"), now)

    assert balance(seeded) == 0
    assert only(seeded, Payment).amount_refunded_cents == 999
    # the cumulative total reached 999 at once: one credit note for it, none for the late half
    assert credit_notes(seeded) == [(only(seeded, Invoice).number, "refund", 999)]


def test_refund_before_its_capture_waits_then_reverses(seeded, now):
    completed = capture_event("ORDER10")
    refunded = pe.event("PAYMENT.CAPTURE.REFUNDED", pe.refund(capture_id=completed["resource"]["id"], amount_cents=999))

    with pytest.raises(RetryLater):
        run(seeded, refunded, now)
    run(seeded, completed, now)
    run(seeded, refunded, now)  # the retry

    assert balance(seeded) == 0


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
