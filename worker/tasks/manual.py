"""Manual payments' beat task: a manual plan period that ended without a new approved payment
lapses to `canceled` (shared.billing.manual_payments.lapse_ended_periods)."""

from __future__ import annotations

import logging
import time

from celery import shared_task

from shared import handoff
from shared.billing import manual_payments
from shared.logs import log_line
from shared.outcome import Outcome
from worker.celery_app import runtime
from worker.messages import LAPSE_MANUAL_SUBSCRIPTIONS

log = logging.getLogger("billhook.worker")


@shared_task(bind=True, name=LAPSE_MANUAL_SUBSCRIPTIONS, acks_late=True, ignore_result=True)
def lapse_manual_subscriptions(self) -> int:
    rt = runtime(self.app)
    started = time.perf_counter()
    outcome = Outcome()
    with rt.session_factory.begin() as session:
        lapsed = manual_payments.lapse_ended_periods(session, outcome, now=rt.clock())
    handoff.hand_over(rt.publisher.publish_delivery, outcome.deliveries, what="delivery")  # after the commit
    if lapsed:
        log_line(
            log,
            "task",
            task=LAPSE_MANUAL_SUBSCRIPTIONS,
            outcome="lapsed",
            lapsed=len(lapsed),
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
    return len(lapsed)
