"""The bound on a poison message: runs of one task message that started and never finished.

A message whose run kills its worker process (out of memory, a crash in a C extension) is handed
back to the broker (acks_late + reject_on_worker_lost), kills the next process, and so on without
end; the run's transaction rolls back each time, so the database keeps no count to stop on. The
count lives in Redis instead, keyed by the task id (a redelivery keeps the message's id; a
duplicate message has an id of its own): incremented when a redelivered message's run starts,
deleted when the run ends in any way its process survives. A first delivery costs no round trip:
the broker marks every message it hands back (a rejected one, an unacknowledged one restored)
`redelivered`, so only those can follow runs that died. A start that finds too many runs died
before gives the message up (the caller dead-letters its row, where ops see it and replay it).

Counting is best effort: if Redis cannot answer, the run goes ahead uncounted.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import redis

log = logging.getLogger("billhook.worker")

KEY = "billhook:task-starts:{}"
TTL_SECONDS = 24 * 3600
SOCKET_TIMEOUT_SECONDS = 2.0


class StartCounter:
    def __init__(self, redis_url: str):
        self._url = redis_url
        self._client: redis.Redis | None = None
        self._pid: int | None = None

    def _redis(self) -> redis.Redis:
        if self._client is None or self._pid != os.getpid():  # a prefork child opens its own
            self._client = redis.Redis.from_url(
                self._url, socket_timeout=SOCKET_TIMEOUT_SECONDS, socket_connect_timeout=SOCKET_TIMEOUT_SECONDS
            )
            self._pid = os.getpid()
        return self._client

    def started(self, task_id: str) -> int:
        """How many earlier runs of this redelivered message never finished, this one included
        (0 when Redis cannot count)."""
        key = KEY.format(task_id)
        try:
            pipe = self._redis().pipeline()
            pipe.incr(key)
            pipe.expire(key, TTL_SECONDS)
            count, _ = pipe.execute()
            return int(count)
        except redis.RedisError as exc:
            log.warning("cannot count task starts (%s); running uncounted", type(exc).__name__)
            return 0

    def finished(self, task_id: str) -> None:
        # If Redis cannot answer, the key expires; a later start of this message counts one run too many.
        with contextlib.suppress(redis.RedisError):
            self._redis().delete(KEY.format(task_id))

    @contextlib.contextmanager
    def run(self, request, *, limit: int) -> Iterator[str | None]:
        """Count a run of the task (Celery's task request) for as long as the block lasts. Yields
        None to go ahead, or why the message is given up: `limit` of its runs died before this
        one (a limit of 0 turns the bound off)."""
        if not (request.delivery_info or {}).get("redelivered"):
            yield None
            return
        died = self.started(request.id)
        try:
            yield f"dead-lettered: {died} runs died with their worker process" if 0 < limit <= died else None
        finally:
            self.finished(request.id)
