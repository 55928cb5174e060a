"""Batch messages: the events (or emails) that gathered in the publisher go to a worker in one
message, and each still runs as if it had a message of its own: its own transaction, its own
failure and retry."""

from __future__ import annotations

import json

import pytest
import redis
from sqlalchemy import func, select

from shared.billing import ledger
from shared.models import CreditLedgerEntry, EmailOutbox
from tests.factories import stripe_events as se
from tests.factories.inbox import store_event
from tests.integration import support
from worker.config import new_celery
from worker.messages import (
    MAX_IDS_PER_MESSAGE,
    PROCESS_EVENT,
    PROCESS_EVENTS,
    SEND_EMAIL,
    SEND_EMAILS,
    RedisMessageEncoder,
    batches,
    publish,
)
from worker.publisher import Publisher

pytestmark = pytest.mark.redis


def _purchase(account_id: str, *, package_id: str = "starter", payment_intent: str | None = None) -> dict:
    session = se.checkout_session(
        account_id=account_id, mode="payment", package_id=package_id, payment_intent=payment_intent
    )
    return se.event("checkout.session.completed", session)


def test_ids_are_batched_up_to_the_bound_and_a_lone_id_keeps_the_single_task():
    assert batches(PROCESS_EVENT, [7]) == [(PROCESS_EVENT, 7)]
    ids = list(range(1, 2 * MAX_IDS_PER_MESSAGE + 2))
    sent = batches(PROCESS_EVENT, ids)
    assert [task for task, _ in sent] == [PROCESS_EVENTS, PROCESS_EVENTS, PROCESS_EVENT]
    assert [pk for _, arg in sent for pk in ([arg] if isinstance(arg, int) else arg)] == ids
    assert batches(SEND_EMAIL, [1, 2]) == [(SEND_EMAILS, [1, 2])]


def test_a_batch_message_is_the_one_celerys_producer_sends(settings, redis_url):
    app = new_celery(settings.with_overrides(redis_url=redis_url, queue_name=f"billhook-batch-{id(settings)}"))
    client = redis.Redis.from_url(redis_url)
    queue = app.conf.task_default_queue
    try:
        publish(app, PROCESS_EVENTS, [41, 42, 43])
        [sent] = client.lrange(queue, 0, -1)
    finally:
        client.delete(queue)
        app.close()
    encoded = RedisMessageEncoder(app).encode(PROCESS_EVENTS, [41, 42, 43])

    def without_ids(raw) -> dict:
        message = json.loads(raw)
        task_id, tag = message["headers"]["id"], message["properties"]["delivery_tag"]
        return json.loads(json.dumps(message).replace(task_id, "ID").replace(tag, "TAG"))

    assert without_ids(encoded) == without_ids(sent)


def test_the_publisher_sends_what_gathered_in_batch_messages_each_id_once(settings, redis_url):
    app = new_celery(settings.with_overrides(redis_url=redis_url, queue_name=f"billhook-pub-{id(settings)}"))
    client = redis.Redis.from_url(redis_url)
    queue = app.conf.task_default_queue
    publisher = Publisher(app, linger_seconds=0.05)  # long enough for all of them to gather
    try:
        for pk in range(1, 21):
            publisher.publish_event(pk)
        assert publisher.flush(5)
        raw = client.lrange(queue, 0, -1)
    finally:
        client.delete(queue)
        app.close()
    messages = [json.loads(m) for m in raw]
    tasks = [m["headers"]["task"] for m in messages]
    assert PROCESS_EVENTS in tasks and len(messages) < 20
    published = []
    for m in messages:
        args = m["headers"]["argsrepr"]
        published += json.loads(args)[0] if m["headers"]["task"] == PROCESS_EVENTS else json.loads(args)
    assert sorted(published) == list(range(1, 21))


def test_each_event_of_a_batch_commits_fails_or_retries_on_its_own(
    store_settings, store_session_factory, celery_app, worker_factory, live_web
):
    worker = worker_factory(store_settings, concurrency=1)
    payment_intent = se.unique("pi")
    good = _purchase("acct_batch_good")
    broken = _purchase("acct_batch_broken", package_id="no_such_package")  # fails for good
    refund = se.event("charge.refunded", se.charge(payment_intent=payment_intent, amount=999, amount_refunded=999))
    pks = [store_event(store_session_factory, evt) for evt in (refund, broken, good)]

    publish(celery_app, PROCESS_EVENTS, pks)

    support.wait_for(lambda: support.event_status(store_session_factory, good["id"]) == "succeeded")
    support.wait_for(lambda: support.event_status(store_session_factory, broken["id"]) == "failed")
    # The refund waits for its payment in messages of its own, with its own backoff.
    support.wait_for(lambda: support.event_row(store_session_factory, refund["id"]).attempts >= 2)
    assert support.event_status(store_session_factory, refund["id"]) == "received"
    with store_session_factory() as session:
        assert ledger.balance(session, "acct_batch_good") == 500  # not rolled back by the others
        assert ledger.balance(session, "acct_batch_broken") == 0
    assert "no known credit package" in support.event_row(store_session_factory, broken["id"]).last_error

    purchase = _purchase("acct_batch_refund", payment_intent=payment_intent)
    assert live_web.post_event(purchase).status_code == 200
    support.wait_for(lambda: support.all_succeeded(store_session_factory, [refund["id"], purchase["id"]]))
    with store_session_factory() as session:
        assert ledger.balance(session, "acct_batch_refund") == 0
        assert session.scalar(select(func.count()).select_from(CreditLedgerEntry)) == 3  # one grant each, one reversal
    outcomes = [e["outcome"] for e in worker.task_logs(pks[0])]
    assert outcomes[0] == "retry" and outcomes[-1] == "done"


def test_a_batch_of_emails_sends_each_row_once(store_settings, store_session_factory, celery_app, worker_factory):
    worker = worker_factory(store_settings, concurrency=1)
    pks = [store_event(store_session_factory, _purchase(f"acct_batch_mail_{n}")) for n in range(3)]
    publish(celery_app, PROCESS_EVENTS, pks)
    support.wait_for(lambda: _outbox_statuses(store_session_factory) == ["sent"] * 3, timeout=30)
    with store_session_factory() as session:
        ids = list(session.scalars(select(EmailOutbox.id)))
    # The batch's events handed their emails over together: one send_emails message sent all three.
    assert sorted((line["task"], line["outbox"]) for line in _email_logs(worker)) == [(SEND_EMAILS, i) for i in ids]
    publish(celery_app, SEND_EMAILS, ids)  # again, as a redelivery would: nothing is sent twice
    support.wait_for(lambda: _outbox_statuses(store_session_factory) == ["sent"] * 3)
    with store_session_factory() as session:
        assert all(row.attempts == 1 for row in session.scalars(select(EmailOutbox)))


def _outbox_statuses(session_factory) -> list[str]:
    with session_factory() as session:
        return list(session.scalars(select(EmailOutbox.status).order_by(EmailOutbox.id)))


def _email_logs(worker) -> list[dict]:
    """The worker's structured "email" lines, one a send."""
    lines = []
    for line in worker.log_path.read_text(errors="replace").splitlines():
        start = line.find('{"msg":"email"')
        if start >= 0:
            lines.append(json.loads(line[start:]))
    return lines
