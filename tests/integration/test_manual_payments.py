"""Manual payments and adjustments on PostgreSQL: requests over real HTTP, concurrent operator
decisions (exactly one wins), and the real worker's lapse task ending an unpaid period."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import func, select

from shared import credentials
from shared.billing import ledger, manual_payments
from shared.models import CreditLedgerEntry, EmailOutbox, Payment, Subscription
from shared.outcome import Outcome
from tests.integration import support
from worker.messages import LAPSE_MANUAL_SUBSCRIPTIONS

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ACCOUNT = "acct_manual_it"
SERVICE = {"Authorization": "Bearer test-service-token"}


@pytest.fixture
def manual_on(pg_session_factory):
    with pg_session_factory.begin() as session:
        credentials.set_provider(session, "manual", config={"instructions": "IBAN DE00 ..."})
    return pg_session_factory


def request_over_http(live_web, key: str, **item) -> dict:
    body = {
        "account_id": ACCOUNT,
        "method": "bank_transfer",
        "idempotency_key": key,
        **(item or {"package_id": "starter"}),
    }
    response = requests.post(f"{live_web.url}/api/v1/internal/manual-payments", json=body, headers=SERVICE, timeout=30)
    assert response.status_code in (200, 201), response.text
    return response.json()


def decide_at_once(factory, pid: str, approvals: list[bool]) -> list[bool]:
    """Each decision in a thread of its own, released together; returns who decided."""
    barrier = threading.Barrier(len(approvals))

    def one(approve: bool) -> bool:
        with factory.begin() as session:
            barrier.wait()
            decision = manual_payments.decide(
                session,
                Outcome(),
                pid,
                approve=approve,
                actor="ops:approver" if approve else "ops:rejecter",
                reason=None,
                at=datetime.now(UTC),
            )
            return decision.decided_now

    with ThreadPoolExecutor(len(approvals)) as pool:
        return list(pool.map(one, approvals))


def test_concurrent_approve_and_reject_exactly_one_wins(manual_on, live_web):
    pids = [request_over_http(live_web, f"race-{n}")["id"] for n in range(6)]
    assert request_over_http(live_web, "race-0")["duplicate"]  # a retried request: the same payment

    for pid in pids:
        assert sorted(decide_at_once(manual_on, pid, [True, False])) == [False, True]

    with manual_on() as session:
        statuses = session.scalars(select(Payment.status).where(Payment.provider_payment_id.in_(pids))).all()
        approved = statuses.count("succeeded")
        assert approved + statuses.count("rejected") == len(pids)
        assert ledger.balance(session, ACCOUNT) == 500 * approved
        templates = session.scalars(select(EmailOutbox.template)).all()
    assert templates.count("payment_approved") == approved
    assert templates.count("payment_rejected") == len(pids) - approved


def test_two_concurrent_approvals_grant_once(manual_on, live_web):
    pid = request_over_http(live_web, "twice")["id"]

    assert sorted(decide_at_once(manual_on, pid, [True, True, True])) == [False, False, True]

    with manual_on() as session:
        assert ledger.balance(session, ACCOUNT) == 500
        assert session.scalar(select(func.count()).select_from(EmailOutbox)) == 1


def test_an_unpaid_manual_period_lapses_by_the_workers_beat_task(manual_on, live_web, worker_factory, pg_settings):
    pid = request_over_http(live_web, "plan-1", plan_id="starter")["id"]
    long_ago = datetime.now(UTC) - timedelta(days=40)
    with manual_on.begin() as session:
        manual_payments.decide(session, Outcome(), pid, approve=True, actor="ops:eve", reason=None, at=long_ago)
    worker_factory(pg_settings, concurrency=1)

    for _ in range(2):  # as beat would, again and again
        live_web.celery.send_task(LAPSE_MANUAL_SUBSCRIPTIONS, queue=pg_settings.queue_name)

    def lapsed():
        with manual_on() as session:
            return session.scalars(select(Subscription.status)).one() == "canceled"

    support.wait_for(lapsed, 20, message="the manual subscription lapsed")
    with manual_on() as session:
        assert ledger.balance(session, ACCOUNT) == 5_000  # the period's credits stay: it was paid


def test_concurrent_adjustments_with_one_key_apply_once(pg_session_factory, live_web):
    with pg_session_factory.begin() as session:
        from shared.billing.accounts import ensure_account

        ensure_account(session, ACCOUNT)
    body = {"account_id": ACCOUNT, "amount": -75, "reason": "chargeback fee", "idempotency_key": "adj-race"}

    def post(_):
        return requests.post(
            f"{live_web.url}/api/v1/internal/credits/adjust", json=body, headers=SERVICE, timeout=30
        ).status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = sorted(pool.map(post, range(4)))

    assert statuses == [200, 200, 200, 201]
    with pg_session_factory() as session:
        assert session.scalar(select(func.count()).select_from(CreditLedgerEntry)) == 1
        assert ledger.balance(session, ACCOUNT) == -75
