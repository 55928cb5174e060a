"""Email tasks: send one outbox row (by id) and sweep for rows whose send task was lost."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from celery import shared_task

from shared import handoff
from shared.email import delivery, outbox
from shared.logs import log_line
from shared.processing import describe
from worker import retry
from worker.celery_app import runtime
from worker.messages import SEND_EMAIL, SEND_EMAILS, SWEEP_OUTBOX, enqueue_email

log = logging.getLogger("billhook.worker")


@shared_task(bind=True, name=SEND_EMAIL, acks_late=True, max_retries=None)
def send_email(self, outbox_id: int) -> str:
    rt = runtime(self.app)
    with rt.starts.run(self.request, limit=rt.settings.task_max_interrupted_runs) as given_up:
        if given_up:  # each earlier run died with its process: this one would too
            _quietly(delivery.mark_failed, rt.session_factory, outbox_id, given_up)
            log_line(
                log, "email", level=logging.WARNING, task=SEND_EMAIL, outbox=outbox_id, outcome="failed", error=given_up
            )
            return delivery.FAILED
        return _send_email(self, rt, outbox_id)


@shared_task(bind=True, name=SEND_EMAILS, acks_late=True, ignore_result=True)
def send_emails(self, outbox_ids: list[int]) -> list[str]:
    """Several outbox rows, each sent as `send_email` sends it (a row is sent once: the send locks
    it and finds it sent on a second run), all in one transaction (`delivery.send_outbox_emails`),
    each in its own when that one fails; a row to retry gets a `send_email` message of its own. A
    batch whose runs kept dying is split into one message per row."""
    rt = runtime(self.app)
    with rt.starts.run(self.request, limit=rt.settings.task_max_interrupted_runs) as given_up:
        if given_up:
            for outbox_id in outbox_ids:
                enqueue_email(self.app, outbox_id)
            return []
        ids = list(dict.fromkeys(int(outbox_id) for outbox_id in outbox_ids))  # a row named twice, once
        if not ids:  # a message of no ids (published by hand): nothing to read, lock or time
            return []
        try:
            provider = delivery.read_provider(rt.session_factory)  # once for the batch's rows
        except Exception:  # noqa: BLE001 - the store is down: each row's send finds out and retries
            return [_send_email(self, rt, outbox_id, batched=True) for outbox_id in ids]
        # The rows in one transaction; should it fail, each row alone (its error handled there).
        started = time.perf_counter()
        results = delivery.send_outbox_emails(
            rt.session_factory, ids, settings=rt.settings, clock=rt.clock, provider=provider
        )
        if results is None:
            return [_send_email(self, rt, outbox_id, batched=True, provider=provider) for outbox_id in ids]
        seconds = (time.perf_counter() - started) / len(results)
        return [
            _after_send(self, rt, outbox_id, result, seconds, batched=True) for outbox_id, result in results.items()
        ]


def _send_email(task, rt, outbox_id: int, *, batched: bool = False, provider=delivery.UNREAD) -> str:
    started = time.perf_counter()
    try:
        result = delivery.send_outbox_email(
            rt.session_factory, outbox_id, settings=rt.settings, clock=rt.clock, provider=provider
        )
    except Exception as exc:  # the store is down or a bug: retry like a provider's 5xx
        result = delivery.SendResult(delivery.RETRY, error=describe(exc))
    return _after_send(task, rt, outbox_id, result, time.perf_counter() - started, batched=batched)


def _after_send(task, rt, outbox_id: int, result: delivery.SendResult, seconds: float, *, batched: bool) -> str:
    """A send's retry (a countdown, or failed for good once retries are exhausted) and log line
    (a batch's rows share its time equally)."""
    settings = rt.settings
    retries = 0 if batched else task.request.retries
    attempt = retries + 1
    outcome = result.outcome
    countdown = None
    if outcome == delivery.RETRY:
        if retries >= settings.task_max_retries:
            outcome = delivery.FAILED
            _quietly(delivery.mark_failed, rt.session_factory, outbox_id, f"retries exhausted: {result.error}")
        else:
            countdown = retry.countdown(retries, settings)
            retry_at = rt.clock() + timedelta(seconds=countdown)
            _quietly(delivery.schedule_retry, rt.session_factory, outbox_id, at=retry_at)
    log_line(
        log,
        "email",
        level=logging.INFO if outcome in (delivery.SENT, delivery.ALREADY_DONE) else logging.WARNING,
        task=SEND_EMAILS if batched else SEND_EMAIL,
        outbox=outbox_id,
        template=result.template,
        account=result.account_id,
        backend=result.backend,
        message_id=result.message_id,
        outcome=outcome,
        attempt=attempt,
        error=result.error,
        duration_ms=round(seconds * 1000, 2),
    )
    if countdown is not None and batched:
        # The row's retry is a message of its own; should the publish fail, the outbox sweep has it.
        try:
            task.app.send_task(SEND_EMAIL, args=[outbox_id], countdown=countdown, retries=retries + 1)
        except Exception as exc:  # noqa: BLE001 - the broker is down
            log_line(
                log, "email retry not published", level=logging.WARNING, outbox=outbox_id, error=type(exc).__name__
            )
    elif countdown is not None:
        raise task.retry(countdown=countdown)
    return outcome


def _quietly(fn, *args, **kwargs) -> None:
    """Bookkeeping that must not stop a retry from being scheduled (the store may be down)."""
    try:
        fn(*args, **kwargs)
    except Exception as exc:
        log_line(log, "email bookkeeping failed", level=logging.WARNING, error=describe(exc))


@shared_task(bind=True, name=SWEEP_OUTBOX, acks_late=True, ignore_result=True)
def sweep_outbox(self) -> int:
    """Publish pending rows whose task may be lost (a broker outage after commit, a lost retry).
    Publishing twice is harmless: the second task finds the row sent."""
    rt = runtime(self.app)
    queued = handoff.sweep(
        rt.session_factory,
        lambda outbox_id: enqueue_email(self.app, outbox_id),
        find_due=outbox.due_for_sweep,
        restart_clock=outbox.restart_sweep_clock,
        now=rt.clock(),
        grace_seconds=rt.settings.sweep_grace_seconds,
        what="email",
    )
    if queued:
        log_line(log, "sweep", task=SWEEP_OUTBOX, requeued=len(queued))
    return len(queued)
