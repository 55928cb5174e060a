"""Prometheus metrics, shared by web and the workers.

Counters and histograms are recorded where things happen (intake, tasks). Under gunicorn and
Celery's prefork pool each process keeps its own values: with PROMETHEUS_MULTIPROC_DIR set (as
`make run` does, before any process starts) they are written to files there and web's /metrics
adds them up, workers included. Backlog and queue depth are not counted in-process at all: they
are read from the store and the broker when scraped (`StoreCollector`), so they are right
whichever process answers.

Labels stay bounded: provider, event type (only verified events have one), outcome, status.
Never an account or event id.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared.models import EmailOutbox, OutgoingDelivery, WebhookEvent
from shared.models.events import EventStatus

log = logging.getLogger("billhook.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNKNOWN_TYPE = "unknown"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

WEBHOOKS_RECEIVED = Counter(
    "billhook_webhooks_received",
    "Webhook deliveries by provider, event type and outcome (accepted, duplicate, rejected).",
    ["provider", "type", "outcome"],
)
INTAKE_SECONDS = Histogram(
    "billhook_webhook_intake_seconds",
    "Time from request to answer for a webhook delivery.",
    ["provider"],
    buckets=LATENCY_BUCKETS,
)
EVENTS_PROCESSED = Counter(
    "billhook_events_processed",
    "Event task runs by outcome (done, already_done, ignored, missing, retry, failed, dead_lettered).",
    ["type", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "billhook_event_handler_seconds",
    "Time one event task run took, handler and its transaction included.",
    ["type"],
    buckets=LATENCY_BUCKETS,
)
EVENT_RETRIES = Counter(
    "billhook_event_retries",
    "Event task retries scheduled after a transient error, by error class.",
    ["error"],
)
EMAILS = Counter(
    "billhook_emails",
    "Outbox send task runs by outcome (sent, already_done, retry, failed, missing).",
    ["outcome"],
)
OUTGOING_DELIVERIES = Counter(
    "billhook_outgoing_deliveries",
    "Outgoing webhook delivery attempts by outcome (delivered, retry, failed, already_done, busy, not_due, ...).",
    ["outcome"],
)
RECONCILED_EVENTS = Counter(
    "billhook_reconciled_events",
    "Events reconciliation found missing from the inbox and inserted.",
    ["provider"],
)
PAYMENT_MISMATCHES = Counter(
    "billhook_payment_mismatch",
    "Payments refused because their amount, currency or status is not what billhook created them for.",
    ["provider"],
)
STRIPE_NEWER_API_VERSION = Counter(
    "billhook_stripe_newer_api_version",
    "Stripe event runs in an API version newer than billhook knows (read with the newest era's shapes).",
    ["api_version"],
)


def record_webhook(provider: str, event_type: str | None, outcome: str, seconds: float) -> None:
    WEBHOOKS_RECEIVED.labels(provider, event_type or UNKNOWN_TYPE, outcome).inc()
    INTAKE_SECONDS.labels(provider).observe(seconds)


def record_event_run(event_type: str | None, outcome: str, seconds: float) -> None:
    EVENTS_PROCESSED.labels(event_type or UNKNOWN_TYPE, outcome).inc()
    HANDLER_SECONDS.labels(event_type or UNKNOWN_TYPE).observe(seconds)


def record_retry(error: BaseException) -> None:
    EVENT_RETRIES.labels(type(error).__name__).inc()


def record_email(outcome: str) -> None:
    EMAILS.labels(outcome or "unknown").inc()


def record_delivery(outcome: str) -> None:
    OUTGOING_DELIVERIES.labels(outcome or "unknown").inc()


def record_payment_mismatch(provider: str) -> None:
    PAYMENT_MISMATCHES.labels(provider).inc()


# -- read at scrape time ----------------------------------------------------------------------


class StoreCollector:
    """Inbox backlog by status, the age of the oldest unprocessed event, the email outbox by
    status, and the broker queue's depth, read when Prometheus scrapes. A source that does not
    answer is reported as `billhook_scrape_source_up{source=...} 0`, never as an error page."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        queue_depth: Callable[[], int] | None,
        *,
        queue_name: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self._session_factory = session_factory
        self._queue_depth = queue_depth
        self._queue_name = queue_name
        self._clock = clock

    def describe(self) -> list:
        return []  # collected on demand: never called at registration

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("billhook_scrape_source_up", "Whether a source answered this scrape.", labels=["source"])
        try:
            yield from self._store_metrics()
            up.add_metric(["database"], 1)
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because the store is down
            log.warning("metrics: store unavailable: %s", type(exc).__name__)
            up.add_metric(["database"], 0)
        if self._queue_depth is not None:
            try:
                depth = self._queue_depth()
                queue = GaugeMetricFamily(
                    "billhook_queue_depth", "Tasks waiting in the broker queue.", labels=["queue"]
                )
                queue.add_metric([self._queue_name], depth)
                yield queue
                up.add_metric(["broker"], 1)
            except Exception as exc:  # noqa: BLE001
                log.warning("metrics: broker unavailable: %s", type(exc).__name__)
                up.add_metric(["broker"], 0)
        yield up

    def _store_metrics(self) -> list[Metric]:
        with self._session_factory() as session:
            by_status = dict(
                session.execute(select(WebhookEvent.status, func.count()).group_by(WebhookEvent.status)).all()
            )
            oldest = session.scalar(
                select(func.min(WebhookEvent.received_at)).where(WebhookEvent.status == EventStatus.RECEIVED)
            )
            emails = dict(session.execute(select(EmailOutbox.status, func.count()).group_by(EmailOutbox.status)).all())
            deliveries = dict(
                session.execute(select(OutgoingDelivery.status, func.count()).group_by(OutgoingDelivery.status)).all()
            )
            undelivered = session.scalar(
                select(func.min(OutgoingDelivery.created_at)).where(OutgoingDelivery.status == "pending")
            )
        backlog = GaugeMetricFamily("billhook_inbox_events", "Inbox events by status.", labels=["status"])
        for status in tuple(EventStatus):
            backlog.add_metric([status], by_status.get(status, 0))
        age = GaugeMetricFamily(
            "billhook_inbox_oldest_unprocessed_age_seconds",
            "Age of the oldest received or processing event (0 when none).",
        )
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        age.add_metric([], max(0.0, (self._clock() - oldest).total_seconds()) if oldest else 0.0)
        outbox = GaugeMetricFamily("billhook_email_outbox", "Email outbox rows by status.", labels=["status"])
        for status in ("pending", "sent", "failed", *sorted(set(emails) - {"pending", "sent", "failed"})):
            outbox.add_metric([status], emails.get(status, 0))
        outgoing = GaugeMetricFamily(
            "billhook_outgoing_deliveries_by_status", "Outgoing webhook deliveries by status.", labels=["status"]
        )
        for status in ("pending", "delivered", "failed"):
            outgoing.add_metric([status], deliveries.get(status, 0))
        if undelivered is not None and undelivered.tzinfo is None:
            undelivered = undelivered.replace(tzinfo=UTC)
        undelivered_age = GaugeMetricFamily(
            "billhook_outgoing_oldest_undelivered_age_seconds",
            "Age of the oldest pending outgoing delivery (0 when none).",
        )
        undelivered_age.add_metric([], max(0.0, (self._clock() - undelivered).total_seconds()) if undelivered else 0.0)
        return [backlog, age, outbox, outgoing, undelivered_age]


PREFIX = "billhook_"


class _BillhookOnly:
    """The multiprocess directory's series that are billhook's. Any process started with the
    directory in its environment writes there (Flower, through the prometheus_client it imports,
    did: 68 of 101 lines); /metrics is billhook's, and Flower serves its own."""

    def __init__(self, path: str):
        self._inner = MultiProcessCollector(None, path=path)

    def collect(self) -> Iterator[Metric]:
        return (family for family in self._inner.collect() if family.name.startswith(PREFIX))


def exposition(extra_collectors: list, *, multiproc_dir: str | None = None) -> bytes:
    """The text exposition: this process's own metrics, or billhook's series of every process
    with a multiprocess directory, plus `extra_collectors` (read now)."""
    multiproc_dir = multiproc_dir or os.environ.get(MULTIPROC_ENV)
    registry = CollectorRegistry()
    if multiproc_dir:
        registry.register(_BillhookOnly(multiproc_dir))
    else:
        from prometheus_client import REGISTRY

        registry = _Merged(REGISTRY, registry)
    for collector in extra_collectors:
        registry.register(collector)
    return generate_latest(registry)


class _Merged(CollectorRegistry):
    """The process-wide registry plus per-scrape collectors, without registering those globally."""

    def __init__(self, base: CollectorRegistry, own: CollectorRegistry):
        super().__init__(auto_describe=False)
        self._base = base
        self._own = own

    def register(self, collector) -> None:
        self._own.register(collector)

    def collect(self) -> Iterator[Metric]:
        yield from self._base.collect()
        yield from self._own.collect()
