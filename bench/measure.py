"""Measuring helpers: peak RSS and CPU time of process trees, and how fast a worker drains a queue."""

from __future__ import annotations

import json
import resource
import threading
import time
from collections.abc import Iterable

import psutil
import redis


class PeakRss:
    """Samples the RSS of every process in the watched trees; keeps the peak per role and kind
    (the main process, and the largest child: a gunicorn worker or a Celery pool process)."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.watched: dict[str, int] = {}
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, role: str, pid: int) -> None:
        self.watched[role] = pid

    def start(self) -> PeakRss:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        for role, pid in list(self.watched.items()):
            try:
                main = psutil.Process(pid)
                self._keep(f"{role} main", main.memory_info().rss)
                for child in main.children(recursive=True):
                    self._keep(f"{role} child", child.memory_info().rss)
            except psutil.Error:
                continue

    def _keep(self, key: str, rss: int) -> None:
        if rss > self.peaks.get(key, 0):
            self.peaks[key] = rss

    def mb(self, key: str) -> float:
        return self.peaks.get(key, 0) / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)


def cpu_seconds(processes: Iterable[psutil.Process]) -> dict[int, float]:
    """User + system CPU seconds by pid; a process that ended meanwhile is left out."""
    seconds = {}
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        seconds[process.pid] = times.user + times.system
    return seconds


class CpuClock:
    """CPU seconds (user + system) a process tree spends between two readings: its main process,
    and its children alive at the second reading (gunicorn workers, Celery pool processes). It
    says where the time goes: the services under test, not the load generator or the database."""

    def __init__(self, pid: int):
        self.pid = pid
        self._start = self._read()

    def _read(self) -> dict[int, float]:
        try:
            main = psutil.Process(self.pid)
            return cpu_seconds([main, *main.children(recursive=True)])
        except psutil.Error:
            return {}

    def split(self) -> tuple[float, float]:
        """(main process, children) CPU seconds since the clock was made."""
        now = self._read()
        spent = {pid: seconds - self._start.get(pid, 0.0) for pid, seconds in now.items()}
        main = spent.pop(self.pid, 0.0)
        return main, sum(spent.values())

    def total(self) -> float:
        return sum(self.split())


class ServiceCpu:
    """CPU seconds the store's and broker's server processes on this machine (PostgreSQL
    backends, redis-server) spend between two readings: their share of a request, on the same
    CPUs as the services measured. Zero when they run elsewhere (or the store is SQLite, whose
    work is the service's own)."""

    NAMES = ("postgres", "redis-server")

    def __init__(self):
        self._start = self._read()

    def _read(self) -> dict[int, float]:
        return cpu_seconds(p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith(self.NAMES))

    def total(self) -> float:
        return sum(seconds - self._start.get(pid, 0.0) for pid, seconds in self._read().items())


class GeneratorCpu:
    """CPU seconds of the load generator: this process (the Python generator's threads) plus
    the children that ended meanwhile (a wrk run)."""

    def __init__(self):
        self._start = self._read()

    @staticmethod
    def _read() -> float:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    def total(self) -> float:
        return self._read() - self._start


def unacked_for(client: redis.Redis, queue: str) -> int:
    """Messages of `queue` a worker holds but has not acknowledged (kombu keeps them in the
    'unacked' hash as [message, exchange, routing_key])."""
    count = 0
    for _key, value in client.hscan_iter("unacked"):
        try:
            if json.loads(value)[2] == queue:
                count += 1
        except (ValueError, IndexError, TypeError):
            continue
    return count


def drain_window(client: redis.Redis, queue: str, initial: int, timeout: float) -> tuple[float, float]:
    """Poll until the queue is empty and nothing of it is unacknowledged; returns the monotonic
    times of the first message taken and of the drain's end."""
    first = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        length = client.llen(queue)
        now = time.monotonic()
        if first is None and length < initial:
            first = now
        if length == 0 and first is not None and unacked_for(client, queue) == 0:
            return first, now
        time.sleep(0.005 if length else 0.002)
    raise RuntimeError(f"queue {queue} not drained within {timeout:.0f}s ({client.llen(queue)} left)")
