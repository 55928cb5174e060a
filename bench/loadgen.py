"""A small HTTP load generator (wrk is not on every machine): threads, each with one keep-alive
`http.client` connection, bounded by a request count and a time limit.

`closed_loop` measures throughput (each connection sends its next request as soon as the last one
is answered); `fixed_rate` measures latency at a given arrival rate, timing each request from the
moment it was due, so a stalled server cannot hide its queueing delay (no coordinated omission).

The collector is off while a run lasts: this process holds the harness (SQLAlchemy, Celery, the
deliveries), and a full collection of it stalls every client thread for 50-100 ms, which would be
counted as the server's latency. (wrk has no such pauses; the requests' own garbage is freed by
reference counting.)
"""

from __future__ import annotations

import contextlib
import gc
import http.client
import itertools
import threading
import time
from dataclasses import dataclass, field

Delivery = tuple[bytes, dict[str, str]]


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """Milliseconds; nearest-rank."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered))) - 1))
        return ordered[rank] * 1000


class _Client:
    def __init__(self, port: int, path: str):
        self.port = port
        self.path = path
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, body: bytes, headers: dict[str, str]) -> int:
        try:
            self.conn.request("POST", self.path, body=body, headers=headers)
            response = self.conn.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            raise

    def close(self) -> None:
        self.conn.close()


def _merge(results: list[LoadResult], seconds: float) -> LoadResult:
    total = LoadResult(seconds=seconds)
    for r in results:
        total.sent += r.sent
        total.ok += r.ok
        total.errors += r.errors
        total.latencies.extend(r.latencies)
        for status, n in r.statuses.items():
            total.statuses[status] = total.statuses.get(status, 0) + n
    return total


def _record(result: LoadResult, client: _Client, body: bytes, headers: dict, due: float) -> None:
    result.sent += 1
    try:
        status = client.post(body, headers)
    except (OSError, http.client.HTTPException):
        result.errors += 1
        return
    result.statuses[status] = result.statuses.get(status, 0) + 1
    if 200 <= status < 300:
        result.ok += 1
        result.latencies.append(time.perf_counter() - due)
    else:
        result.errors += 1


@contextlib.contextmanager
def _collector_paused():
    """(Used as a decorator: the collection before the pause happens before a run's clock starts.)"""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@_collector_paused()
def closed_loop(
    port: int, path: str, deliveries: list[Delivery], *, connections: int = 16, max_seconds: float = 30.0
) -> LoadResult:
    """Send every delivery once (or until `max_seconds`), `connections` at a time."""
    cursor = itertools.count()
    results = [LoadResult() for _ in range(connections)]

    def run(client: _Client, result: LoadResult, started: float) -> None:
        deadline = started + max_seconds
        while time.perf_counter() < deadline:
            i = next(cursor)
            if i >= len(deliveries):
                return
            body, headers = deliveries[i]
            _record(result, client, body, headers, time.perf_counter())

    started = _run_threads(port, path, run, results, lead=0.0)
    return _merge(results, time.perf_counter() - started)


@_collector_paused()
def fixed_rate(
    port: int, path: str, deliveries: list[Delivery], *, rate: float, connections: int = 32, max_seconds: float = 30.0
) -> LoadResult:
    """Send delivery i at `start + i / rate`; latency counts from that due time."""
    cursor = itertools.count()
    results = [LoadResult() for _ in range(connections)]

    def run(client: _Client, result: LoadResult, started: float) -> None:
        deadline = started + max_seconds
        while True:
            i = next(cursor)
            due = started + i / rate
            if i >= len(deliveries) or due > deadline:
                return
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            body, headers = deliveries[i]
            _record(result, client, body, headers, due)

    started = _run_threads(port, path, run, results, lead=0.05)
    return _merge(results, time.perf_counter() - started)


def _run_threads(port: int, path: str, target, results: list[LoadResult], *, lead: float) -> float:
    """Run `target(client, result, started)` on a thread per connection; returns `started`.

    The threads start and connect first, and the clock starts `lead` seconds after the last one
    is connected: thread start-up and TCP set-up are the generator's own cost, not the server's
    latency (counted in, they made the first tenth of a second of every fixed-rate run a stall
    that alone could decide its p99)."""
    connected = threading.Barrier(len(results) + 1)
    go = threading.Event()
    clock: dict[str, float] = {}

    def run(result: LoadResult) -> None:
        client = _Client(port, path)
        try:
            with contextlib.suppress(OSError):  # a refused connect is retried by the first request
                client.conn.connect()
            connected.wait()
            go.wait()
            target(client, result, clock["started"])
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(r,), daemon=True) for r in results]
    for t in threads:
        t.start()
    connected.wait()
    clock["started"] = time.perf_counter() + lead
    go.set()
    for t in threads:
        t.join()
    return clock["started"]
