"""Publishing task ids off the caller's path: a request (or a task) hands an id over and goes on.

Every id published here belongs to a row that is already committed (an inbox event, an outbox
email), and a sweeper re-queues such rows after a grace period. So the publisher may drop ids
rather than make anybody wait on the broker:

- `publish_event(pk)` / `publish_email(pk)` / `publish_delivery(pk)` put the id on a bounded
  in-process queue and return at once;
- one daemon thread per process (started on first use, so after gunicorn's or billiard's fork)
  takes what is queued and pushes it onto the broker's queue in one LPUSH per batch, each message
  the one Celery's producer would send (`messages.RedisMessageEncoder`), the events and the emails
  that gathered grouped into batch messages of a few ids (`messages.batches`); it lets a batch gather
  for a few milliseconds first, since a push's fixed cost (a round trip, a thread wake-up) is
  several times a message's;
- a failed publish opens a circuit breaker: the pending ids are dropped (the sweeper has them) and
  nothing is published for `pause_seconds`, so a dead broker costs one connection timeout per
  pause, not one per request. A full queue drops too, for the same reason.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable

import redis
from celery import Celery

from shared.config import Settings
from shared.logs import log_line
from worker.config import new_celery
from worker.messages import DELIVER_OUTGOING, PROCESS_EVENT, SEND_EMAIL, RedisMessageEncoder, batches

log = logging.getLogger("billhook.publisher")

MAX_PENDING = 10_000
MAX_BATCH = 500
LINGER_SECONDS = 0.005
PAUSE_SECONDS = 5.0
EXIT_FLUSH_SECONDS = 2.0


BROKER_SOCKET_TIMEOUT_SECONDS = 2.0


def publishing_celery(settings: Settings) -> Celery:
    """The Celery app of a process that only publishes (web): it names the broker and the queue and
    builds the messages; the publisher pushes them on a Redis client of its own, with socket
    timeouts (`Publisher._broker`). No tasks are loaded."""
    return new_celery(settings)


class Publisher:
    def __init__(
        self,
        app: Celery | Callable[[], Celery],
        *,
        max_pending: int = MAX_PENDING,
        pause_seconds: float = PAUSE_SECONDS,
        linger_seconds: float = LINGER_SECONDS,
    ):
        # A factory defers building the Celery app (and its broker pool) to the publishing process.
        self._app_or_factory = app
        self._app: Celery | None = None
        self._encoder: RedisMessageEncoder | None = None
        self._client: redis.Redis | None = None
        self._max_pending = max_pending
        self._pause_seconds = pause_seconds
        self._linger_seconds = linger_seconds
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._queue: queue.Queue[tuple[str, int]] = queue.Queue(max_pending)
        self._paused_until = 0.0
        self._dropped = 0  # since the last report
        self.published = 0
        self.dropped = 0
        # A fork may copy the lock while another thread holds it; the child starts with its own.
        os.register_at_fork(after_in_child=self._forget_lock)

    def _forget_lock(self) -> None:
        self._lock = threading.Lock()

    # -- the caller's side: never blocks, never raises for the broker --------------------------

    def publish_event(self, event_pk: int) -> None:
        self._put(PROCESS_EVENT, event_pk)

    def publish_email(self, outbox_id: int) -> None:
        self._put(SEND_EMAIL, outbox_id)

    def publish_delivery(self, delivery_id: int) -> None:
        self._put(DELIVER_OUTGOING, delivery_id)

    @property
    def paused(self) -> bool:
        return time.monotonic() < self._paused_until

    def _put(self, task: str, pk: int) -> None:
        self._ensure_thread()
        if self.paused:
            self._drop(1)
            return
        try:
            self._queue.put_nowait((task, pk))
        except queue.Full:
            self._drop(1)

    def _drop(self, count: int) -> None:
        with self._lock:
            self._dropped += count
            self.dropped += count

    def _ensure_thread(self) -> None:
        pid = os.getpid()
        if self._pid == pid:
            return
        with self._lock:
            if self._pid == pid:
                return
            # In a forked child the parent's thread, queue contents and broker connections are
            # not ours: start afresh (the parent's pending ids are the parent's to publish).
            self._queue = queue.Queue(self._max_pending)
            self._app = self._encoder = self._client = None
            self._paused_until = 0.0
            threading.Thread(target=self._run, name="billhook-publisher", daemon=True).start()
            self._pid = pid
            atexit.register(self.flush, EXIT_FLUSH_SECONDS)

    def flush(self, timeout: float) -> bool:
        """Wait until everything handed over so far is published or dropped; True when it is."""
        if self._pid != os.getpid():
            return True
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    # -- the publishing thread ------------------------------------------------------------------

    def _run(self) -> None:
        pending = self._queue
        while True:
            batch = [pending.get()]
            # A sleep, not a get with a timeout: callers' puts then wake nobody while it gathers.
            time.sleep(self._linger_seconds)
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(pending.get_nowait())
                except queue.Empty:
                    break
            try:
                if self.paused:
                    self._drop(len(batch))
                else:
                    self._publish(batch)
            finally:
                for _ in batch:
                    pending.task_done()

    def _publish(self, batch: list[tuple[str, int]]) -> None:
        try:
            encoder, client = self._broker()
            by_task: dict[str, list[int]] = {}
            for task, pk in batch:
                by_task.setdefault(task, []).append(pk)
            by_queue: dict[str, list[str]] = {}
            for task, pks in by_task.items():
                # Events and emails that gathered go in batch messages (messages.batches).
                for message_task, arg in batches(task, pks):
                    by_queue.setdefault(encoder.queue_of(message_task), []).append(encoder.encode(message_task, arg))
            # One LPUSH per queue, oldest first (workers take from the other end): one round trip
            # for a batch on billhook's queue alone, a pipeline of two when deliveries are in it.
            if len(by_queue) == 1:
                ((queue_name, messages),) = by_queue.items()
                client.lpush(queue_name, *messages)
            else:
                with client.pipeline(transaction=False) as pipe:
                    for queue_name, messages in by_queue.items():
                        pipe.lpush(queue_name, *messages)
                    pipe.execute()
        except Exception as exc:  # noqa: BLE001 - any publish failure opens the breaker
            self._open_breaker(len(batch), exc)
            return
        self.published += len(batch)
        self._report_recovery()

    def _open_breaker(self, failed: int, exc: Exception) -> None:
        self._paused_until = time.monotonic() + self._pause_seconds
        dropped = failed
        while True:  # what waits behind the failed batch would meet the same broker
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            self._queue.task_done()
            dropped += 1
        self._drop(dropped)
        with self._lock:
            total, self._dropped = self._dropped, 0
        log_line(
            log,
            "publish failed; ids left to the sweepers",
            level=logging.WARNING,
            dropped=total,
            pause_seconds=self._pause_seconds,
            error=type(exc).__name__,
        )

    def _report_recovery(self) -> None:
        if not self._dropped:
            return
        with self._lock:
            total, self._dropped = self._dropped, 0
        log_line(log, "publishing again; ids dropped meanwhile are left to the sweepers", dropped=total)

    def _broker(self) -> tuple[RedisMessageEncoder, redis.Redis]:
        """The message encoder and a Redis client of this process, on the Celery app's broker with
        socket timeouts: a broker that accepts and never answers opens the breaker instead of
        holding the publishing thread."""
        if self._encoder is None or self._client is None:
            if self._app is None:
                factory = self._app_or_factory
                self._app = factory if isinstance(factory, Celery) else factory()
            self._client = redis.Redis.from_url(
                self._app.conf.broker_url,
                socket_timeout=BROKER_SOCKET_TIMEOUT_SECONDS,
                socket_connect_timeout=BROKER_SOCKET_TIMEOUT_SECONDS,
            )
            self._encoder = RedisMessageEncoder(self._app)
        return self._encoder, self._client
