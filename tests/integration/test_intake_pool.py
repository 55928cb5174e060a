"""Webhook intake under concurrency keeps its database connections: every request thread of a web
process reuses a pooled connection, none opens (and closes) one of its own per webhook."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

from sqlalchemy import event

from shared.db import JsonText
from web.context import Billhook

THREADS = 8
PER_THREAD = 40


def test_concurrent_webhooks_reuse_one_connection_per_request_thread(pg_settings):
    ext = Billhook(pg_settings.with_overrides(web_threads=THREADS), enqueue=lambda _pk: None, enqueue_email=print)
    connects = []
    event.listen(ext._intake_engine, "connect", lambda *_: connects.append(1))
    barrier = threading.Barrier(THREADS)
    stored = []

    def deliver(thread: int) -> None:
        barrier.wait()
        for n in range(PER_THREAD):
            event_id = f"evt_pool_{thread}_{n}"
            result = ext.store_event(
                provider="stripe",
                event_id=event_id,
                type="invoice.paid",
                payload=JsonText(json.dumps({"id": event_id})),
                event_created_at=None,
                handled=True,
                at=datetime.now(UTC),
            )
            stored.append(result.new)
            time.sleep(0.002 * ((thread + n) % 3))  # requests come and go, as a server's do

    threads = [threading.Thread(target=deliver, args=(t,)) for t in range(THREADS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        ext.dispose()
    assert stored.count(True) == THREADS * PER_THREAD
    # At most one connection per thread, opened once; a pool smaller than the threads closes its
    # overflow connections as they come back and opens new ones for the next webhooks.
    assert 1 <= len(connects) <= THREADS
