"""Celery's configuration from the settings: one queue, JSON, late acks, and a retry cap that
stays below the broker's visibility timeout (or Redis redelivers a delayed task in a loop)."""

from __future__ import annotations

import pytest

from worker.celery_app import TASK_MODULES, make_celery
from worker.config import new_celery
from worker.messages import (
    DELIVER_OUTGOING,
    LAPSE_SUBSCRIPTIONS,
    RECONCILE_PAYPAL,
    RECONCILE_STRIPE,
    SWEEP_INBOX,
    SWEEP_OUTBOX,
    SWEEP_OUTGOING,
    SWEEP_PAYPAL_CAPTURES,
    queue_for,
)


def test_a_backoff_cap_at_or_above_the_visibility_timeout_is_refused(settings):
    with pytest.raises(ValueError, match="visibility timeout"):
        new_celery(settings.with_overrides(retry_backoff_max_seconds=3600, broker_visibility_timeout_seconds=3600))


def test_tasks_are_acked_late_as_json_on_the_configured_queue(settings):
    app = new_celery(settings.with_overrides(queue_name="billhook-a"))
    conf = app.conf
    assert (conf.task_default_queue, conf.task_serializer, conf.accept_content) == ("billhook-a", "json", ["json"])
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1


def test_beat_runs_every_sweep_and_the_reconciliation_as_tasks_the_worker_has(settings):
    schedule = new_celery(settings).conf.beat_schedule
    assert {
        SWEEP_INBOX,
        RECONCILE_STRIPE,
        RECONCILE_PAYPAL,
        SWEEP_OUTBOX,
        SWEEP_PAYPAL_CAPTURES,
        SWEEP_OUTGOING,
        LAPSE_SUBSCRIPTIONS,
    } <= set(schedule)
    app = make_celery(settings)
    for module in TASK_MODULES:
        __import__(module)
    # A schedule entry naming no task would be published by beat and rejected by every worker.
    assert {entry["task"] for entry in schedule.values()} <= set(app.tasks)


def test_the_workers_app_registers_every_billhook_task(settings):
    app = make_celery(settings)
    app.loader.import_default_modules()
    for module in TASK_MODULES:
        __import__(module)
    names = {name for name in app.tasks if name.startswith("billhook.")}
    assert {SWEEP_INBOX, RECONCILE_STRIPE, SWEEP_OUTBOX, SWEEP_PAYPAL_CAPTURES, "billhook.process_event"} <= names
    assert {DELIVER_OUTGOING, SWEEP_OUTGOING, LAPSE_SUBSCRIPTIONS} <= names


def test_deliveries_go_to_a_queue_of_their_own_and_a_worker_consumes_both(settings):
    app = new_celery(settings.with_overrides(queue_name="billhook-a"))

    assert queue_for(app, DELIVER_OUTGOING) == "billhook-a.outgoing"
    assert queue_for(app, SWEEP_OUTGOING) == queue_for(app, "billhook.process_event") == "billhook-a"
    assert {q.name for q in app.conf.task_queues} == {"billhook-a", "billhook-a.outgoing"}


def test_each_queue_has_its_own_binding(settings):
    app = new_celery(settings.with_overrides(queue_name="billhook-a"))

    bindings = {(q.name, q.exchange.name, q.routing_key) for q in app.conf.task_queues}

    assert bindings == {
        ("billhook-a", "billhook-a", "billhook-a"),
        ("billhook-a.outgoing", "billhook-a.outgoing", "billhook-a.outgoing"),
    }
