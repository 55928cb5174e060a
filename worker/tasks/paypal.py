"""PayPal tasks: capture approved orders the buyer's browser did not come back to capture, and
reconcile the inbox with PayPal's list of its webhook events.

The handled CHECKOUT.ORDER.APPROVED event is the durable intent; a periodic sweep finds the ones
whose order still has no payment row and queues one capture task per order (ids only). A capture
that PayPal may accept later (5xx, timeout) is simply found again by the next sweep.

The paypal provider's config may set `capture_grace_seconds` (default 60) and
`capture_window_seconds` (default 72 h).
"""

from __future__ import annotations

import logging
import time

from celery import shared_task

from shared.credentials import active_provider
from shared.errors import NotConfigured, ProviderError
from shared.logs import log_line
from shared.paypal import orders as paypal_orders
from shared.paypal.reconcile import reconcile_paypal as reconcile_paypal_events
from worker.celery_app import runtime
from worker.messages import PAYPAL_CAPTURE_ORDER, RECONCILE_PAYPAL, SWEEP_PAYPAL_CAPTURES, publish
from worker.tasks.events import run_reconcile

log = logging.getLogger("billhook.worker")

# The buyer's return normally captures within seconds; only then does the server step in.
DEFAULT_CAPTURE_GRACE_SECONDS = 60.0
# PayPal lets an approved, uncaptured order expire; past this nothing is attempted.
DEFAULT_CAPTURE_WINDOW_SECONDS = 72 * 3600.0


@shared_task(bind=True, name=PAYPAL_CAPTURE_ORDER, acks_late=True, ignore_result=True)
def paypal_capture_order(self, event_pk: int) -> str:
    rt = runtime(self.app)
    started = time.perf_counter()
    try:
        outcome = paypal_orders.capture_approved_order(
            rt.session_factory,
            rt.settings,
            event_pk,
            clock=rt.clock,
            enqueue_email=rt.publisher.publish_email,
            enqueue_delivery=rt.publisher.publish_delivery,
        )
    except (ProviderError, NotConfigured) as exc:
        outcome = "retry_later"
        log_line(
            log,
            "task",
            level=logging.WARNING,
            task=PAYPAL_CAPTURE_ORDER,
            event=event_pk,
            outcome=outcome,
            error=f"{type(exc).__name__}: {exc}"[:300],
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return outcome
    log_line(
        log,
        "task",
        task=PAYPAL_CAPTURE_ORDER,
        event=event_pk,
        outcome=outcome,
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return outcome


@shared_task(bind=True, name=SWEEP_PAYPAL_CAPTURES, acks_late=True, ignore_result=True)
def sweep_paypal_captures(self) -> int:
    rt = runtime(self.app)
    with rt.session_factory() as session:
        provider = active_provider(session, "paypal")
        if provider is None:
            return 0
        config = provider.config or {}
        due = paypal_orders.orders_awaiting_capture(
            session,
            now=rt.clock(),
            grace_seconds=float(config.get("capture_grace_seconds", DEFAULT_CAPTURE_GRACE_SECONDS)),
            window_seconds=float(config.get("capture_window_seconds", DEFAULT_CAPTURE_WINDOW_SECONDS)),
        )
    for event_pk in due:
        publish(self.app, PAYPAL_CAPTURE_ORDER, event_pk)
    if due:
        log_line(log, "sweep", task=SWEEP_PAYPAL_CAPTURES, queued=len(due))
    return len(due)


@shared_task(bind=True, name=RECONCILE_PAYPAL, acks_late=True, ignore_result=True)
def reconcile_paypal(self) -> int:
    """Store and queue the PayPal webhook events of the lookback window the inbox lacks. Skipped,
    not failed, while PayPal has no credentials."""
    return run_reconcile(
        self, reconcile_paypal_events, task_name=RECONCILE_PAYPAL, unconfigured="PayPal has no credentials"
    )
