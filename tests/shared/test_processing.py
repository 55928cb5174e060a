"""process_event's transaction rules, failures and the sweeper."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError

from shared import event_ops, processing
from shared.billing import ledger
from shared.errors import PermanentError, RetryLater
from shared.models import Account, CreditLedgerEntry, EmailOutbox, Invoice, Subscription, WebhookEvent
from tests.conftest import Enqueued
from tests.factories import stripe_events as se
from tests.factories.inbox import store_event
from tests.statements import Statements

GRACE = 60


def store(session_factory, evt: dict, at: datetime) -> int:
    return store_event(session_factory, evt, at=at)


def checkout(plan_id: str | None = "starter") -> dict:
    obj = se.checkout_session(account_id="acct_p", mode="subscription", plan_id=plan_id)
    return se.event("checkout.session.completed", obj)


def loaded(session_factory, pk: int) -> WebhookEvent:
    with session_factory() as session:
        return session.get(WebhookEvent, pk)


def rows(session_factory, model) -> list:
    with session_factory() as session:
        return list(session.scalars(select(model)))


def test_success_commits_the_effects_and_the_succeeded_mark_together(seeded, now):
    pk = store(seeded, checkout(), now)

    result = processing.process_event(seeded, pk, clock=lambda: now)

    assert (result.outcome, result.event_type, result.account_id) == ("done", "checkout.session.completed", "acct_p")
    event = loaded(seeded, pk)
    assert (event.status, event.processed_at, event.attempts, event.account_id) == ("succeeded", now, 1, "acct_p")
    [entry] = rows(seeded, CreditLedgerEntry)
    assert entry.source_event_id == pk


def test_a_run_writes_its_inbox_row_once(seeded, now):
    """The claim only locks and reads the row; the success mark counts the attempt in the same
    UPDATE (a webhook's row is ~2 KB: each write is a new row version and its WAL)."""
    pk = store(seeded, checkout(), now)

    with Statements(seeded) as statements:
        processing.process_event(seeded, pk, clock=lambda: now)

    assert len(statements.starting("update webhook_events")) == 1
    assert (loaded(seeded, pk).status, loaded(seeded, pk).attempts) == ("succeeded", 1)


def test_a_duplicate_message_costs_one_statement_and_says_what_the_event_was(seeded, now):
    pk = store(seeded, checkout(), now)
    processing.process_event(seeded, pk, clock=lambda: now)

    with Statements(seeded) as statements:
        again = processing.process_event(seeded, pk, clock=lambda: now)

    assert (again.outcome, again.event_type, again.account_id) == (
        "already_done",
        "checkout.session.completed",
        "acct_p",
    )
    run = [s for s in statements.seen if not s.startswith("begin")]  # SQLite's BEGIN IMMEDIATE
    assert len(run) == 1
    assert run[0].startswith("select webhook_events.id, webhook_events.provider")  # the lock (SQLite has no FOR UPDATE)
    assert (loaded(seeded, pk).status, loaded(seeded, pk).attempts) == ("succeeded", 1)
    assert processing.process_event(seeded, 999_999, clock=lambda: now).outcome == "missing"


def test_a_handler_that_raises_leaves_no_partial_effects_and_the_event_not_succeeded(seeded, now):
    # No plan: the handler creates the account and the subscription, then finds it cannot grant.
    pk = store(seeded, checkout(plan_id=None), now)

    with pytest.raises(RetryLater):
        processing.process_event(seeded, pk, clock=lambda: now)

    assert rows(seeded, Account) == []
    assert rows(seeded, Subscription) == []
    assert rows(seeded, CreditLedgerEntry) == []
    # The run's whole transaction rolled back, its attempt count too: the task's record_failure
    # counts it (below); a killed worker's run leaves the event exactly as it was, for the sweeper.
    event = loaded(seeded, pk)
    assert (event.status, event.attempts, event.processed_at, event.account_id) == ("received", 0, None, None)


def test_every_attempt_is_counted(seeded, now):
    pk = store(seeded, checkout(plan_id=None), now)

    for attempt in range(3):
        with pytest.raises(RetryLater) as raised:
            processing.process_event(seeded, pk, clock=lambda: now)
        processing.record_failure(seeded, pk, raised.value, at=now, retry_at=now + timedelta(seconds=2**attempt))

    assert loaded(seeded, pk).attempts == 3


def test_record_failure_with_a_retry_time_waits_for_the_retry(seeded, now):
    pk = store(seeded, checkout(plan_id=None), now)
    with pytest.raises(RetryLater) as raised:
        processing.process_event(seeded, pk, clock=lambda: now)

    processing.record_failure(seeded, pk, raised.value, at=now, retry_at=now + timedelta(seconds=30))

    event = loaded(seeded, pk)
    assert (event.status, event.next_attempt_at) == ("received", now + timedelta(seconds=30))
    assert event.last_error.startswith("RetryLater: plan of subscription")


def test_record_failure_without_a_retry_time_marks_the_event_failed_with_its_error(seeded, now):
    evt = checkout()
    evt["data"]["object"]["metadata"] = {}
    evt["data"]["object"]["client_reference_id"] = None
    pk = store(seeded, evt, now)
    with pytest.raises(PermanentError) as raised:
        processing.process_event(seeded, pk, clock=lambda: now)

    processing.record_failure(seeded, pk, raised.value, at=now, retry_at=None)

    event = loaded(seeded, pk)
    assert (event.status, event.next_attempt_at) == ("failed", None)
    assert event.last_error.startswith("PermanentError: checkout session")


def test_a_failed_event_runs_again_once_requeued(seeded, now):
    pk = store(seeded, checkout(plan_id=None), now)
    with pytest.raises(RetryLater) as raised:
        processing.process_event(seeded, pk, clock=lambda: now)
    processing.record_failure(seeded, pk, raised.value, at=now, retry_at=None)
    with seeded.begin() as session:
        event_ops.reset_for_replay(session, pk, at=now)

    with pytest.raises(RetryLater) as raised:
        processing.process_event(seeded, pk, clock=lambda: now)
    processing.record_failure(seeded, pk, raised.value, at=now, retry_at=None)
    assert loaded(seeded, pk).attempts == 2


def test_a_stray_message_for_a_dead_lettered_event_leaves_it_dead_lettered(seeded, now):
    pk = store(seeded, checkout(plan_id=None), now)
    with pytest.raises(RetryLater) as raised:
        processing.process_event(seeded, pk, clock=lambda: now)
    processing.record_failure(seeded, pk, raised.value, at=now, retry_at=None)

    stray = processing.process_event(seeded, pk, clock=lambda: now)

    assert stray.outcome == processing.DEAD_LETTERED
    event = loaded(seeded, pk)
    assert (event.status, event.attempts) == ("failed", 1)  # not run again: only a replay does that
    assert event.last_error.startswith("RetryLater: plan of subscription")


def test_processing_a_done_event_again_does_nothing(seeded, now):
    pk = store(seeded, checkout(), now)
    processing.process_event(seeded, pk, clock=lambda: now)

    again = processing.process_event(seeded, pk, clock=lambda: now)

    assert again.outcome == processing.ALREADY_DONE
    assert loaded(seeded, pk).attempts == 1
    assert len(rows(seeded, CreditLedgerEntry)) == 1


def test_processing_a_missing_event_says_so(seeded, now):
    assert processing.process_event(seeded, 12345, clock=lambda: now).outcome == processing.MISSING


def test_an_event_whose_type_has_no_handler_is_ignored(seeded, now):
    # Stored while a handler existed (or replayed after one was removed): the run finds none.
    pk = store_event(seeded, se.event("customer.tax_id.created", se.fixture("tax_id")), at=now, handled=True)

    result = processing.process_event(seeded, pk, clock=lambda: now)

    assert result.outcome == "ignored"
    assert loaded(seeded, pk).status == "ignored"


def purchase(account_id: str, package_id: str = "starter") -> dict:
    obj = se.checkout_session(account_id=account_id, mode="payment", package_id=package_id)
    return se.event("checkout.session.completed", obj)


def test_a_batch_commits_each_event_with_its_mark_in_one_transaction(seeded, now):
    done = store(seeded, purchase("acct_b1"), now)
    processing.process_event(seeded, done, clock=lambda: now)
    ignored = store_event(seeded, se.event("customer.tax_id.created", se.fixture("tax_id")), at=now, handled=True)
    first, second = store(seeded, purchase("acct_b2"), now), store(seeded, purchase("acct_b3"), now)
    batch = [second, done, ignored, first, 999_999, second]

    with Statements(seeded) as statements:
        results = processing.process_batch(seeded, batch, clock=lambda: now)

    assert results is not None and len(results) == len(batch)
    assert [(r.outcome, r.account_id) for r in results] == [
        ("done", "acct_b3"),
        ("already_done", "acct_b1"),
        ("ignored", None),
        ("done", "acct_b2"),
        ("missing", None),
        ("already_done", "acct_b3"),  # an id given twice runs once
    ]
    assert len(statements.starting("begin")) == 1  # one transaction (SQLite's BEGIN IMMEDIATE)
    assert len(statements.reading("webhook_events")) == 1  # every row locked in one statement
    assert len(statements.starting("update webhook_events")) == 1  # and marked in one
    for pk, status, account_id in ((first, "succeeded", "acct_b2"), (second, "succeeded", "acct_b3")):
        event = loaded(seeded, pk)
        assert (event.status, event.attempts, event.processed_at, event.account_id) == (status, 1, now, account_id)
    assert (loaded(seeded, ignored).status, loaded(seeded, ignored).attempts) == ("ignored", 1)
    assert loaded(seeded, done).attempts == 1
    with seeded() as session:
        assert [ledger.balance(session, a) for a in ("acct_b1", "acct_b2", "acct_b3")] == [500, 500, 500]
    # Each purchase's invoice numbered at the commit, in the order issued, its receipt showing it.
    with seeded() as session:
        numbers = dict(session.execute(select(Invoice.account_id, Invoice.number)).all())
        receipts = {
            row.account_id: row.context
            for row in session.scalars(select(EmailOutbox).where(EmailOutbox.template == "payment_confirmation"))
        }
    year = now.year
    assert numbers == {"acct_b1": f"{year}-000001", "acct_b3": f"{year}-000002", "acct_b2": f"{year}-000003"}
    assert {a: c["invoice_number"] for a, c in receipts.items()} == numbers
    # The rest of the context as a receipt numbered at once has it (acct_b1's, before the batch).
    kept = [{k: v for k, v in receipts[a].items() if k != "invoice_number"} for a in ("acct_b1", "acct_b2", "acct_b3")]
    assert kept[0] == kept[1] == kept[2] and {"name", "amount_cents", "description"} <= set(kept[0])
    assert [len(r.emails) for r in results] == [1, 0, 0, 1, 0, 0]  # each event's own, for after the commit


def test_a_batch_with_a_failing_event_commits_nothing_of_any(seeded, now, caplog):
    good = store(seeded, purchase("acct_good"), now)
    broken = store(seeded, purchase("acct_broken", package_id="no_such_package"), now)

    with caplog.at_level(logging.INFO, logger="billhook.processing"):
        assert processing.process_batch(seeded, [good, broken], clock=lambda: now) is None

    # Rolled back whole: the caller runs each event on its own, and the good one's work is redone.
    assert [(loaded(seeded, pk).status, loaded(seeded, pk).attempts) for pk in (good, broken)] == [("received", 0)] * 2
    assert rows(seeded, CreditLedgerEntry) == []
    assert "batch ran singly" in caplog.text and "no_such_package" not in caplog.text
    assert processing.process_event(seeded, good, clock=lambda: now).outcome == "done"
    with pytest.raises(PermanentError):
        processing.process_event(seeded, broken, clock=lambda: now)
    with seeded() as session:  # the rolled-back batch took no number: none is skipped
        assert session.scalars(select(Invoice.number)).all() == [f"{now.year}-000001"]


def test_only_a_unique_violation_among_integrity_errors_is_retried(database_errors):
    errors = database_errors

    assert processing.is_transient(errors["unique"])  # two workers raced for the same key
    assert not processing.is_transient(errors["not_null"])
    assert not processing.is_transient(errors["check"])
    assert not processing.is_transient(errors["foreign_key"])


def test_races_and_outages_are_transient_and_other_errors_are_not():
    db_down = OperationalError("SELECT 1", {}, ConnectionError("gone"))
    deadlock = DBAPIError.instance("UPDATE", {}, psycopg.errors.DeadlockDetected("deadlock"), psycopg.Error)
    serialization = DBAPIError.instance("UPDATE", {}, psycopg.errors.SerializationFailure("x"), psycopg.Error)

    assert processing.is_transient(RetryLater("later"))
    assert processing.is_transient(db_down)
    assert processing.is_transient(deadlock)
    assert processing.is_transient(serialization)
    assert not processing.is_transient(PermanentError("never"))
    assert not processing.is_transient(KeyError("bug"))


def test_a_database_error_is_described_without_the_values_it_quotes(database_errors, caplog):
    caplog.set_level(logging.DEBUG)
    for kind, exc in database_errors.items():
        description = processing.describe(exc)

        assert description.startswith("IntegrityError: "), description
        assert "example.com" not in description, (kind, description)
        assert "example.com" not in str(exc).split("[SQL:")[1], "SQLAlchemy shows the parameters"
    assert "example.com" not in caplog.text


@pytest.mark.postgres
def test_a_postgresql_error_is_described_by_sqlstate_and_constraint(pg_database_errors):
    errors = pg_database_errors

    assert processing.describe(errors["unique"]) == (
        "IntegrityError: UniqueViolation, sqlstate 23505, constraint uq_child_email"
    )
    assert processing.describe(errors["not_null"]) == "IntegrityError: NotNullViolation, sqlstate 23502"


def test_describe_keeps_the_error_class_and_first_line_only():
    db_down = OperationalError("SELECT secret_stuff", {"p": "payload"}, ConnectionError("server closed\nline two"))

    assert processing.describe(RetryLater("first\nsecond")) == "RetryLater: first"
    assert processing.describe(db_down) == "OperationalError: ConnectionError"


# -- the sweeper ------------------------------------------------------------------------------


def test_sweep_requeues_received_and_stuck_events_but_not_fresh_or_done_ones(seeded, now):
    old = now - timedelta(hours=1)
    waiting = store(seeded, checkout(), old)
    stuck = store(seeded, checkout(plan_id=None), old - timedelta(minutes=1))
    fresh = store(seeded, checkout(), now - timedelta(seconds=5))
    done = store(seeded, checkout(), old)
    # A worker that died mid-run: its transaction rolled back, the event is as it was stored.
    with pytest.raises(RetryLater):
        processing.process_event(seeded, stuck, clock=lambda: old)
    processing.process_event(seeded, done, clock=lambda: old)
    queue = Enqueued()

    queued = processing.sweep(seeded, queue, now=now, grace_seconds=GRACE)

    assert sorted(queued) == sorted(queue) == [waiting, stuck]
    assert fresh not in queue and done not in queue


def test_consecutive_sweeps_do_not_queue_an_event_twice(seeded, now):
    store(seeded, checkout(), now - timedelta(hours=1))
    queue = Enqueued()

    processing.sweep(seeded, queue, now=now, grace_seconds=GRACE)
    processing.sweep(seeded, queue, now=now + timedelta(seconds=30), grace_seconds=GRACE)

    assert len(queue) == 1


def test_consecutive_sweeps_do_not_queue_a_lost_retry_twice(seeded, now):
    pk = store(seeded, checkout(plan_id=None), now - timedelta(hours=1))
    with pytest.raises(RetryLater) as raised:
        processing.process_event(seeded, pk, clock=lambda: now - timedelta(hours=1))
    retry_at = now - timedelta(minutes=30)
    processing.record_failure(seeded, pk, raised.value, at=now - timedelta(hours=1), retry_at=retry_at)
    queue = Enqueued()

    processing.sweep(seeded, queue, now=now, grace_seconds=GRACE)
    processing.sweep(seeded, queue, now=now + timedelta(seconds=30), grace_seconds=GRACE)

    assert queue == [pk]
    # ... and a retry that is lost again is swept again once the grace has passed once more.
    processing.sweep(seeded, queue, now=now + timedelta(seconds=GRACE + 1), grace_seconds=GRACE)
    assert queue == [pk, pk]


def test_sweep_with_the_broker_down_queues_nothing_and_tries_again_next_time(seeded, now):
    pk = store(seeded, checkout(), now - timedelta(hours=1))

    def broker_down(event_pk: int) -> None:
        raise ConnectionError("redis is down")

    assert processing.sweep(seeded, broker_down, now=now, grace_seconds=GRACE) == []
    queue = Enqueued()
    later = now + timedelta(seconds=30)
    assert processing.sweep(seeded, queue, now=later, grace_seconds=GRACE) == [pk]


# -- concurrency on the embedded store (make run's default: SQLite and a prefork worker) -------


def run_at_once(*calls) -> list:
    """Start the calls together on threads; their results (or raised errors) in call order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def runner(i, call):
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 - reported to the test as a result
            results[i] = exc

    threads = [threading.Thread(target=runner, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_two_workers_on_the_same_event_at_once_grant_once(seeded, now):
    pk = store(seeded, checkout(), now)

    results = run_at_once(*[lambda: processing.process_event(seeded, pk, clock=lambda: now)] * 4)

    assert sorted(r.outcome for r in results) == ["already_done"] * 3 + ["done"]
    with seeded() as session:
        assert ledger.balance(session, "acct_p") == 5_000


def test_a_checkout_and_its_first_invoice_processed_at_once_grant_once(seeded, now):
    t0 = int(now.timestamp())
    obj = se.checkout_session(account_id="acct_p", mode="subscription", plan_id="growth")
    first_invoice = se.invoice(
        subscription_id=obj["subscription"],
        customer=obj["customer"],
        price_id="price_billhook_growth_monthly",
        amount=19900,
        period_start=t0,
        period_end=t0 + 30 * 86400,
        billing_reason="subscription_create",
        metadata={"account_id": "acct_p", "plan_id": "growth"},
    )
    pks = [
        store(seeded, se.event("checkout.session.completed", obj, created=t0), now),
        store(seeded, se.event("invoice.paid", first_invoice, created=t0 + 1), now),
    ]

    results = run_at_once(*[lambda pk=pk: processing.process_event(seeded, pk, clock=lambda: now) for pk in pks])

    assert [r.outcome for r in results] == ["done", "done"]
    with seeded() as session:
        assert ledger.balance(session, "acct_p") == 12_000
        assert session.scalars(select(Subscription)).one().status == "active"
