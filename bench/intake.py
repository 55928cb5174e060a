"""The intake comparison: billhook's webhook intake as the Procfile runs it (the event-loop
`intake:` process, web/webhooks/server.py) against the bare Flask endpoint, the same intake in the
Flask app (`billhook-flask`), the lean reference of the same durable shape (bench/lean_app.py,
PostgreSQL only) and the in-request design (bench/inrequest_app.py), these under the Procfile's
gunicorn settings, and the lean reference on an event loop (bench/async_app.py, uvicorn with as
many processes), in paired rounds.

A target judged on one pair of rounds is judged on luck (two runs 30 minutes apart on the same
machine differed threefold in the bare endpoint's CPU a request), so every closed-loop run is
repeated in alternating rounds — bare, billhook, billhook-flask, lean, async, in-request, bare, ... — and each server's
ratio to the bare endpoint of the SAME round is kept: the decision uses the median of those
per-round ratios, and the spread (min–max) says how far two runs can be compared.

Each server runs only for its own runs: started, warmed up, measured, stopped. Six web tiers of the
Procfile's settings up at once hold more PostgreSQL connections than its default max_connections
(100): with all of them up, the later servers were refused connections ("too many clients") and
answered 503s, which measure PostgreSQL's limit, not their path.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from bench import loadgen, wrk
from bench.measure import CpuClock, GeneratorCpu, ServiceCpu

PATH = "/webhooks/stripe"


@dataclass
class Server:
    """A server the comparison starts for a run and stops after it. `start` returns a
    services.Proc (.pid, .port, .stop()); `warm_up(port, tag)` loads it before it is measured,
    with deliveries of its own for each start (`tag` names the server and the start)."""

    name: str
    start: Callable[[], object]
    warm_up: Callable[[int, str], None]
    starts: int = 0

    @contextmanager
    def running(self) -> Iterator[object]:
        proc = self.start()
        try:
            self.warm_up(proc.port, f"{self.starts}{self.name}")
            self.starts += 1
            yield proc
        finally:
            proc.stop()


@dataclass
class Round:
    rps: dict[str, float] = field(default_factory=dict)
    p99_ms: dict[str, float] = field(default_factory=dict)
    cpu_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


def paired_rounds(
    servers: list[Server],
    deliveries_for_round: Callable[[int, str], list[loadgen.Delivery]],
    closed_loop: Callable[[int, list[loadgen.Delivery]], object],
    *,
    rounds: int,
    say: Callable[[str], None],
) -> list[Round]:
    """`rounds` rounds of one closed-loop run per server, the servers in the given order (the
    baseline first), each on a server started for it: fresh deliveries per run, so no server sees
    only duplicates."""
    out = []
    for index in range(rounds):
        round_ = Round()
        for server in servers:
            deliveries = deliveries_for_round(index, server.name)
            with server.running() as proc:
                clock, service_clock, generator_clock = CpuClock(proc.pid), ServiceCpu(), GeneratorCpu()
                result = closed_loop(proc.port, deliveries)
                cpu_seconds = {  # read before the server stops: its shutdown is not the run's
                    "web": clock.total(),
                    "services": service_clock.total(),
                    "generator": generator_clock.total(),
                }
            per_request = 1000 / result.sent if result.sent else 0.0
            round_.rps[server.name] = result.rate
            round_.p99_ms[server.name] = result.percentile(99)
            round_.errors[server.name] = result.errors
            round_.cpu_ms[server.name] = {part: seconds * per_request for part, seconds in cpu_seconds.items()}
            cpu = round_.cpu_ms[server.name]
            say(
                f"intake round {index + 1} {server.name}: {result.rate:.0f} req/s, {result.errors} errors, "
                f"p99 {result.percentile(99):.1f} ms; CPU a request, ms: web {cpu['web']:.2f}, "
                f"PostgreSQL + Redis {cpu['services']:.2f}, load generator {cpu['generator']:.2f}"
            )
        out.append(round_)
    return out


@dataclass(frozen=True)
class Ratio:
    median: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.median:.2f} ({self.low:.2f}–{self.high:.2f})"


def ratio_to(rounds: list[Round], name: str, baseline: str) -> Ratio | None:
    """The median, min and max over the rounds of `name`'s req/s over the baseline's in that round."""
    ratios = [r.rps[name] / r.rps[baseline] for r in rounds if name in r.rps and r.rps.get(baseline)]
    if not ratios:
        return None
    return Ratio(statistics.median(ratios), min(ratios), max(ratios))


def median_of(rounds: list[Round], name: str, pick: Callable[[Round], dict]) -> float:
    values = [pick(r)[name] for r in rounds if name in pick(r)]
    return statistics.median(values) if values else 0.0


def median_cpu(rounds: list[Round], name: str) -> dict[str, float]:
    parts = ("web", "services", "generator")
    return {part: statistics.median(r.cpu_ms[name][part] for r in rounds if name in r.cpu_ms) for part in parts}


def closed_loop_runner(generator_is_python: bool, connections: int, seconds: int):
    """The closed-loop run: wrk for `seconds` (a list long enough not to wrap), or the Python
    generator over the whole list."""
    if generator_is_python:
        return lambda port, deliveries: loadgen.closed_loop(
            port, PATH, deliveries, connections=connections, max_seconds=30
        )
    return lambda port, deliveries: wrk.closed_loop(port, PATH, deliveries, connections=connections, seconds=seconds)
