"""`python -m bench.backlog` (`make bench-backlog`): a backlog of BENCH_BACKLOG_EVENTS (default
100,000) queued events drained by one worker with the Procfile's settings, its memory sampled every
second: the worker's RSS must stay flat however long the queue is (start, peak and end of the
largest pool process and of the main process are printed, with the drain's rate).

The events are the processing bench's mix (bench/scenario.py: checkouts, renewals, failures,
changes, purchases; no duplicates), stored in one go and queued as the intake's publisher queues
them under load (batch messages, worker/messages.py `batches`). Environment as for `make bench`
(DATABASE_URL, REDIS_URL; PostgreSQL is the store the targets are for). The inbox's query plans at
this size are checked by tests/integration/test_query_plans.py, not here.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid

import psutil

from bench import scenario, services
from bench.__main__ import env_int, say, store_backlog, worker_concurrency
from bench.measure import drain_window
from shared.config import Settings
from worker.celery_app import make_celery
from worker.messages import PROCESS_EVENT, batches

RSS_GROWTH_LIMIT = 1.2  # the end of the drain at most 20% above its first minute's peak: flat


class RssSeries:
    """RSS of a process tree's main process and its largest child, sampled every `interval` s."""

    def __init__(self, pid: int, interval: float = 1.0):
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float, float]] = []  # (seconds, main MB, largest child MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()

    def __enter__(self) -> RssSeries:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                main = psutil.Process(self.pid)
                children = [c.memory_info().rss for c in main.children(recursive=True)]
                self.samples.append(
                    (time.monotonic() - self._started, main.memory_info().rss / 2**20, max(children, default=0) / 2**20)
                )
            except psutil.Error:
                pass
            self._stop.wait(self.interval)

    def summary(self, column: int) -> dict[str, float]:
        values = [s[column] for s in self.samples]
        first_minute = [s[column] for s in self.samples if s[0] <= 60] or values[:1]
        return {"start": values[0], "first_minute_peak": max(first_minute), "peak": max(values), "end": values[-1]}


def main() -> int:
    count = env_int("BENCH_BACKLOG_EVENTS", 100_000)
    tmp = services.make_tmp("billhook-backlog-")
    store = broker = worker = None
    try:
        store = services.Store(os.environ.get("DATABASE_URL"), tmp)
        broker = services.Broker(os.environ.get("REDIS_URL"), tmp)
        queue = f"bench_backlog_{uuid.uuid4().hex[:8]}"
        backlog = scenario.generate(3, count, duplicate_share=0.0, refunds=False, prefix="bl")
        say(f"backlog: storing {len(backlog.events)} events ({store.kind})")
        pks = store_backlog(store, backlog.events)
        app = make_celery(Settings(database_url=store.url, redis_url=broker.url, var_dir=tmp, queue_name=queue))
        queued = batches(PROCESS_EVENT, [pks[evt["id"]] for evt in backlog.events])
        for task, arg in queued:
            app.send_task(task, args=[arg], queue=queue)
        say(f"backlog: {len(queued)} messages queued; draining")
        env = services.service_env(store.url, broker.url, queue, tmp)
        worker = services.start_worker("worker-backlog", env, tmp, concurrency=worker_concurrency())
        with RssSeries(worker.pid) as rss:
            first, end = drain_window(broker.client, queue, len(queued), timeout=4 * 3600)
        seconds = end - first
        pool, main_process = rss.summary(2), rss.summary(1)
        flat = pool["end"] <= RSS_GROWTH_LIMIT * pool["first_minute_peak"]
        events = len(backlog.events)
        print(
            f"backlog of {events} events drained in {seconds:.0f} s ({events / seconds:.0f}/s), "
            f"{len(rss.samples)} samples a second apart\n"
            f"  largest pool process RSS, MB: start {pool['start']:.0f}, first minute's peak "
            f"{pool['first_minute_peak']:.0f}, peak {pool['peak']:.0f}, end {pool['end']:.0f}\n"
            f"  main process RSS, MB: start {main_process['start']:.0f}, peak {main_process['peak']:.0f}, "
            f"end {main_process['end']:.0f}\n"
            f"  flat (end ≤ {RSS_GROWTH_LIMIT:.1f} × the first minute's peak): {'yes' if flat else 'NO'}",
            flush=True,
        )
        broker.delete_queue(queue)
        return 0 if flat else 1
    finally:
        if worker is not None:
            worker.stop()
        if broker is not None:
            broker.close()
        if store is not None:
            store.close()
        services.remove_tmp(tmp)


if __name__ == "__main__":
    sys.exit(main())
