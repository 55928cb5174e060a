from __future__ import annotations

import logging
import threading

import pytest

from shared import credentials
from shared.billing.accounts import ensure_account
from shared.email import delivery, outbox
from shared.email.render import SAMPLES
from shared.models import EmailOutbox
from shared.outcome import Outcome
from tests.fakes.resend_api import SERVER_ERROR, VALIDATION_ERROR
from tests.fakes.smtp import LocalSmtp
from tests.statements import Statements

API_KEY = "re_test_0123456789abcdef"


@pytest.fixture
def resend_settings(settings, seeded, fake_resend):
    with seeded.begin() as session:
        credentials.set_provider(session, "resend", api_key=API_KEY, config={"from": "Billing <billing@example.com>"})
    return settings.with_overrides(resend_api_url=fake_resend.url)


def _queue(session_factory, template="payment_confirmation", context=None, key="stripe:invoice:in_1:confirmation"):
    with session_factory.begin() as session:
        ensure_account(session, "acct_1", email="ada@example.com", name="Ada")
        outcome = Outcome()
        outbox.queue_email(
            session,
            outcome,
            account_id="acct_1",
            recipient="ada@example.com",
            template=template,
            context=SAMPLES[template] if context is None else context,
            idempotency_key=key,
        )
        return outcome.emails[0]


def _send(session_factory, outbox_id, settings, now):
    return delivery.send_outbox_email(session_factory, outbox_id, settings=settings, clock=lambda: now)


def _row(session_factory, outbox_id) -> EmailOutbox:
    with session_factory() as session:
        return session.get(EmailOutbox, outbox_id)


def test_row_is_sent_once_through_resend_with_its_key(seeded, resend_settings, fake_resend, now):
    outbox_id = _queue(seeded)

    result = _send(seeded, outbox_id, resend_settings, now)
    again = _send(seeded, outbox_id, resend_settings, now)

    assert result.outcome == delivery.SENT and again.outcome == delivery.ALREADY_DONE
    [email] = fake_resend.emails
    assert len(fake_resend.calls("POST", "/emails")) == 1
    assert email["idempotency_key"] == "stripe:invoice:in_1:confirmation"
    assert email["to"] == ["ada@example.com"]
    assert email["subject"] == "Payment received: $29.00"
    assert "BH-2026-000042" in email["text"] and "BH-2026-000042" in email["html"]
    row = _row(seeded, outbox_id)
    assert (row.status, row.backend, row.provider_message_id, row.attempts) == ("sent", "resend", email["id"], 1)
    assert row.sent_at == now


def test_a_batch_sends_through_the_providers_row_it_read_once(seeded, resend_settings, fake_resend, now):
    first, second = _queue(seeded, key="batch:1"), _queue(seeded, key="batch:2")
    provider = delivery.read_provider(seeded)  # once for the batch, then used after its session closed
    with seeded.begin() as session:  # an operator's change lands mid-batch: the next batch sees it
        credentials.get_provider(session, "resend").active = False

    results = [
        delivery.send_outbox_email(seeded, pk, settings=resend_settings, clock=lambda: now, provider=provider)
        for pk in (first, second)
    ]

    assert [r.outcome for r in results] == [delivery.SENT, delivery.SENT]
    assert sorted(e["idempotency_key"] for e in fake_resend.emails) == ["batch:1", "batch:2"]
    assert {_row(seeded, pk).backend for pk in (first, second)} == {"resend"}


def _send_batch(session_factory, outbox_ids, settings, now):
    provider = delivery.read_provider(session_factory)
    return delivery.send_outbox_emails(
        session_factory, outbox_ids, settings=settings, clock=lambda: now, provider=provider
    )


def test_a_batch_sends_each_row_once_in_one_transaction(seeded, resend_settings, fake_resend, now):
    done, failing, fresh = (_queue(seeded, key=f"batch:{n}") for n in range(3))
    _send(seeded, done, resend_settings, now)
    fake_resend.fail_next("/emails", 500, SERVER_ERROR)  # the batch's first send: `failing`

    with Statements(seeded) as statements:
        results = _send_batch(seeded, [done, failing, fresh, fresh], resend_settings, now)

    assert {pk: r.outcome for pk, r in results.items()} == {
        done: delivery.ALREADY_DONE,
        failing: delivery.RETRY,
        fresh: delivery.SENT,
    }
    # One lock for the rows, one UPDATE for each set of columns written (a retry's, a send's).
    assert len([s for s in statements.reading("email_outbox") if s.startswith("select")]) == 1
    assert len(statements.starting("update email_outbox")) == 2
    assert [(r.status, r.attempts) for r in (_row(seeded, pk) for pk in (done, failing, fresh))] == [
        ("sent", 1),
        ("pending", 1),
        ("sent", 1),
    ]
    assert "500" in _row(seeded, failing).last_error
    assert sorted(e["idempotency_key"] for e in fake_resend.emails) == ["batch:0", "batch:2"]


def test_a_batch_that_fails_leaves_its_rows_pending_and_each_is_sent_once_alone(
    seeded, resend_settings, fake_resend, now
):
    good = _queue(seeded, key="batch:good")
    broken_context = {**SAMPLES["payment_confirmation"], "amount_cents": "lots"}  # no template error: a bug's
    broken = _queue(seeded, context=broken_context, key="batch:broken")

    assert _send_batch(seeded, [good, broken], resend_settings, now) is None

    # Rolled back whole: `good` went out, but its row says pending, and sent again alone with its
    # key it is the same email.
    assert [_row(seeded, pk).status for pk in (good, broken)] == ["pending", "pending"]
    assert _send(seeded, good, resend_settings, now).outcome == delivery.SENT
    with pytest.raises(TypeError):
        _send(seeded, broken, resend_settings, now)
    assert [e["idempotency_key"] for e in fake_resend.emails] == ["batch:good"]
    assert len(fake_resend.calls("POST", "/emails")) == 2


def test_a_send_writes_its_row_once_with_the_address_read_from_the_account(seeded, resend_settings, now):
    with seeded.begin() as session:
        ensure_account(session, "acct_1", email="ada@example.com", name="Ada")
        outcome = Outcome()
        context = SAMPLES["payment_confirmation"]
        outbox.queue_email(
            session,
            outcome,
            account_id="acct_1",
            recipient=None,
            template="payment_confirmation",
            context=context,
            idempotency_key="k:address-later",
        )
    with Statements(seeded) as statements:
        result = _send(seeded, outcome.emails[0], resend_settings, now)

    assert result.outcome == delivery.SENT
    # The address, the attempt and the outcome in one UPDATE.
    assert len(statements.starting("update email_outbox")) == 1
    row = _row(seeded, outcome.emails[0])
    assert (row.recipient, row.status, row.attempts, row.sent_at) == ("ada@example.com", "sent", 1, now)


def test_server_error_leaves_the_row_pending_and_the_retry_sends_once(seeded, resend_settings, fake_resend, now):
    outbox_id = _queue(seeded)
    fake_resend.fail_next("/emails", 500, SERVER_ERROR)

    first = _send(seeded, outbox_id, resend_settings, now)
    row = _row(seeded, outbox_id)
    assert first.outcome == delivery.RETRY
    assert (row.status, row.attempts) == ("pending", 1)
    assert "500" in row.last_error

    second = _send(seeded, outbox_id, resend_settings, now)
    row = _row(seeded, outbox_id)
    assert second.outcome == delivery.SENT
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)
    assert len(fake_resend.emails) == 1
    keys = {c.header("Idempotency-Key") for c in fake_resend.calls("POST", "/emails")}
    assert keys == {"stripe:invoice:in_1:confirmation"}


def test_validation_error_fails_the_row_with_the_error(seeded, resend_settings, fake_resend, now):
    outbox_id = _queue(seeded)
    fake_resend.fail_next("/emails", 422, VALIDATION_ERROR)

    result = _send(seeded, outbox_id, resend_settings, now)
    assert result.outcome == delivery.FAILED
    row = _row(seeded, outbox_id)
    assert row.status == "failed"
    assert "422 validation_error" in row.last_error
    assert _send(seeded, outbox_id, resend_settings, now).outcome == delivery.ALREADY_DONE
    assert fake_resend.emails == []


def test_concurrent_sends_of_one_row_deliver_one_email(seeded, resend_settings, fake_resend, now):
    outbox_id = _queue(seeded)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(_send(seeded, outbox_id, resend_settings, now).outcome))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [delivery.ALREADY_DONE] * 3 + [delivery.SENT]
    assert len(fake_resend.emails) == 1


def test_missing_context_value_fails_the_row(seeded, resend_settings, fake_resend, now):
    outbox_id = _queue(seeded, template="password_reset", context={"name": "Ada"}, key="reset-1")
    result = _send(seeded, outbox_id, resend_settings, now)
    assert result.outcome == delivery.FAILED
    assert "reset_url" in _row(seeded, outbox_id).last_error
    assert fake_resend.emails == []


def test_without_resend_smtp_sends_it(seeded, settings, now):
    smtp = LocalSmtp().start()
    try:
        outbox_id = _queue(seeded)
        result = _send(seeded, outbox_id, settings.with_overrides(smtp_host="127.0.0.1", smtp_port=smtp.port), now)
    finally:
        smtp.stop()
    assert (result.outcome, result.backend) == (delivery.SENT, "smtp")
    [message] = smtp.inbox.messages
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Payment received: $29.00"
    assert _row(seeded, outbox_id).backend == "smtp"


def test_an_inactive_resend_row_falls_back(seeded, settings, now):
    with seeded.begin() as session:
        credentials.set_provider(session, "resend", api_key=API_KEY, active=False, config={"from": "b@example.com"})
    outbox_id = _queue(seeded)
    assert _send(seeded, outbox_id, settings, now).backend == "log"


def test_with_neither_the_log_says_so_without_personal_data(seeded, settings, now, caplog):
    outbox_id = _queue(seeded, template="password_reset", key="reset-2")
    with caplog.at_level(logging.INFO, logger="billhook.emails"):
        result = _send(seeded, outbox_id, settings, now)
    assert (result.outcome, result.backend) == (delivery.SENT, "log")
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert "email written to the log" in line and '"backend":"log"' in line
    assert "ada@example.com" not in line and "token=sample" not in line
    row = _row(seeded, outbox_id)
    assert (row.status, row.backend, row.provider_message_id) == ("sent", "log", f"log-{outbox_id}")


def test_address_unknown_at_queue_time_is_read_from_the_account_when_known(seeded, resend_settings, fake_resend, now):
    with seeded.begin() as session:
        ensure_account(session, "acct_9")
        outcome = Outcome()
        outbox.queue_account_email(
            session,
            outcome,
            "acct_9",
            template="low_credits",
            context={"balance": 5, "threshold": 100},
            idempotency_key="lc-1",
        )
        [outbox_id] = outcome.emails

    assert _send(seeded, outbox_id, resend_settings, now).outcome == delivery.RETRY
    assert "no email address" in _row(seeded, outbox_id).last_error
    with seeded.begin() as session:
        ensure_account(session, "acct_9", email="late@example.com")

    assert _send(seeded, outbox_id, resend_settings, now).outcome == delivery.SENT
    [email] = fake_resend.emails
    assert email["to"] == ["late@example.com"]
    assert _row(seeded, outbox_id).recipient == "late@example.com"
