"""Outgoing webhook tasks: deliver one (endpoint, event) by delivery id, on the outgoing queue;
sweep for deliveries whose task was lost or whose wait outgrew a countdown; record lapses."""

from __future__ import annotations

import logging
import time

from celery import shared_task

from shared import handoff, metrics
from shared.billing import lapses
from shared.logs import log_line
from shared.outgoing import delivery
from shared.processing import describe
from worker.celery_app import runtime
from worker.messages import DELIVER_OUTGOING, LAPSE_SUBSCRIPTIONS, SWEEP_OUTGOING, enqueue_delivery

log = logging.getLogger("billhook.worker")


@shared_task(bind=True, name=DELIVER_OUTGOING, acks_late=True, max_retries=None)
def deliver_outgoing(self, delivery_id: int) -> str:
    rt = runtime(self.app)
    settings = rt.settings
    started = time.perf_counter()
    try:
        result = delivery.deliver(rt.session_factory, delivery_id, settings=settings, clock=rt.clock)
    except Exception as exc:  # the store is down or a bug: the row is as it was, the sweep retries it
        result = delivery.Attempt("error", error=describe(exc))
    metrics.record_delivery(result.outcome)
    log_line(
        log,
        "delivery",
        level=logging.INFO if result.outcome in (delivery.DELIVERED, delivery.ALREADY_DONE) else logging.WARNING,
        task=DELIVER_OUTGOING,
        delivery=delivery_id,
        endpoint=result.endpoint_id,
        type=result.event_type,
        outcome=result.outcome,
        status=result.status_code,
        error=result.error,
        attempt=self.request.retries + 1,
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    # A countdown must stay below the broker's visibility timeout (or Redis redelivers it in a
    # loop): a longer wait is left to the sweep, which finds the row once next_attempt_at passed.
    if result.outcome == delivery.RETRY and result.retry_in < settings.retry_backoff_max_seconds:
        raise self.retry(countdown=result.retry_in)
    return result.outcome


@shared_task(bind=True, name=SWEEP_OUTGOING, acks_late=True, ignore_result=True)
def sweep_outgoing(self) -> int:
    """Publish pending deliveries whose task may be lost or whose long wait is over (see delivery.sweep)."""
    rt = runtime(self.app)
    queued = delivery.sweep(
        rt.session_factory,
        lambda delivery_id: enqueue_delivery(self.app, delivery_id),
        now=rt.clock(),
        grace_seconds=rt.settings.sweep_grace_seconds,
    )
    if queued:
        log_line(log, "sweep", task=SWEEP_OUTGOING, requeued=len(queued))
    return len(queued)


@shared_task(bind=True, name=LAPSE_SUBSCRIPTIONS, acks_late=True, ignore_result=True)
def lapse_subscriptions(self) -> int:
    """Record `subscription.lapsed` for past_due subscriptions whose grace has ended."""
    rt = runtime(self.app)
    outcome = lapses.lapse_past_due(rt.session_factory, now=rt.clock())
    handoff.hand_over(rt.publisher.publish_delivery, outcome.deliveries, what="delivery")
    if outcome.account_id:
        log_line(log, "lapses", task=LAPSE_SUBSCRIPTIONS, deliveries=len(outcome.deliveries))
    return len(outcome.deliveries)
