"""A worker's batch of events in one transaction on PostgreSQL: the invoices of concurrent batches
are numbered at their commits without a gap or a repeat, and a batch that would wait on a lock
another transaction holds gives up at once and leaves its events to run one by one."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from shared import processing
from shared.billing import ledger
from shared.billing.accounts import ensure_account
from shared.models import Account, EmailOutbox, Invoice
from tests.factories import stripe_events as se
from tests.factories.inbox import store_event

pytestmark = pytest.mark.postgres

BATCHES, EVENTS = 6, 4


def _purchase(account_id: str) -> dict:
    obj = se.checkout_session(account_id=account_id, mode="payment", package_id="starter")
    return se.event("checkout.session.completed", obj)


def _clock() -> datetime:
    return datetime.now(UTC)


def test_concurrent_batches_number_their_invoices_without_a_gap_or_a_repeat(pg_session_factory):
    batches = [
        [store_event(pg_session_factory, _purchase(f"acct_nb_{b}_{e}")) for e in range(EVENTS)] for b in range(BATCHES)
    ]
    barrier = threading.Barrier(BATCHES)
    ran: list[list[processing.Result] | None] = []

    def run(pks: list[int]) -> None:
        barrier.wait()
        ran.append(processing.process_batch(pg_session_factory, pks, clock=_clock))

    threads = [threading.Thread(target=run, args=(pks,)) for pks in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(ran) == BATCHES and all(results is not None and len(results) == EVENTS for results in ran)
    with pg_session_factory() as session:
        numbers = dict(session.execute(select(Invoice.payment_id, Invoice.number)).all())
        receipts = session.scalars(select(EmailOutbox).where(EmailOutbox.template == "payment_confirmation")).all()
        balances = {ledger.balance(session, f"acct_nb_{b}_{e}") for b in range(BATCHES) for e in range(EVENTS)}
    taken = sorted(int(number.rsplit("-", 1)[1]) for number in numbers.values())
    assert len(taken) == BATCHES * EVENTS
    assert taken == list(range(taken[0], taken[0] + BATCHES * EVENTS))  # no gap, no repeat
    assert sorted(r.context["invoice_number"] for r in receipts) == sorted(numbers.values())
    assert balances == {500}


def test_a_batch_that_would_wait_on_a_held_lock_gives_up_and_leaves_its_events(pg_session_factory):
    with pg_session_factory.begin() as session:
        ensure_account(session, "acct_held", email="held@example.com")
    pks = [store_event(pg_session_factory, _purchase(a)) for a in ("acct_free", "acct_held")]
    holder = pg_session_factory()
    holder.execute(select(Account).where(Account.id == "acct_held").with_for_update())
    release = threading.Timer(10, holder.rollback)  # should the batch wait after all, the test ends
    release.start()
    try:
        started = time.monotonic()
        results = processing.process_batch(pg_session_factory, pks, clock=_clock)
        waited = time.monotonic() - started
    finally:
        release.cancel()
        holder.rollback()
        holder.close()

    assert results is None  # rolled back: the caller runs each event on its own
    assert waited < 5  # gave up on the lock (BATCH_LOCK_TIMEOUT), did not wait for its holder
    with pg_session_factory() as session:
        assert ledger.balance(session, "acct_free") == 0  # the whole batch rolled back
    # Once the lock is free, each event runs on its own as the worker then runs them.
    assert [processing.process_event(pg_session_factory, pk, clock=_clock).outcome for pk in pks] == ["done"] * 2
