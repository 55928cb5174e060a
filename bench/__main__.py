"""`make bench`: intake, processing and memory of billhook against a bare baseline, measured side by
side in one run on servers the harness starts itself (see README, "Benchmarks").

Environment: DATABASE_URL / REDIS_URL (else the embedded SQLite + redis-server), BENCH_EVENTS
(processing backlog, default 20000), BENCH_INTAKE_REQUESTS (per closed-loop run, default 6000),
BENCH_RATE, BENCH_RATE_SECONDS and BENCH_RATE_ROUNDS (fixed-rate runs, default 500 req/s for 10 s,
3 alternating rounds of billhook and the bare endpoint), BENCH_CONNECTIONS
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
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import func, insert, select

from bench import adversity, chaos_outgoing, entitlements, intake, loadgen, scenario, services, wrk
from bench.intake import Server
from bench.measure import CpuClock, PeakRss, ServiceCpu, drain_window
from bench.worker_app import NOOP
from shared import inbox
from shared.config import Settings
from shared.dispatch import is_handled
from shared.models import EmailOutbox, OutgoingDelivery, WebhookEvent
from shared.models.events import EventStatus
from shared.models.outgoing import DeliveryStatus
from tests.factories.stripe_events import signed
from web import gunicorn_conf
from worker.celery_app import make_celery
from worker.messages import MAX_IDS_PER_MESSAGE, PROCESS_EVENT, batches

PATH = "/webhooks/stripe"
WORKER_CONCURRENCY = 2  # as in the Procfile
OUTGOING_CONCURRENCY = 4  # the Procfile's outgoing worker


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
        warm = warm_up(seed, intake_requests, connections)
        intake_results = bench_intake(
            store, env, tmp, rss, warm, seed, intake_requests, rate, rate_seconds, connections
        )
        adverse_rate = env_int("BENCH_ADVERSITY_RATE", rate)
        intake_results["adversity"] = adversity.bench_intake_under_adversity(
            store,
            env,
            tmp,
            deliveries_for(seed, adverse_rate * rate_seconds, "a"),
            rate=adverse_rate,
            warm_up=lambda port: warm(port, "adverse"),
        )
        say(f"intake under adversity: {intake_results['adversity']}")
        broker.delete_queue(q_intake)
        store.clear_activity()  # the processing phase starts on an empty store (the in-request intake wrote effects)

        # 2. processing --------------------------------------------------------------------
        processing = bench_processing(store, broker, tmp, rss, seed, events, q_proc, q_noop, procs)
        results = {"intake": intake_results, "processing": processing}
        results["entitlements"] = entitlements.bench_entitlements(store, env, tmp, procs)  # the run's accounts
        results["memory"] = {
            "web_mb": intake_results["web_mb"],
            "flask_mb": intake_results["flask_mb"],
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


def bench_intake(store, env, tmp, rss, warm, seed, requests, rate, rate_seconds, connections) -> dict:
    """The six intakes in paired rounds (bench/intake.py), a burst row, and the fixed-rate p99.
    Each server is up only for its own runs (bench/intake.py says why), warmed up by `warm`."""

    def watched(role: str, proc: services.Proc) -> services.Proc:
        rss.watch(role, proc.pid)
        return proc

    generator = closed_loop_generator()
    python = generator == PYTHON_GENERATOR
    list_size = requests if python else 2 * requests

    def gunicorn(name: str, app: str, server_env: dict = env):
        return lambda: services.start_gunicorn(name, app, server_env, tmp)

    starts = {
        "bare": gunicorn("bare", "bench.bare_app:app"),
        # billhook's webhook path as the Procfile runs it: the event-loop intake (web/webhooks/server.py).
        "billhook": lambda: watched("web", services.start_intake("intake", env, tmp)),
        # The same intake in the Flask app under gunicorn (web's own /webhooks/*), the shape before it.
        "billhook-flask": lambda: watched("flask", services.start_gunicorn("web", "web.wsgi:app", env, tmp)),
    }
    if store.kind == "PostgreSQL":  # the lean and async references are written for PostgreSQL alone
        lean_env = {**env, "HARNESS_WEBHOOK_SECRET": services.WEBHOOK_SECRET}
        starts["lean"] = gunicorn("lean", "bench.lean_app:app", lean_env)
        # As many event loops as gunicorn has worker processes (web/gunicorn_conf.py).
        starts["async"] = lambda: services.start_uvicorn(
            "async", "bench.async_app:app", lean_env, tmp, workers=gunicorn_conf.workers
        )
    starts["in-request"] = gunicorn("inrequest", "bench.inrequest_app:app")
    servers = [Server(name, start, warm) for name, start in starts.items()]
    by_name = {s.name: s for s in servers}
    say(f"intake: closed-loop runs with {generator}, each server started and warmed up for its run")
    runner = intake.closed_loop_runner(python, connections, env_int("BENCH_WRK_SECONDS", 5))
    rounds = intake.paired_rounds(
        servers,
        lambda index, name: deliveries_for(seed + index, list_size, f"i{index}{name[:2]}"),
        runner,
        rounds=env_int("BENCH_ROUNDS", 5),
        say=say,
    )
    burst = {}
    with by_name["billhook"].running() as billhook:
        for burst_connections in (connections, 4 * connections):
            burst_runner = intake.closed_loop_runner(python, burst_connections, env_int("BENCH_WRK_SECONDS", 5))
            result = burst_runner(billhook.port, deliveries_for(seed, list_size, f"b{burst_connections}"))
            burst[burst_connections] = {"rps": result.rate, "p99_ms": result.percentile(99), "errors": result.errors}
            say(f"burst {burst_connections} connections: {result.rate:.0f} req/s, p99 {result.percentile(99):.1f} ms")
    fixed = fixed_rate_rounds(by_name, seed, rate, rate_seconds, env_int("BENCH_RATE_ROUNDS", 3))
    names = [s.name for s in servers]
    return {
        "generator": generator,
        "rounds": len(rounds),
        "servers": names,
        "rps": {n: intake.median_of(rounds, n, lambda r: r.rps) for n in names},
        "p99_ms": {n: intake.median_of(rounds, n, lambda r: r.p99_ms) for n in names},
        "errors": {n: sum(r.errors.get(n, 0) for r in rounds) for n in names},
        "cpu_ms": {n: intake.median_cpu(rounds, n) for n in names},
        "ratio": {n: ratio_to_dict(intake.ratio_to(rounds, n, "bare")) for n in names if n != "bare"},
        "per_round": [{"rps": r.rps, "cpu_ms": r.cpu_ms} for r in rounds],
        "burst": burst,
        "rate": rate,
        "fixed": fixed,
        "connections": connections,
        "web_mb": rss.mb("web child"),
        "flask_mb": rss.mb("flask child"),
    }


def fixed_rate_rounds(by_name: dict, seed: int, rate: int, seconds: int, rounds: int) -> dict:
    """billhook's and the bare endpoint's p99 at `rate`, in `rounds` alternating runs of `seconds`
    (each server started for its run): the median and its spread, as for the ratios, since one
    10-second run's tail moves with the machine (measured: 10 to 64 ms between runs of one code)."""
    runs: dict[str, list[loadgen.LoadResult]] = {"billhook": [], "bare": []}
    for index in range(rounds):
        for name, results in runs.items():
            deliveries = deliveries_for(seed + index, rate * seconds, f"r{index}{name[:2]}")
            with by_name[name].running() as proc:
                result = loadgen.fixed_rate(proc.port, PATH, deliveries, rate=rate, max_seconds=seconds + 1)
            p99 = result.percentile(99)
            say(f"fixed {rate} req/s round {index + 1} {name}: p99 {p99:.1f} ms, {result.errors} errors")
            results.append(result)
    return {
        name: {
            "rounds": len(results),
            "p99_ms": statistics.median(r.percentile(99) for r in results),
            "p99_min_ms": min(r.percentile(99) for r in results),
            "p99_max_ms": max(r.percentile(99) for r in results),
            "p50_ms": statistics.median(r.percentile(50) for r in results),
            "requests": sum(r.sent for r in results),
            "errors": sum(r.errors for r in results),
        }
        for name, results in runs.items()
    }


def warm_up(seed: int, requests: int, connections: int) -> Callable[[int, str], None]:
    """`warm(port, tag)`: a short closed-loop run of the measured kind on a server just started.
    A server's first run at the run's connections has a tail its later runs do not (measured on
    the bare endpoint: p99 112 ms, then 18-28 in the next four runs, ~10% fewer req/s)."""
    python = closed_loop_generator() == PYTHON_GENERATOR
    runner = intake.closed_loop_runner(python, connections, WARM_UP_SECONDS)
    count = 400 if python else 2 * requests

    def warm(port: int, tag: str) -> None:
        runner(port, deliveries_for(seed, count, f"w{tag}"))

    return warm


def ratio_to_dict(ratio) -> dict | None:
    return None if ratio is None else {"median": ratio.median, "min": ratio.low, "max": ratio.high}


PYTHON_GENERATOR = "the Python generator"
WARM_UP_SECONDS = 2


def closed_loop_generator() -> str:
    """wrk when it is on PATH (BENCH_LOADGEN=python picks the Python generator anyway)."""
    if os.environ.get("BENCH_LOADGEN", "").lower() == "python" or not wrk.available():
        return PYTHON_GENERATOR
    return wrk.version()


def bench_processing(store, broker, tmp, rss, seed, events, q_proc, q_noop, procs) -> dict:
    """Paired rounds, as for intake: each round drains a fresh backlog through a no-op task, then
    through billhook's task, on the same worker settings; the ratio is kept per round."""
    rounds = max(1, env_int("BENCH_PROCESSING_ROUNDS", 3))
    base = Settings(database_url=store.url, redis_url=broker.url, var_dir=tmp)
    noop_app = make_celery(base.with_overrides(queue_name=q_noop))
    app = make_celery(base.with_overrides(queue_name=q_proc))
    per_round, totals = [], {"messages": 0, "distinct": 0}
    # The main app's endpoint, so that the events write the outgoing deliveries they cause; as in
    # the Procfile, the events' worker consumes only their queue, and an outgoing worker of its own
    # sends the deliveries after each round's drain (their own row).
    receiver = chaos_outgoing.Receiver(failure_share=0.0, seed=seed)
    receiver.register(store.session_factory)
    for index in range(rounds):
        backlog = scenario.generate(
            seed + index, round(events / rounds * 0.8), duplicate_share=0.2, refunds=False, prefix=f"p{index}"
        )
        messages = backlog.deliveries  # whole accounts: a few more than asked for, every event queued
        say(f"processing round {index + 1}: {len(messages)} messages for {len(backlog.events)} distinct events")
        pks = store_backlog(store, backlog.events)
        for evt in messages:
            noop_app.send_task(NOOP, args=[pks[evt["id"]]], queue=q_noop)
        noop_seconds, noop_cpu = drain(store, broker, tmp, rss, q_noop, len(messages), procs)
        # billhook's events go as the intake's publisher sends what gathers under load: batch
        # messages of up to MAX_IDS_PER_MESSAGE events (worker/messages.py `batches`), each event in
        # its own transaction. The no-op baseline is one task a message.
        queued = batches(PROCESS_EVENT, [pks[evt["id"]] for evt in messages])
        for task, arg in queued:
            app.send_task(task, args=[arg], queue=q_proc)
        before = side_effects(store)
        proc_seconds, proc_cpu = drain(store, broker, tmp, rss, q_proc, len(queued), procs, queues=[q_proc])
        effects = {"emails": side_effects(store)["emails"] - before["emails"]}
        effects.update(send_deliveries(store, broker, tmp, q_proc, procs, before["deliveries"]))
        per_round.append(
            {
                "noop_per_s": len(messages) / noop_seconds,
                "billhook_per_s": len(messages) / proc_seconds,
                "effects": effects,
                "cpu_ms": {
                    "billhook": cpu_per_message(proc_cpu, messages),
                    "noop": cpu_per_message(noop_cpu, messages),
                },
            }
        )
        totals["messages"] += len(messages)
        totals["distinct"] += len(backlog.events)
    with store.session_factory() as session:
        done = session.scalar(select(func.count()).where(WebhookEvent.status == EventStatus.SUCCEEDED))
        statuses = inbox.counts_by_status(session)
        failures = session.execute(
            select(WebhookEvent.type, WebhookEvent.last_error)
            .where(WebhookEvent.status.not_in([EventStatus.SUCCEEDED, EventStatus.IGNORED]))
            .limit(5)
        ).all()
    for event_type, error in failures:
        say(f"not succeeded: {event_type}: {error}")
    ratios = [r["billhook_per_s"] / r["noop_per_s"] for r in per_round]
    median = statistics.median
    return {
        **totals,
        "rounds": rounds,
        "succeeded": done,
        "statuses": statuses,
        "noop_per_s": median(r["noop_per_s"] for r in per_round),
        "billhook_per_s": median(r["billhook_per_s"] for r in per_round),
        "ratio": {"median": median(ratios), "min": min(ratios), "max": max(ratios)},
        "cpu_ms": {
            name: {part: median(r["cpu_ms"][name][part] for r in per_round) for part in CPU_PARTS}
            for name in ("billhook", "noop")
        },
        "per_round": per_round,
        "emails": sum(r["effects"]["emails"] for r in per_round),
        "deliveries": sum(r["effects"]["deliveries"] for r in per_round),
        "deliveries_per_s": median(r["effects"]["deliveries_per_s"] for r in per_round),
        "delivery_cpu_ms": median(r["effects"]["cpu_ms"] for r in per_round),
        "received": sum(receiver.accepted.values()),
    }


def side_effects(store) -> dict[str, int]:
    """Emails sent and outgoing deliveries delivered so far."""
    with store.session_factory() as session:
        emails = session.scalar(select(func.count()).where(EmailOutbox.status == "sent"))
        delivered = session.scalar(select(func.count()).where(OutgoingDelivery.status == DeliveryStatus.DELIVERED))
    return {"emails": emails, "deliveries": delivered}


def send_deliveries(store, broker, tmp, queue: str, procs, delivered_before: int) -> dict[str, float]:
    """The round's outgoing deliveries, sent by an outgoing worker as the Procfile runs it (its own
    queue, OUTGOING_CONCURRENCY processes): how many, how fast, the worker's CPU a delivery."""
    outgoing_queue = f"{queue}.outgoing"
    env = services.service_env(store.url, broker.url, queue, tmp)
    worker = services.start_worker(
        f"outgoing-{queue}", env, tmp, concurrency=OUTGOING_CONCURRENCY, queues=[outgoing_queue]
    )
    procs.append(worker)
    clock = CpuClock(worker.pid)
    started = time.monotonic()
    chaos_outgoing.wait_delivered(store, 900, say)
    seconds = time.monotonic() - started
    main_cpu, pool_cpu = clock.split()
    worker.stop()
    count = side_effects(store)["deliveries"] - delivered_before
    say(f"{outgoing_queue}: {count} deliveries in {seconds:.1f} s ({count / seconds:.0f}/s)")
    return {
        "deliveries": count,
        "deliveries_per_s": count / seconds if seconds else 0.0,
        "cpu_ms": 1000 * (main_cpu + pool_cpu) / count if count else 0.0,
    }


CPU_PARTS = ("main", "pool", "services")


def cpu_per_message(cpu: tuple[float, float, float], messages: list) -> dict[str, float]:
    return {part: 1000 * seconds / len(messages) for part, seconds in zip(CPU_PARTS, cpu, strict=True)}


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


def drain(
    store, broker, tmp, rss, queue: str, count: int, procs, queues: list[str] | None = None
) -> tuple[float, tuple[float, float, float]]:
    """Seconds from the first message taken to the queue's end, and the CPU seconds of the
    worker (main, pool) from when it was ready (its start-up not counted) and of PostgreSQL and
    Redis over the same drain."""
    env = services.service_env(store.url, broker.url, queue, tmp)
    worker = services.start_worker(f"worker-{queue}", env, tmp, concurrency=worker_concurrency(), queues=queues)
    procs.append(worker)
    rss.watch("worker", worker.pid)
    clock, services_clock = CpuClock(worker.pid), ServiceCpu()
    first, end = drain_window(broker.client, queue, count, timeout=1800)
    cpu = (*clock.split(), services_clock.total())  # read before the worker's backends go
    rss.sample()
    worker.stop()
    seconds = end - first
    say(
        f"{queue}: {count} messages in {seconds:.1f} s ({count / seconds:.0f}/s); worker CPU "
        f"{1000 * cpu[1] / count:.2f} ms a message in the pool, {1000 * cpu[0] / count:.2f} in the main process; "
        f"PostgreSQL + Redis {1000 * cpu[2] / count:.2f}"
    )
    return seconds, cpu


def worker_concurrency() -> int:
    return env_int("BENCH_WORKER_CONCURRENCY", WORKER_CONCURRENCY)


INTAKE_TARGET = 0.4
PROCESSING_TARGET = 0.3
P99_TARGET_MS = 25.0
ADVERSITY_P99_TARGET_MS = 100.0
WORKER_RSS_TARGET_MB = 150.0


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_table(r: dict) -> None:
    i, p, m, meta = r["intake"], r["processing"], r["memory"], r["meta"]
    ratio, rps, cpu, f, a = i["ratio"], i["rps"], i["cpu_ms"], i["fixed"], i["adversity"]

    def ratio_text(name: str) -> str:
        x = ratio.get(name)
        return "" if x is None else f"{x['median']:.2f} ({x['min']:.2f}–{x['max']:.2f})"

    pg = meta["store"] == "PostgreSQL"
    intake_ok = ratio["billhook"]["median"] >= INTAKE_TARGET
    lines = [
        f"billhook bench, {meta['date']}, {meta['cores']} cores, {meta['store']}, {meta['broker']}, "
        f"Python {meta['python']}, worker concurrency {meta['worker_concurrency']}; gunicorn: "
        f"{' '.join(services.procfile_gunicorn_options())}",
        "",
        f"Intake: {i['rounds']} paired closed-loop rounds, {i['connections']} connections, 20% duplicates, "
        f"{i['generator']}; ratio = req/s over the bare endpoint's in the same round, median (min–max).",
        "",
        "| intake | req/s (median) | ratio to bare | p99 ms | CPU a request, ms: web / PostgreSQL+Redis / generator |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in i["servers"]:
        c = cpu[name]
        lines.append(
            f"| {name} | {rps[name]:.0f} | {ratio_text(name) if name != 'bare' else '1'} | {i['p99_ms'][name]:.1f} "
            f"| {c['web']:.2f} / {c['services']:.2f} / {c['generator']:.2f} |"
        )
    if "lean" in ratio and ratio["lean"]:
        lines.append(
            f"\nbillhook's intake is {ratio['billhook']['median'] / ratio['async']['median']:.2f} of the async "
            f"reference (the lean intake on the same event loop: uvicorn, uvloop) and "
            f"{ratio['billhook']['median'] / ratio['billhook-flask']['median']:.2f}× the same intake in the Flask "
            f"app under gunicorn, which is {ratio['billhook-flask']['median'] / ratio['lean']['median']:.2f} of the "
            f"lean reference (medians); in-request is "
            f"{ratio['in-request']['median'] / ratio['billhook']['median']:.2f} of billhook's intake."
        )
    b = i["burst"]
    lines += [
        "",
        "| measure | value | target | |",
        "| --- | --- | --- | --- |",
        f"| intake ratio (median of paired rounds) | {ratio_text('billhook')} | ≥ {INTAKE_TARGET} on PostgreSQL "
        f"| {met(intake_ok) if pg else 'n/a (SQLite)'} |",
        f"| intake p99 at {i['rate']} req/s, ms, median (min–max) of {f['billhook']['rounds']} alternating runs "
        f"(Python generator; bare {f['bare']['p99_ms']:.1f}) | {f['billhook']['p99_ms']:.1f} "
        f"({f['billhook']['p99_min_ms']:.1f}–{f['billhook']['p99_max_ms']:.1f}) | ≤ {P99_TARGET_MS:.0f} "
        f"| {met(f['billhook']['p99_ms'] <= P99_TARGET_MS)} |",
        f"| intake p99 at {a['rate']} req/s, ms, with {adversity.HUNG_CHECKOUTS} checkouts hung on Stripe and "
        f"{adversity.TRICKLERS} clients trickling (p50 {a['p50_ms']:.1f}) | {a['p99_ms']:.1f} "
        f"| ≤ {ADVERSITY_P99_TARGET_MS:.0f} | {met(a['p99_ms'] <= ADVERSITY_P99_TARGET_MS)} |",
        "| burst: req/s and p99 ms at "
        + ", ".join(f"{n} connections" for n in b)
        + " | "
        + "; ".join(f"{v['rps']:.0f} req/s, p99 {v['p99_ms']:.1f}" for v in b.values())
        + " | | |",
        f"| processing ratio: billhook's events/s to no-op tasks/s ({p['rounds']} paired rounds, "
        f"{p['messages']} events in batch messages of up to {MAX_IDS_PER_MESSAGE}, their emails included) "
        f"| {p['ratio']['median']:.2f} ({p['ratio']['min']:.2f}–{p['ratio']['max']:.2f}); "
        f"{p['billhook_per_s']:.0f} vs {p['noop_per_s']:.0f}/s | ≥ {PROCESSING_TARGET} "
        f"| {met(p['ratio']['median'] >= PROCESSING_TARGET)} |",
        f"| emails the events caused, sent in the same drain (send_emails on the events' queue) | {p['emails']} | | |",
        f"| outgoing deliveries the events caused, sent after each drain by an outgoing worker as in the "
        f"Procfile ({OUTGOING_CONCURRENCY} processes, its own queue; the receiver verified {p['received']}) "
        f"| {p['deliveries']}: {p['deliveries_per_s']:.0f}/s, {p['delivery_cpu_ms']:.2f} ms of the worker's CPU "
        f"each | | |",
        f"| CPU an event (billhook) or a task (no-op), ms: worker pool / main / PostgreSQL + Redis "
        f"| {p['cpu_ms']['billhook']['pool']:.2f} / {p['cpu_ms']['billhook']['main']:.2f} / "
        f"{p['cpu_ms']['billhook']['services']:.2f} vs {p['cpu_ms']['noop']['pool']:.2f} / "
        f"{p['cpu_ms']['noop']['main']:.2f} / {p['cpu_ms']['noop']['services']:.2f} | | |",
        entitlements.table_row(r["entitlements"], pg),
        f"| peak RSS, MB: worker (largest of main and pool) | {max(m['worker_mb'], m['worker_main_mb']):.0f} "
        f"| ≤ {WORKER_RSS_TARGET_MB:.0f} | {met(max(m['worker_mb'], m['worker_main_mb']) <= WORKER_RSS_TARGET_MB)} |",
        f"| peak RSS, MB: intake worker process; web (gunicorn) worker process | {m['web_mb']:.0f}; "
        f"{m.get('flask_mb', 0):.0f} | | |",
        "",
        f"errors (non-2xx) over the rounds: {i['errors']}, under adversity {a['errors']} "
        f"(the adversity's answers: {a['adversity']}); inbox after processing {p['statuses']}",
    ]
    print("\n".join(lines), flush=True)


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
