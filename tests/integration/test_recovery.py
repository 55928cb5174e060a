"""Nothing is lost when things break: a broker down at intake, a worker killed mid-task, an event
whose dependency arrives later, an event that can never succeed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select, text

from cli import embedded_redis
from shared import inbox, processing
from shared.billing import ledger
from shared.models import CreditLedgerEntry, Payment, Subscription, WebhookEvent
from tests.factories import stripe_events as se
from tests.factories.inbox import store_event
from tests.integration import support
from tests.integration.worker_app import PROCESS_KILLER
from worker.celery_app import make_celery
from worker.messages import SWEEP_INBOX, enqueue_event

pytestmark = pytest.mark.redis  # on PostgreSQL; on SQLite where it is missing (not in CI)


def _count(session, model, **filters) -> int:
    return session.scalar(select(func.count()).select_from(model).filter_by(**filters))


def _purchase(account_id: str, package_id: str = "starter", payment_intent: str | None = None) -> dict:
    return se.event(
        "checkout.session.completed",
        se.checkout_session(
            account_id=account_id, mode="payment", package_id=package_id, payment_intent=payment_intent
        ),
    )


def _full_refund(payment_intent: str) -> dict:
    return se.event("charge.refunded", se.charge(payment_intent=payment_intent, amount=999, amount_refunded=999))


@pytest.fixture
def own_redis(tmp_path):
    """A broker of the test's own that it can stop and start again (same port, same data)."""

    class Broker:
        port = embedded_redis.free_port()
        url = f"redis://127.0.0.1:{port}/0"
        process: subprocess.Popen | None = None

        def start(self):
            self.process = embedded_redis.start(self.port, tmp_path / "redis")

        def stop(self):
            if self.process is not None:
                self.process.terminate()
                self.process.wait(10)
                self.process = None

    broker = Broker()
    broker.start()
    yield broker
    broker.stop()


def test_event_accepted_while_the_broker_is_down_is_swept_and_processed_once_it_is_back(
    store_settings, store_session_factory, worker_factory, live_web_factory, own_redis
):
    settings = store_settings.with_overrides(redis_url=own_redis.url)
    web = live_web_factory(settings)
    own_redis.stop()

    purchase = _purchase("acct_broker_down")
    started = time.monotonic()
    response = web.post_event(purchase)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "received"
    assert time.monotonic() - started < 10  # a dead broker never stalls intake
    assert support.event_status(store_session_factory, purchase["id"]) == "received"

    own_redis.start()  # the broker is back: the queue is empty, the row is the only record
    with redis.Redis.from_url(own_redis.url) as client:
        assert client.llen(settings.queue_name) == 0
    worker = worker_factory(settings, concurrency=1)
    support.wait_for(
        lambda: (
            support.event_row(store_session_factory, purchase["id"]).updated_at
            < datetime.now(UTC) - timedelta(seconds=settings.sweep_grace_seconds)
        ),
        message="the sweep grace period to pass",
    )
    web.celery.send_task(SWEEP_INBOX, queue=settings.queue_name)  # what beat does every interval
    support.wait_for(lambda: support.event_status(store_session_factory, purchase["id"]) == "succeeded")

    later = _purchase("acct_broker_down", package_id="value")  # web's own publishing works again
    assert web.post_event(later).status_code == 200
    support.wait_for(lambda: support.event_status(store_session_factory, later["id"]) == "succeeded")
    with store_session_factory() as session:
        assert ledger.balance(session, "acct_broker_down") == 500 + 2_000
        assert _count(session, Payment, account_id="acct_broker_down") == 2
    assert [e["outcome"] for e in worker.task_logs()] == ["done", "done"]


def _lock_waiters(session_factory) -> int:
    with session_factory() as session:
        return session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )


@pytest.mark.postgres  # holds PostgreSQL row locks and ends backends
def test_worker_killed_mid_task_leaves_no_effect_and_the_sweeper_finishes_the_event_once(
    pg_settings, pg_session_factory, worker_factory, publisher
):
    first_worker = worker_factory(pg_settings, concurrency=1)
    ids, renewal, renewal_pk = _subscription_with_pending_renewal(pg_session_factory, publisher, "acct_killed")
    with _worker_blocked_on_subscription(pg_session_factory, publisher, ids, renewal_pk) as blocker:
        # The claim (attempt count) is part of the blocked transaction: nothing of the run is committed.
        assert support.event_status(pg_session_factory, renewal["id"]) == "received"
        first_worker.kill()
        blocker.rollback()

    with pg_session_factory() as session:
        assert ledger.balance(session, "acct_killed") == 12_000  # nothing of the renewal committed
        assert session.get(WebhookEvent, renewal_pk).status == "received"

    worker_factory(pg_settings, concurrency=1)

    def swept() -> bool:
        queued = processing.sweep(
            pg_session_factory,
            publisher,
            now=datetime.now(UTC),
            grace_seconds=pg_settings.sweep_grace_seconds,
        )
        return renewal_pk in queued

    support.wait_for(swept, message="the sweeper to re-enqueue the event once its killed run rolled back")
    support.wait_for(lambda: support.event_status(pg_session_factory, renewal["id"]) == "succeeded")
    with pg_session_factory() as session:
        assert ledger.balance(session, "acct_killed") == 2 * 12_000
        assert _count(session, CreditLedgerEntry, account_id="acct_killed") == 2
        assert _count(session, Payment, account_id="acct_killed") == 2
        assert session.get(WebhookEvent, renewal_pk).attempts == 1  # the killed run left no trace


def test_refund_before_its_payment_retries_with_backoff_and_succeeds_after_the_payment(
    store_settings, store_session_factory, worker_factory, live_web
):
    worker = worker_factory(store_settings, concurrency=1)
    payment_intent = se.unique("pi")
    purchase = _purchase("acct_refund", payment_intent=payment_intent)
    refund = _full_refund(payment_intent)

    assert live_web.post_event(refund).status_code == 200

    def retrying():
        row = support.event_row(store_session_factory, refund["id"])
        return row.attempts >= 2 and row.status == "received" and "RetryLater" in (row.last_error or "")

    support.wait_for(retrying, message="the refund to be retried")
    row = support.event_row(store_session_factory, refund["id"])
    assert row.next_attempt_at is not None

    assert live_web.post_event(purchase).status_code == 200
    support.wait_for(lambda: support.all_succeeded(store_session_factory, [refund["id"], purchase["id"]]))
    with store_session_factory() as session:
        assert ledger.balance(session, "acct_refund") == 0
        amounts = sorted(session.scalars(select(CreditLedgerEntry.amount).filter_by(account_id="acct_refund")))
        assert amounts == [-500, 500]
        payment = session.scalars(select(Payment).filter_by(account_id="acct_refund")).one()
        assert (payment.status, payment.amount_refunded_cents) == ("refunded", 999)
        assert session.scalars(select(WebhookEvent).filter_by(event_id=refund["id"])).one().last_error is None
    outcomes = [e["outcome"] for e in worker.task_logs(row.id)]
    assert outcomes[-1] == "done" and set(outcomes[:-1]) == {"retry"}


def test_refund_whose_payment_comes_after_the_retry_cap_keeps_waiting_for_it_and_succeeds(
    store_settings, store_session_factory, worker_factory, live_web
):
    worker_factory(store_settings.with_overrides(task_max_retries=1), concurrency=1)
    payment_intent = se.unique("pi")
    purchase = _purchase("acct_late_payment", payment_intent=payment_intent)
    refund = _full_refund(payment_intent)

    assert live_web.post_event(refund).status_code == 200

    def past_the_cap():
        row = support.event_row(store_session_factory, refund["id"])
        return row.attempts >= 4 and row.status == "received"  # one retry allowed, and it is still waiting

    support.wait_for(past_the_cap, timeout=60, message="the refund to retry past task_max_retries")
    assert live_web.post_event(purchase).status_code == 200
    support.wait_for(lambda: support.all_succeeded(store_session_factory, [refund["id"], purchase["id"]]), timeout=30)
    with store_session_factory() as session:
        assert ledger.balance(session, "acct_late_payment") == 0


def test_refund_whose_payment_never_comes_is_failed_once_the_dependency_wait_is_over(
    store_settings, store_session_factory, worker_factory, live_web
):
    worker_factory(store_settings.with_overrides(task_max_retries=1, dependency_wait_seconds=0), concurrency=1)
    refund = _full_refund(se.unique("pi"))

    assert live_web.post_event(refund).status_code == 200

    support.wait_for(lambda: support.event_status(store_session_factory, refund["id"]) == "failed", timeout=30)
    row = support.event_row(store_session_factory, refund["id"])
    assert row.attempts == 2 and row.last_error.startswith("RetryLater: no payment known yet")


def test_event_that_can_never_succeed_is_marked_failed_with_its_error_without_retries(
    store_settings, store_session_factory, worker_factory, live_web
):
    worker = worker_factory(store_settings, concurrency=1)
    unknown_package = _purchase("acct_perm", package_id="no_such_package")

    assert live_web.post_event(unknown_package).status_code == 200
    support.wait_for(lambda: support.event_status(store_session_factory, unknown_package["id"]) == "failed")
    row = support.event_row(store_session_factory, unknown_package["id"])
    assert row.attempts == 1
    assert row.last_error.startswith("PermanentError:") and "no known credit package" in row.last_error
    assert [e["outcome"] for e in worker.task_logs(row.id)] == ["failed"]
    with store_session_factory() as session:
        assert ledger.balance(session, "acct_perm") == 0
        assert inbox.counts_by_status(session) == {"failed": 1}


def test_retry_lost_with_its_worker_is_requeued_by_the_sweeper_once_and_succeeds(
    store_settings, store_session_factory, worker_factory, publisher
):
    first_worker = worker_factory(store_settings, concurrency=1)
    payment_intent = se.unique("pi")
    refund = _full_refund(payment_intent)
    refund_pk = store_event(store_session_factory, refund)
    publisher(refund_pk)
    # The refund's payment is unknown: the worker schedules a retry and holds it until its ETA...
    support.wait_for(lambda: support.event_row(store_session_factory, refund["id"]).next_attempt_at is not None)
    first_worker.kill()  # ...and dies with it: only the sweeper can bring the event back.
    purchase = _purchase("acct_lost_retry", payment_intent=payment_intent)
    publisher(store_event(store_session_factory, purchase))

    def sweep() -> list[int]:
        return processing.sweep(
            store_session_factory,
            publisher,
            now=datetime.now(UTC),
            grace_seconds=store_settings.sweep_grace_seconds,
        )

    support.wait_for(lambda: refund_pk in sweep(), message="the sweeper to re-enqueue the lost retry")
    assert refund_pk not in sweep()  # re-enqueued once per grace period, not on every sweep

    worker = worker_factory(store_settings, concurrency=1)
    support.wait_for(lambda: support.all_succeeded(store_session_factory, [refund["id"], purchase["id"]]))
    with store_session_factory() as session:
        assert ledger.balance(session, "acct_lost_retry") == 0
        assert session.get(WebhookEvent, refund_pk).last_error is None
    # (The retry message itself may have reached the queue before its worker died, and run
    # before the payment once more: only the one "done" matters.)
    outcomes = [e["outcome"] for e in worker.task_logs(refund_pk)]
    assert outcomes.count("done") == 1 and set(outcomes) <= {"retry", "done", "already_done"}


@pytest.mark.postgres  # holds PostgreSQL row locks and ends backends
def test_database_connection_lost_mid_task_is_retried_and_the_effects_land_once(
    pg_settings, pg_session_factory, worker_factory, publisher
):
    worker = worker_factory(pg_settings, concurrency=1)
    ids, renewal, renewal_pk = _subscription_with_pending_renewal(pg_session_factory, publisher, "acct_db_drop")
    with _worker_blocked_on_subscription(pg_session_factory, publisher, ids, renewal_pk) as blocker:
        # The database drops the worker's connection in the middle of its transaction.
        with pg_session_factory() as admin:
            ended = admin.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        assert ended == 1
        blocker.rollback()

    support.wait_for(lambda: support.event_status(pg_session_factory, renewal["id"]) == "succeeded")
    with pg_session_factory() as session:
        assert ledger.balance(session, "acct_db_drop") == 2 * 12_000
        assert _count(session, CreditLedgerEntry, account_id="acct_db_drop") == 2
        assert session.get(WebhookEvent, renewal_pk).attempts == 2
    assert [e["outcome"] for e in worker.task_logs(renewal_pk)] == ["retry", "done"]


def _subscription_with_pending_renewal(session_factory, publisher, account_id):
    """A subscription started and processed, and its renewal event stored but not yet queued;
    returns (ids, renewal_evt, renewal_pk)."""
    t0 = int(time.time()) - 40 * 24 * 3600
    checkout, first_invoice, ids = support.subscription_start(account_id, created=t0)
    for evt in (checkout, first_invoice):
        publisher(store_event(session_factory, evt))
    support.wait_for(lambda: support.all_succeeded(session_factory, [checkout["id"], first_invoice["id"]]))
    renewal = support.renewal(ids, account_id, period_start=t0 + support.MONTH, created=t0 + support.MONTH + 5)
    return ids, renewal, store_event(session_factory, renewal)


@contextlib.contextmanager
def _worker_blocked_on_subscription(session_factory, publisher, ids: dict, event_pk: int):
    """Hold the subscription's row lock, queue the event and wait until the worker's handler blocks
    on that lock mid-transaction; yields the holding transaction (the test decides when to let go)."""
    with session_factory.begin() as blocker:
        blocker.execute(
            select(Subscription).filter_by(provider_subscription_id=ids["subscription"]).with_for_update()
        ).one()
        publisher(event_pk)
        support.wait_for(lambda: _lock_waiters(session_factory) >= 1, message="the worker blocked on the row lock")
        yield blocker


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


@pytest.mark.postgres  # holds a PostgreSQL row lock
def test_pool_process_killed_mid_task_is_redelivered_and_the_event_succeeds_once(
    pg_settings, pg_session_factory, worker_factory, publisher
):
    worker = worker_factory(pg_settings, concurrency=1)
    ids, renewal, renewal_pk = _subscription_with_pending_renewal(pg_session_factory, publisher, "acct_child")
    with _worker_blocked_on_subscription(pg_session_factory, publisher, ids, renewal_pk) as blocker:
        (child,) = _children(worker.pid)
        os.kill(child, signal.SIGKILL)  # the OOM killer takes the pool process, not the worker
        support.wait_for(lambda: _children(worker.pid) not in ([], [child]), message="a new pool process")
        blocker.rollback()

    # acks_late + reject_on_worker_lost: the message goes back to the queue, no sweep needed.
    support.wait_for(lambda: support.event_status(pg_session_factory, renewal["id"]) == "succeeded")
    with pg_session_factory() as session:
        assert ledger.balance(session, "acct_child") == 2 * 12_000
        assert _count(session, CreditLedgerEntry, account_id="acct_child") == 2
        assert session.get(WebhookEvent, renewal_pk).attempts == 1  # the killed run rolled back, its count too
    assert worker.alive()


@pytest.mark.postgres  # holds a PostgreSQL row lock
def test_worker_with_a_task_in_flight_survives_a_broker_restart_and_goes_on_consuming(
    pg_settings, pg_session_factory, worker_factory, own_redis
):
    settings = pg_settings.with_overrides(redis_url=own_redis.url)
    app = make_celery(settings)
    publish = lambda event_pk: enqueue_event(app, event_pk)  # noqa: E731
    # Two pool processes: one busy with the blocked task, the other waiting on the queue, so the
    # broker goes away with a message in flight and a fetch outstanding (a busy worker's usual state).
    worker = worker_factory(settings, concurrency=2)
    ids, renewal, renewal_pk = _subscription_with_pending_renewal(pg_session_factory, publish, "acct_redis_restart")
    with _worker_blocked_on_subscription(pg_session_factory, publish, ids, renewal_pk) as blocker:
        own_redis.stop()  # a Redis restart or failover
        time.sleep(1)
        own_redis.start()
        blocker.rollback()

    support.wait_for(lambda: support.event_status(pg_session_factory, renewal["id"]) == "succeeded")
    # The worker reconnected (it did not exit): a new event is taken and processed.
    later = _purchase("acct_redis_restart")
    publish(store_event(pg_session_factory, later))
    support.wait_for(
        lambda: support.event_status(pg_session_factory, later["id"]) == "succeeded" or not worker.alive(),
        timeout=60,
    )
    assert worker.alive(), worker.log_tail()
    assert support.event_status(pg_session_factory, later["id"]) == "succeeded"
    with pg_session_factory() as session:
        assert ledger.balance(session, "acct_redis_restart") == 2 * 12_000 + 500
    app.close()


def test_event_whose_run_kills_its_pool_process_is_dead_lettered_after_three_runs_and_the_worker_goes_on(
    store_settings, store_session_factory, worker_factory, publisher
):
    worker = worker_factory(store_settings, concurrency=1)
    poison = se.event(PROCESS_KILLER, se.fixture("customer"))
    with store_session_factory.begin() as session:
        poison_pk = inbox.record_event(
            session,
            provider="stripe",
            event_id=poison["id"],
            type=PROCESS_KILLER,
            payload=poison,
            event_created_at=None,
            handled=True,
            at=datetime.now(UTC),
        ).id

    publisher(poison_pk)

    # Each run kills the pool process and the message comes back (acks_late + reject_on_worker_lost);
    # the fourth start finds three unfinished ones and gives the message up.
    support.wait_for(lambda: support.event_status(store_session_factory, poison["id"]) == "failed", timeout=90)
    row = support.event_row(store_session_factory, poison["id"])
    assert row.last_error == "PermanentError: dead-lettered: 3 runs died with their worker process"
    assert row.attempts == 1  # the killed runs rolled back; only the dead-lettering counted
    assert [e["outcome"] for e in worker.task_logs(poison_pk)] == ["failed"]
    # The worker survived it and goes on with the next event.
    purchase = _purchase("acct_after_poison")
    publisher(store_event(store_session_factory, purchase))
    support.wait_for(lambda: support.event_status(store_session_factory, purchase["id"]) == "succeeded")
    assert worker.alive()


@pytest.mark.postgres  # holds a PostgreSQL row lock
def test_warm_shutdown_mid_task_finishes_the_task_before_the_worker_exits(
    pg_settings, pg_session_factory, worker_factory, publisher
):
    worker = worker_factory(pg_settings, concurrency=1)
    ids, renewal, renewal_pk = _subscription_with_pending_renewal(pg_session_factory, publisher, "acct_deploy")
    with _worker_blocked_on_subscription(pg_session_factory, publisher, ids, renewal_pk) as blocker:
        worker.request_stop()  # a deploy: SIGTERM while the task is running
        time.sleep(0.5)
        assert worker.alive()  # waiting for its task
        blocker.rollback()

    worker.process.wait(20)
    assert worker.process.returncode == 0
    assert support.event_status(pg_session_factory, renewal["id"]) == "succeeded"
    with pg_session_factory() as session:
        assert ledger.balance(session, "acct_deploy") == 2 * 12_000


def test_beat_sweeps_an_event_the_broker_missed_without_anyone_asking(
    store_settings, store_session_factory, worker_factory, live_web_factory
):
    dead_broker = store_settings.with_overrides(redis_url=f"redis://127.0.0.1:{embedded_redis.free_port()}/0")
    purchase = _purchase("acct_beat")
    assert live_web_factory(dead_broker).post_event(purchase).status_code == 200
    assert support.event_status(store_session_factory, purchase["id"]) == "received"

    worker_factory(store_settings.with_overrides(sweep_interval_seconds=0.5), concurrency=1, beat=True)
    support.wait_for(lambda: support.event_status(store_session_factory, purchase["id"]) == "succeeded")
    with store_session_factory() as session:
        assert ledger.balance(session, "acct_beat") == 500


@pytest.mark.postgres  # holds a PostgreSQL row lock
def test_sweeper_leaves_an_event_a_slow_worker_still_holds_and_it_is_handled_once(
    pg_settings, pg_session_factory, worker_factory, publisher
):
    worker = worker_factory(pg_settings, concurrency=2)
    ids, renewal, renewal_pk = _subscription_with_pending_renewal(pg_session_factory, publisher, "acct_slow")

    def sweep() -> list[int]:
        return processing.sweep(
            pg_session_factory,
            publisher,
            now=datetime.now(UTC),
            grace_seconds=pg_settings.sweep_grace_seconds,
        )

    with _worker_blocked_on_subscription(pg_session_factory, publisher, ids, renewal_pk) as blocker:
        # Older than the grace, and still `received` (nothing of the run is committed), but the
        # running worker holds the event's row lock: the sweeper skips it rather than queue it twice.
        time.sleep(pg_settings.sweep_grace_seconds + 0.5)
        assert renewal_pk not in sweep()
        blocker.rollback()

    support.wait_for(lambda: len(worker.task_logs(renewal_pk)) == 1, message="the task to finish")
    assert [e["outcome"] for e in worker.task_logs(renewal_pk)] == ["done"]
    with pg_session_factory() as session:
        assert ledger.balance(session, "acct_slow") == 2 * 12_000
        assert _count(session, CreditLedgerEntry, account_id="acct_slow") == 2
        assert session.get(WebhookEvent, renewal_pk).attempts == 1
