"""Emails end to end: signed events over HTTP, a real Celery worker on PostgreSQL and Redis, and a
local stand-in for api.resend.com. Each wired event sends exactly one email, under duplicate
delivery, duplicate send tasks and a worker retry."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select

from cli.embedded_redis import free_port
from shared import credentials
from shared.billing.accounts import ensure_account
from shared.email import outbox
from shared.models import EmailOutbox
from shared.outcome import Outcome
from tests.factories import stripe_events as se
from tests.fakes.resend_api import SERVER_ERROR, VALIDATION_ERROR
from tests.integration import support

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

RESEND_KEY = "re_test_integration_0123456789"
SERVICE_AUTH = {"Authorization": "Bearer test-service-token"}


@pytest.fixture
def email_settings(pg_settings, pg_session_factory, fake_resend):
    with pg_session_factory.begin() as session:
        credentials.set_provider(
            session, "resend", api_key=RESEND_KEY, config={"from": "Billing <billing@example.com>"}
        )
    return pg_settings.with_overrides(resend_api_url=fake_resend.url)


def _rows(factory) -> list[EmailOutbox]:
    with factory() as session:
        return list(session.scalars(select(EmailOutbox).order_by(EmailOutbox.id)))


def _all_sent(factory, expected: int):
    rows = _rows(factory)
    return rows if len(rows) == expected and all(r.status == outbox.SENT for r in rows) else None


def _wait_all_sent(factory, expected: int, worker, timeout: float = 40.0) -> list[EmailOutbox]:
    try:
        return support.wait_for(lambda: _all_sent(factory, expected), timeout, message=f"{expected} emails sent")
    except AssertionError as exc:
        seen = [(r.account_id, r.template, r.status, r.last_error) for r in _rows(factory)]
        raise AssertionError(f"{exc}\noutbox: {seen}\nworker log:\n{worker.log_tail()}") from None


def _post_twice_and_again(web, evt: dict) -> None:
    """The same delivery twice (a retry of the POST), then the same object under a new event id."""
    for copy in (evt, evt, {**evt, "id": se.unique("evt")}):
        response = web.post_event(copy)
        assert response.status_code == 200, response.text


def _email_log_lines(worker, outbox_id: int) -> list[dict]:
    lines = []
    for line in worker.log_path.read_text(errors="replace").splitlines():
        start = line.find('{"msg":"email"')
        if start >= 0:
            entry = json.loads(line[start:])
            if entry.get("outbox") == outbox_id:
                lines.append(entry)
    return lines


def _purchase(account_id: str, email: str, package_id: str = "starter", amount: int = 999) -> tuple[dict, str]:
    intent = se.unique("pi")
    obj = se.checkout_session(
        account_id=account_id,
        mode="payment",
        package_id=package_id,
        amount_total=amount,
        payment_intent=intent,
        email=email,
    )
    return se.event("checkout.session.completed", obj, created=int(time.time()) - 600), intent


def test_each_wired_event_sends_exactly_one_email_under_duplicate_delivery(
    email_settings, pg_session_factory, worker_factory, live_web_factory, fake_resend
):
    worker = worker_factory(email_settings, concurrency=2)
    web = live_web_factory(email_settings)
    now = int(time.time())

    # A subscription: activation, the first invoice's receipt, a renewal, a failed renewal.
    checkout, first_invoice, ids = support.subscription_start("acct_sub", created=now - 3 * 86_400)
    renewal = support.renewal(ids, "acct_sub", period_start=now - 86_400, created=now - 86_400)
    failed_obj = support.renewal(ids, "acct_sub", period_start=now, created=now)["data"]["object"]
    failed_obj.update(status="open", amount_paid=0, amount_remaining=19900, id=se.unique("in"))
    failed = se.event("invoice.payment_failed", failed_obj, created=now)
    # A credit purchase refunded in full: receipt, refund, and the balance falls below 100.
    purchase, intent = _purchase("acct_credits", "credits@example.com")
    refund = se.event("charge.refunded", se.charge(payment_intent=intent, amount=999, amount_refunded=999), created=now)

    for evt in (checkout, first_invoice, renewal, failed, purchase, refund):
        _post_twice_and_again(web, evt)

    rows = _wait_all_sent(pg_session_factory, 7, worker)
    by_account = Counter((r.account_id, r.template) for r in rows)
    assert by_account == Counter(
        {
            ("acct_sub", "subscription_activated"): 1,
            ("acct_sub", "payment_confirmation"): 1,
            ("acct_sub", "subscription_renewal"): 1,
            ("acct_sub", "payment_failed"): 1,
            ("acct_credits", "payment_confirmation"): 1,
            ("acct_credits", "refund_notification"): 1,
            ("acct_credits", "low_credits"): 1,
        }
    )
    time.sleep(0.5)  # a duplicate send would land now: none does
    assert len(fake_resend.emails) == 7
    assert sorted(e["idempotency_key"] for e in fake_resend.emails) == sorted(r.idempotency_key for r in rows)
    assert {r.provider_message_id for r in rows} == {e["id"] for e in fake_resend.emails}
    assert {r.backend for r in rows} == {"resend"}
    assert {tuple(e["to"]) for e in fake_resend.emails} == {("buyer@example.com",), ("credits@example.com",)}
    [call] = [c for c in fake_resend.calls("POST", "/emails") if "low_credits" in c.body.decode()]
    assert call.header("Authorization") == f"Bearer {RESEND_KEY}"
    assert call.json["from"] == "Billing <billing@example.com>"


def test_a_resend_outage_is_retried_by_the_worker_and_sends_once(
    email_settings, pg_session_factory, worker_factory, live_web_factory, fake_resend
):
    fake_resend.fail_next("/emails", 500, SERVER_ERROR)
    worker = worker_factory(email_settings, concurrency=2)
    web = live_web_factory(email_settings)
    purchase, _ = _purchase("acct_retry", "retry@example.com")

    assert web.post_event(purchase).status_code == 200

    [row] = _wait_all_sent(pg_session_factory, 1, worker)
    assert [e["outcome"] for e in _email_log_lines(worker, row.id)] == ["retry", "sent"]
    assert row.attempts == 2 and row.last_error is None
    calls = fake_resend.calls("POST", "/emails")
    assert len(calls) == 2 and {c.header("Idempotency-Key") for c in calls} == {row.idempotency_key}
    assert len(fake_resend.emails) == 1


def test_a_validation_error_fails_the_email_without_retrying(
    email_settings, pg_session_factory, worker_factory, live_web_factory, fake_resend
):
    fake_resend.fail_next("/emails", 422, VALIDATION_ERROR)
    worker = worker_factory(email_settings, concurrency=1)
    web = live_web_factory(email_settings)
    purchase, _ = _purchase("acct_invalid", "invalid@example.com")

    assert web.post_event(purchase).status_code == 200

    row = support.wait_for(
        lambda: next((r for r in _rows(pg_session_factory) if r.status == outbox.FAILED), None),
        timeout=30,
        message="email failed",
    )
    assert row.attempts == 1 and "422 validation_error" in row.last_error
    assert [e["outcome"] for e in _email_log_lines(worker, row.id)] == ["failed"]
    assert fake_resend.emails == []


def test_duplicate_send_tasks_for_one_row_send_one_email(
    email_settings, pg_session_factory, worker_factory, publisher, celery_app, fake_resend
):
    from worker.messages import enqueue_email

    worker = worker_factory(email_settings, concurrency=4)
    with pg_session_factory.begin() as session:
        ensure_account(session, "acct_dup", email="dup@example.com")
        outcome = Outcome()
        outbox.queue_account_email(
            session, outcome, "acct_dup", template="welcome", context={}, idempotency_key="dup-1"
        )
        [row_id] = outcome.emails

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: enqueue_email(celery_app, row_id), range(4)))

    support.wait_for(lambda: len(_email_log_lines(worker, row_id)) == 4, timeout=30, message="4 send tasks ran")
    assert sorted(e["outcome"] for e in _email_log_lines(worker, row_id)) == ["already_done"] * 3 + ["sent"]
    assert len(fake_resend.emails) == 1 and len(fake_resend.calls("POST", "/emails")) == 1


def test_internal_api_email_is_sent_once_and_a_lost_enqueue_is_swept(
    email_settings, pg_session_factory, worker_factory, live_web_factory, celery_app, fake_resend
):
    from worker.messages import SWEEP_OUTBOX

    worker_factory(email_settings, concurrency=2)
    web = live_web_factory(email_settings)
    body = {
        "template": "email_verification",
        "to": "new@example.com",
        "context": {"verification_url": "https://app.example.com/verify?t=1"},
        "idempotency_key": "verify-new-1",
    }
    responses = [
        requests.post(f"{web.url}/api/v1/internal/emails", json=body, headers=SERVICE_AUTH, timeout=10)
        for _ in range(2)
    ]
    assert [r.status_code for r in responses] == [202, 200]
    support.wait_for(lambda: _all_sent(pg_session_factory, 1), timeout=30, message="verification sent")

    # A web whose broker is down: the row commits, its publish fails, the outbox sweep sends it.
    dead_broker = live_web_factory(email_settings.with_overrides(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    response = requests.post(
        f"{dead_broker.url}/api/v1/internal/emails",
        json={"template": "welcome", "to": "swept@example.com", "idempotency_key": "welcome-swept"},
        headers=SERVICE_AUTH,
        timeout=30,
    )
    assert response.status_code == 202

    def swept():
        celery_app.send_task(SWEEP_OUTBOX, queue=email_settings.queue_name)
        return _all_sent(pg_session_factory, 2)

    support.wait_for(swept, timeout=30, interval=0.5, message="the swept email sent")
    assert sorted(e["to"][0] for e in fake_resend.emails) == ["new@example.com", "swept@example.com"]


def test_a_worker_killed_mid_send_leaves_the_row_to_the_sweep_and_resend_dedupes_the_retry(
    email_settings, pg_session_factory, worker_factory, celery_app, fake_resend
):
    from worker.messages import SWEEP_OUTBOX, enqueue_email

    fake_resend.stall_next("/emails", 2.0)
    first = worker_factory(email_settings, concurrency=1)
    with pg_session_factory.begin() as session:
        ensure_account(session, "acct_kill", email="kill@example.com")
        outcome = Outcome()
        outbox.queue_account_email(
            session, outcome, "acct_kill", template="welcome", context={}, idempotency_key="kill-1"
        )
        [row_id] = outcome.emails
    enqueue_email(celery_app, row_id)

    support.wait_for(lambda: fake_resend.calls("POST", "/emails"), timeout=20, message="the send reached Resend")
    first.kill()  # Resend accepts the email after the worker is gone; billhook never hears the answer
    support.wait_for(lambda: fake_resend.emails, timeout=10, message="Resend accepted the first request")
    with pg_session_factory() as session:
        assert session.get(EmailOutbox, row_id).status == outbox.PENDING  # the send's transaction rolled back

    second = worker_factory(email_settings, concurrency=1)

    def swept():
        celery_app.send_task(SWEEP_OUTBOX, queue=email_settings.queue_name)
        return _all_sent(pg_session_factory, 1)

    [row] = support.wait_for(swept, timeout=30, interval=0.5, message="the row sent after the sweep")
    calls = fake_resend.calls("POST", "/emails")
    assert len(calls) == 2 and {c.header("Idempotency-Key") for c in calls} == {"kill-1"}
    assert len(fake_resend.emails) == 1 and row.provider_message_id == fake_resend.emails[0]["id"]
    assert [e["outcome"] for e in _email_log_lines(second, row_id)][-1] == "sent"
