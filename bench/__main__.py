"""`make bench`: intake, processing and memory of billhook against a bare baseline, measured side by
side in one run on servers the harness starts itself (see README, "Benchmarks").

Environment: DATABASE_URL / REDIS_URL (else the embedded SQLite + redis-server), BENCH_EVENTS
(processing backlog, default 20000), BENCH_INTAKE_REQUESTS (per closed-loop run, default 6000),
BENCH_RATE and BENCH_RATE_SECONDS (fixed-rate run, default 500 req/s for 10 s), BENCH_CONNECTIONS
(default 16), BENCH_SEED (default 1), BENCH_WORKER_CONCURRENCY (prefork processes of the worker,
billhook's and the no-op baseline's alike; default WORKER_CONCURRENCY, the Procfile's),
BENCH_ADVERSITY_RATE (the fixed-rate run under adversity, bench/adversity.py; default BENCH_RATE).

The closed-loop intake runs use wrk when it is on PATH (bench/wrk.py: BENCH_WRK_SECONDS a run,
default 5, over a list of 2 x BENCH_INTAKE_REQUESTS deliveries) and the Python generator
(bench/loadgen.py) otherwise, or with BENCH_LOADGEN=python; the fixed-rate run always uses the
Python generator, which paces requests and times each from when it was due.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import uuid
from datetime import UTC, datetime

from sqlalchemy import delete, func, insert, select

from bench import adversity, loadgen, scenario, services, wrk
from bench.measure import CpuClock, GeneratorCpu, PeakRss, ServiceCpu, drain_window
from bench.worker_app import NOOP
from shared import inbox
from shared.config import Settings
from shared.dispatch import is_handled
from shared.models import WebhookEvent
from shared.models.events import EventStatus
from tests.factories.stripe_events import signed
from worker.celery_app import make_celery
from worker.messages import PROCESS_EVENT

PATH = "/webhooks/stripe"
WORKER_CONCURRENCY = 2  # as in the Procfile


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def main() -> int:
    events = env_int("BENCH_EVENTS", 20_000)
    intake_requests = env_int("BENCH_INTAKE_REQUESTS", 6_000)
    rate = env_int("BENCH_RATE", 500)
    rate_seconds = env_int("BENCH_RATE_SECONDS", 10)
    connections = env_int("BENCH_CONNECTIONS", 16)
    seed = env_int("BENCH_SEED", 1)
    tmp = services.make_tmp("billhook-bench-")
    store = broker = None
    procs: list[services.Proc] = []
    rss = PeakRss().start()
    try:
        store = services.Store(os.environ.get("DATABASE_URL"), tmp)
        broker = services.Broker(os.environ.get("REDIS_URL"), tmp)
        run_id = uuid.uuid4().hex[:8]
        q_intake, q_proc, q_noop = (f"bench_{name}_{run_id}" for name in ("intake", "process", "noop"))
        say(f"store: {store.kind}; broker: {'own redis-server' if broker.own else 'REDIS_URL'}; logs in {tmp}")

        # 1. intake ------------------------------------------------------------------------
        env = services.service_env(store.url, broker.url, q_intake, tmp)
        web = services.start_gunicorn("web", "web.wsgi:app", env, tmp)
        bare = services.start_gunicorn("bare", "bench.bare_app:app", env, tmp)
        procs += [web, bare]
        rss.watch("web", web.pid)
        intake = bench_intake(web, bare, seed, intake_requests, rate, rate_seconds, connections)
        web_peak = rss.mb("web child")
        for p in (web, bare):
            p.stop()
        adverse_rate = env_int("BENCH_ADVERSITY_RATE", rate)
        intake["adversity"] = adversity.bench_intake_under_adversity(
            store, env, tmp, deliveries_for(seed, adverse_rate * rate_seconds, "a"), rate=adverse_rate
        )
        say(f"under adversity: {intake['adversity']}")
        broker.delete_queue(q_intake)
        with store.session_factory.begin() as session:  # the processing phase starts on an empty inbox
            session.execute(delete(WebhookEvent))

        # 2. processing --------------------------------------------------------------------
        processing = bench_processing(store, broker, tmp, rss, seed, events, q_proc, q_noop, procs)
        results = {"intake": intake, "processing": processing}
        results["memory"] = {
            "web_mb": web_peak,
            "worker_mb": rss.mb("worker child"),
            "worker_main_mb": rss.mb("worker main"),
        }
        results["meta"] = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "store": store.kind,
            "broker": "own redis-server" if broker.own else "REDIS_URL",
            "cores": os.cpu_count(),
            "worker_concurrency": worker_concurrency(),
            "python": platform.python_version(),
        }
        print_table(results)
        out = tmp.parent / "billhook-bench-last.json"
        out.write_text(json.dumps(results, indent=2))
        say(f"results also in {out}")
        return 0
    finally:
        rss.stop()
        services.shut_down(procs, broker, store, tmp)


def deliveries_for(seed: int, count: int, prefix: str) -> list[loadgen.Delivery]:
    """`count` signed deliveries: distinct events plus 20% duplicates, shuffled."""
    stream = scenario.generate(seed, round(count * 0.8), duplicate_share=0.2, refunds=False, prefix=prefix)
    return [signed(evt, services.WEBHOOK_SECRET) for evt in stream.deliveries[:count]]


def bench_intake(web, bare, seed, requests, rate, rate_seconds, connections) -> dict:
    generator = closed_loop_generator()
    say(f"intake: closed-loop runs with {generator}; warming up")
    for proc, prefix in ((web, "w"), (bare, "wb")):
        loadgen.closed_loop(proc.port, PATH, deliveries_for(seed, 400, prefix), connections=connections)
    if generator == PYTHON_GENERATOR:
        list_size = requests

        def closed_loop(port: int, deliveries: list[loadgen.Delivery]) -> loadgen.LoadResult:
            return loadgen.closed_loop(port, PATH, deliveries, connections=connections, max_seconds=30)

    else:  # duration-bound: a list long enough that billhook's run does not get to its end
        list_size = 2 * requests
        seconds = env_int("BENCH_WRK_SECONDS", 5)

        def closed_loop(port: int, deliveries: list[loadgen.Delivery]) -> wrk.WrkResult:
            return wrk.closed_loop(port, PATH, deliveries, connections=connections, seconds=seconds)

    runs: dict[str, list[tuple[loadgen.LoadResult | wrk.WrkResult, dict]]] = {"billhook": [], "bare": []}
    # Two alternating rounds: a noisy neighbour hurts one round, not one side.
    for round_ in range(2):
        deliveries = deliveries_for(seed + round_, list_size, f"i{round_}")
        for name, proc in (("bare", bare), ("billhook", web)):
            clock, service_clock, generator_clock = CpuClock(proc.pid), ServiceCpu(), GeneratorCpu()
            result = closed_loop(proc.port, deliveries)
            per_request = 1000 / result.sent if result.sent else 0.0
            cpu_ms = {
                "cpu_ms": clock.total() * per_request,
                "service_cpu_ms": service_clock.total() * per_request,
                "generator_cpu_ms": generator_clock.total() * per_request,
            }
            say(
                f"intake round {round_ + 1} {name}: {result.rate:.0f} req/s, {result.errors} errors; CPU a request, "
                f"ms: gunicorn {cpu_ms['cpu_ms']:.2f}, PostgreSQL + Redis {cpu_ms['service_cpu_ms']:.2f}, "
                f"load generator {cpu_ms['generator_cpu_ms']:.2f}"
            )
            runs[name].append((result, cpu_ms))
    best_runs = {name: max(results, key=lambda r: r[0].rate) for name, results in runs.items()}
    best = {name: result for name, (result, _) in best_runs.items()}
    fixed = {}
    for name, proc, prefix in (("billhook", web, "r"), ("bare", bare, "rb")):
        deliveries = deliveries_for(seed, rate * rate_seconds, prefix)
        result = loadgen.fixed_rate(proc.port, PATH, deliveries, rate=rate, max_seconds=rate_seconds + 1)
        say(f"fixed {rate} req/s {name}: p99 {result.percentile(99):.1f} ms, {result.errors} errors")
        fixed[name] = result
    return {
        "generator": generator,
        "closed": {name: {**summary(r), **best_runs[name][1]} for name, r in best.items()},
        "ratio": best["billhook"].rate / best["bare"].rate if best["bare"].rate else 0.0,
        "repeated": getattr(best["billhook"], "repeated", 0),
        "rate": rate,
        "fixed": {name: summary(r) for name, r in fixed.items()},
        "connections": connections,
    }


PYTHON_GENERATOR = "the Python generator"


def closed_loop_generator() -> str:
    """wrk when it is on PATH (BENCH_LOADGEN=python picks the Python generator anyway)."""
    if os.environ.get("BENCH_LOADGEN", "").lower() == "python" or not wrk.available():
        return PYTHON_GENERATOR
    return wrk.version()


def summary(result: loadgen.LoadResult) -> dict:
    return {
        "requests": result.sent,
        "ok": result.ok,
        "errors": result.errors,
        "rps": result.rate,
        "p50_ms": result.percentile(50),
        "p99_ms": result.percentile(99),
    }


def bench_processing(store, broker, tmp, rss, seed, events, q_proc, q_noop, procs) -> dict:
    backlog = scenario.generate(seed, round(events * 0.8), duplicate_share=0.2, refunds=False, prefix="p")
    messages = backlog.deliveries  # whole accounts: a few more than asked for, every event queued
    say(f"processing: {len(messages)} messages for {len(backlog.events)} distinct events")
    pks = store_backlog(store, backlog.events)
    base = Settings(database_url=store.url, redis_url=broker.url, var_dir=tmp)

    # The baseline first: the same worker settings draining no-op tasks.
    noop_app = make_celery(base.with_overrides(queue_name=q_noop))
    for evt in messages:
        noop_app.send_task(NOOP, args=[pks[evt["id"]]], queue=q_noop)
    noop_seconds, noop_cpu = drain(store, broker, tmp, rss, q_noop, len(messages), procs)

    app = make_celery(base.with_overrides(queue_name=q_proc))
    for evt in messages:
        app.send_task(PROCESS_EVENT, args=[pks[evt["id"]]], queue=q_proc)
    proc_seconds, proc_cpu = drain(store, broker, tmp, rss, q_proc, len(messages), procs)
    with store.session_factory() as session:
        done, first, last = session.execute(
            select(func.count(), func.min(WebhookEvent.processed_at), func.max(WebhookEvent.processed_at)).where(
                WebhookEvent.status == EventStatus.SUCCEEDED
            )
        ).one()
        statuses = inbox.counts_by_status(session)
        failures = session.execute(
            select(WebhookEvent.type, WebhookEvent.last_error)
            .where(WebhookEvent.status != EventStatus.SUCCEEDED)
            .limit(5)
        ).all()
    for event_type, error in failures:
        say(f"not succeeded: {event_type}: {error}")
    effect_seconds = (last - first).total_seconds() if first and last else 0.0
    noop_rate = len(messages) / noop_seconds
    proc_rate = len(messages) / proc_seconds
    return {
        "messages": len(messages),
        "distinct": len(backlog.events),
        "succeeded": done,
        "statuses": statuses,
        "noop_per_s": noop_rate,
        "billhook_per_s": proc_rate,
        "effects_per_s": done / effect_seconds if effect_seconds else 0.0,
        "ratio": proc_rate / noop_rate,
        # CPU per message of the worker's pool processes and of its main (consumer) process
        "cpu_ms": {
            name: {part: 1000 * seconds / len(messages) for part, seconds in zip(("main", "pool"), cpu, strict=True)}
            for name, cpu in (("billhook", proc_cpu), ("noop", noop_cpu))
        },
    }


def store_backlog(store, events: list[dict]) -> dict[str, int]:
    now = datetime.now(UTC)
    rows = [
        {
            "provider": "stripe",
            "event_id": evt["id"],
            "type": evt["type"],
            "payload": evt,
            "event_created_at": datetime.fromtimestamp(evt["created"], UTC),
            "received_at": now,
            "updated_at": now,
            "status": "received" if is_handled("stripe", evt["type"]) else "ignored",
        }
        for evt in events
    ]
    with store.session_factory.begin() as session:
        for i in range(0, len(rows), 1000):
            session.execute(insert(WebhookEvent), rows[i : i + 1000])
    with store.session_factory() as session:
        return {event_id: pk for event_id, pk in session.execute(select(WebhookEvent.event_id, WebhookEvent.id))}


def drain(store, broker, tmp, rss, queue: str, count: int, procs) -> tuple[float, tuple[float, float]]:
    """Seconds from the first message taken to the queue's end, and the worker's (main, pool) CPU
    seconds from when it was ready (its start-up not counted)."""
    env = services.service_env(store.url, broker.url, queue, tmp)
    worker = services.start_worker(f"worker-{queue}", env, tmp, concurrency=worker_concurrency())
    procs.append(worker)
    rss.watch("worker", worker.pid)
    clock = CpuClock(worker.pid)
    first, end = drain_window(broker.client, queue, count, timeout=1800)
    cpu = clock.split()
    rss.sample()
    worker.stop()
    seconds = end - first
    say(
        f"{queue}: {count} messages in {seconds:.1f} s ({count / seconds:.0f}/s); worker CPU "
        f"{1000 * cpu[1] / count:.2f} ms a message in the pool, {1000 * cpu[0] / count:.2f} in the main process"
    )
    return seconds, cpu


def worker_concurrency() -> int:
    return env_int("BENCH_WORKER_CONCURRENCY", WORKER_CONCURRENCY)


def print_table(r: dict) -> None:
    i, p, m, meta = r["intake"], r["processing"], r["memory"], r["meta"]
    a = i["adversity"]
    c, f = i["closed"], i["fixed"]
    lines = [
        f"billhook bench, {meta['date']}, {meta['cores']} cores, {meta['store']}, {meta['broker']}, "
        f"Python {meta['python']}, worker concurrency {meta['worker_concurrency']}",
        "",
        "| measure | billhook | baseline | ratio | target |",
        "| --- | --- | --- | --- | --- |",
        f"| intake, req/s ({i['connections']} connections, 20% duplicates; {i['generator']}) "
        f"| {c['billhook']['rps']:.0f} "
        f"| {c['bare']['rps']:.0f} (bare Flask) | {i['ratio']:.2f} | ≥ 0.5 on PostgreSQL |",
        f"| intake p50 / p99, ms (closed loop) | {c['billhook']['p50_ms']:.1f} / {c['billhook']['p99_ms']:.1f} "
        f"| {c['bare']['p50_ms']:.1f} / {c['bare']['p99_ms']:.1f} | | |",
        f"| intake p50 / p99 at {i['rate']} req/s, ms (Python generator) "
        f"| {f['billhook']['p50_ms']:.1f} / {f['billhook']['p99_ms']:.1f} "
        f"| {f['bare']['p50_ms']:.1f} / {f['bare']['p99_ms']:.1f} | | p99 ≤ 25 ms |",
        f"| intake p50 / p99 at {a['rate']} req/s, ms, Procfile's server with {adversity.HUNG_CHECKOUTS} checkouts "
        f"hung on Stripe + {adversity.TRICKLERS} clients trickling | {a['p50_ms']:.1f} / {a['p99_ms']:.1f} | | "
        "| p99 ≤ 100 ms |",
        f"| CPU a request, ms (gunicorn processes) | {c['billhook']['cpu_ms']:.2f} | {c['bare']['cpu_ms']:.2f} | | |",
        f"| CPU a request, ms (PostgreSQL + Redis processes) | {c['billhook']['service_cpu_ms']:.2f} "
        f"| {c['bare']['service_cpu_ms']:.2f} | | |",
        f"| CPU a request, ms (load generator) | {c['billhook']['generator_cpu_ms']:.2f} "
        f"| {c['bare']['generator_cpu_ms']:.2f} | | |",
        f"| processing, messages/s ({p['messages']} queued, {p['distinct']} distinct) | {p['billhook_per_s']:.0f} "
        f"| {p['noop_per_s']:.0f} (no-op task) | {p['ratio']:.2f} | ≥ 0.5 |",
        f"| processing, committed effects/s (first → last) | {p['effects_per_s']:.0f} | | | |",
        f"| CPU a message, ms (worker pool / main process) | {p['cpu_ms']['billhook']['pool']:.2f} / "
        f"{p['cpu_ms']['billhook']['main']:.2f} | {p['cpu_ms']['noop']['pool']:.2f} / "
        f"{p['cpu_ms']['noop']['main']:.2f} | | |",
        f"| peak RSS, MB | web {m['web_mb']:.0f}, worker {m['worker_mb']:.0f} (main {m['worker_main_mb']:.0f}) "
        "| | | worker ≤ 150 |",
        "",
        f"errors: intake {c['billhook']['errors']} billhook / {c['bare']['errors']} bare, "
        f"fixed rate {f['billhook']['errors']}, under adversity {a['errors']}; "
        f"deliveries repeated by wrk {i['repeated']}; "
        f"inbox after processing {p['statuses']}",
    ]
    print("\n".join(lines), flush=True)


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
