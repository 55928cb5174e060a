"""Thin tasks: take ids, open sessions, call the domain. Explicit names read well in Flower."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from celery import shared_task
from celery.exceptions import Retry
from celery.signals import task_postrun
from sqlalchemy import select

from shared import handoff, metrics, processing
from shared.errors import NotConfigured, PermanentError, ProviderError, TransientError
from shared.logs import log_line
from shared.models import WebhookEvent
from shared.outgoing import events as outgoing
from shared.stripe import reconcile
from worker import retry
from worker.celery_app import runtime
from worker.messages import (
    PROCESS_EVENT,
    PROCESS_EVENTS,
    RECONCILE_STRIPE,
    SEND_EMAIL,
    SEND_EMAILS,
    SWEEP_INBOX,
    enqueue_event,
)

log = logging.getLogger("billhook.worker")


@shared_task(bind=True, name=PROCESS_EVENT, acks_late=True, max_retries=None)
def process_event(self, event_pk: int) -> str:
    rt = runtime(self.app)
    with rt.starts.run(self.request, limit=rt.settings.task_max_interrupted_runs) as given_up:
        if given_up:  # each earlier run died with its process: this one would too
            return _handle_failure(self, rt, event_pk, PermanentError(given_up), time.perf_counter())
        return _process_event(self, rt, event_pk)


@shared_task(bind=True, name=PROCESS_EVENTS, acks_late=True, ignore_result=True)
def process_events(self, event_pks: list[int]) -> list[str]:
    """Several events, each exactly as `process_event` runs it: first all in one transaction
    (`processing.process_batch`, each event's effects committing with its own mark); when one of
    them fails there, each in a transaction of its own (one failing rolls back no other), its
    failure recorded and, when it may succeed later, retried as a `process_event` message of its
    own with its own backoff. A batch redelivered after its runs died `task_max_interrupted_runs`
    times is split into one message per event: the event that kills its process is then
    dead-lettered alone, the others run."""
    rt = runtime(self.app)
    with rt.starts.run(self.request, limit=rt.settings.task_max_interrupted_runs) as given_up:
        if given_up:
            for event_pk in event_pks:
                enqueue_event(self.app, event_pk)
            log_line(log, "batch split", level=logging.WARNING, task=PROCESS_EVENTS, events=len(event_pks))
            return []
        committed: list[processing.Result] = []
        pks = [int(event_pk) for event_pk in event_pks]
        try:
            with outgoing.endpoints_read_once():
                ran = _run_batch(self, rt, pks, committed)
                if ran is not None:
                    return ran
                return [_process_event(self, rt, event_pk, batched=committed) for event_pk in pks]
        finally:
            # What the batch's committed events queued, handed over together: the publisher then
            # sends their emails in `send_emails` messages of several rows, not one message an
            # email (an event takes longer than its linger). Should the process die before this,
            # the rows are committed and the outbox's and the deliveries' sweepers queue them.
            for result in committed:
                _hand_over(rt, result)


def _run_batch(task, rt, pks: list[int], committed: list[processing.Result]) -> list[str] | None:
    """The events in one transaction: their outcomes, or None when it rolled back (the caller then
    runs them one by one)."""
    started = time.perf_counter()
    results = processing.process_batch(rt.session_factory, pks, clock=rt.clock)
    if results is None:
        return None
    committed.extend(results)
    seconds = (time.perf_counter() - started) / max(len(pks), 1)
    return [_finished(task, event_pk, result, seconds) for event_pk, result in zip(pks, results, strict=True)]


def _hand_over(rt, result: processing.Result) -> None:
    handoff.after_commit(result, email=rt.publisher.publish_email, delivery=rt.publisher.publish_delivery)


def _process_event(task, rt, event_pk: int, *, batched: list[processing.Result] | None = None) -> str:
    """Run one event; `batched` is a batch's list of committed results to hand over after it (a
    single event's are handed over at once)."""
    started = time.perf_counter()
    try:
        result = processing.process_event(rt.session_factory, event_pk, clock=rt.clock)
    except Exception as exc:
        return _handle_failure(task, rt, event_pk, exc, started, batched=batched is not None)
    # The event's transaction has committed: publish what it queued.
    if batched is None:
        _hand_over(rt, result)
    else:
        batched.append(result)
    return _finished(task, event_pk, result, time.perf_counter() - started)


def _finished(task, event_pk: int, result: processing.Result, seconds: float) -> str:
    """A committed run's metric and log line (a batch's events share its time equally)."""
    metrics.record_event_run(result.event_type, result.outcome, seconds)
    log_line(
        log,
        "task",
        task=PROCESS_EVENT,
        event=event_pk,
        type=result.event_type,
        account=result.account_id,
        outcome=result.outcome,
        attempt=task.request.retries + 1,
        duration_ms=round(seconds * 1000, 2),
    )
    return result.outcome


def _handle_failure(task, rt, event_pk: int, exc: Exception, started: float, *, batched: bool = False) -> str:
    settings = rt.settings
    retries = 0 if batched else task.request.retries  # a batch is a first run for each of its events
    now = rt.clock()
    exhausted = retries >= settings.task_max_retries and not processing.still_waiting(
        rt.session_factory, event_pk, exc, now=now, wait_seconds=settings.dependency_wait_seconds
    )
    final = not processing.is_transient(exc) or exhausted
    countdown = 0 if final else retry.countdown(retries, settings)
    try:
        processing.record_failure(
            rt.session_factory, event_pk, exc, at=now, retry_at=None if final else now + timedelta(seconds=countdown)
        )
    except Exception as unrecorded:  # noqa: BLE001 - the store is down: the retry must still be scheduled
        # Unrecorded, the event stays `received`: a retry still runs it after its countdown, and a
        # final failure that could not be marked is re-queued by the sweeper (received and stale).
        log_line(
            log,
            "could not record the failure",
            level=logging.WARNING,
            task=PROCESS_EVENT,
            event=event_pk,
            error=processing.describe(unrecorded),
        )
    log_line(
        log,
        "task",
        level=logging.WARNING,
        task=PROCESS_EVENT,
        event=event_pk,
        outcome="failed" if final else "retry",
        attempt=retries + 1,
        error=processing.describe(exc),
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    metrics.record_event_run(_event_type(rt, event_pk), "failed" if final else "retry", time.perf_counter() - started)
    if final:
        return "failed"
    metrics.record_retry(exc)
    if batched:
        # The event's retry is a message of its own: the rest of its batch is done or goes on.
        # Should the publish fail, the event stays received with its retry time, for the sweeper.
        try:
            task.app.send_task(PROCESS_EVENT, args=[event_pk], countdown=countdown, retries=retries + 1)
        except Exception as unpublished:  # noqa: BLE001 - the broker is down: the sweeper has the event
            log_line(
                log,
                "retry not published; the sweeper will queue it",
                level=logging.WARNING,
                task=PROCESS_EVENT,
                event=event_pk,
                error=type(unpublished).__name__,
            )
        return "retry"
    # Celery logs the retry's exception: its description, never the error's text (which may
    # quote values from the database, see processing.describe).
    raise task.retry(exc=TransientError(processing.describe(exc)), countdown=countdown)


def _event_type(rt, event_pk: int) -> str | None:
    """The event's type for the failure metric; None when the store cannot say (it may be down)."""
    try:
        with rt.session_factory() as session:
            return session.scalar(select(WebhookEvent.type).filter_by(id=event_pk))
    except Exception:  # noqa: BLE001 - a metric label is not worth a second failure
        return None


@shared_task(bind=True, name=SWEEP_INBOX, acks_late=True, ignore_result=True)
def sweep_inbox(self) -> int:
    rt = runtime(self.app)
    settings = rt.settings
    queued = processing.sweep(
        rt.session_factory,
        lambda pk: enqueue_event(self.app, pk),
        now=rt.clock(),
        grace_seconds=settings.sweep_grace_seconds,
    )
    if queued:
        log_line(log, "sweep", task=SWEEP_INBOX, requeued=len(queued))
    return len(queued)


@shared_task(bind=True, name=RECONCILE_STRIPE, acks_late=True, ignore_result=True)
def reconcile_stripe(self) -> int:
    """Store and queue the Stripe events of the lookback window the inbox lacks. Skipped, not
    failed, while Stripe has no API key configured."""
    return run_reconcile(
        self, reconcile.reconcile_stripe, task_name=RECONCILE_STRIPE, unconfigured="Stripe has no API key"
    )


def run_reconcile(task, reconcile_events, *, task_name: str, unconfigured: str) -> int:
    """One provider's reconciliation over the lookback window (Stripe's and PayPal's beat tasks):
    the number of events stored anew. A provider without credentials is skipped, one that cannot
    be reached or refuses is logged; the next run looks back as far."""
    rt = runtime(task.app)
    now = rt.clock()
    try:
        result = reconcile_events(
            rt.session_factory,
            rt.settings,
            since=now - timedelta(seconds=rt.settings.reconcile_lookback_seconds),
            now=now,
            enqueue=lambda pk: enqueue_event(task.app, pk),
        )
    except NotConfigured:
        log_line(log, f"reconcile skipped: {unconfigured}", task=task_name)
        return 0
    except ProviderError as exc:
        log_line(log, "reconcile failed", level=logging.WARNING, task=task_name, error=exc.message)
        return 0
    return len(result.inserted)


@task_postrun.connect
def _count_email_outcome(sender=None, retval=None, **_kwargs) -> None:
    """Emails by outcome, from the send task's return value (a Retry exception when it retries;
    the batch task returns one outcome a row)."""
    name = getattr(sender, "name", None)
    if name == SEND_EMAIL:
        metrics.record_email(retval if isinstance(retval, str) else "retry" if isinstance(retval, Retry) else "error")
    elif name == SEND_EMAILS and isinstance(retval, list):
        for outcome in retval:
            metrics.record_email(outcome)
