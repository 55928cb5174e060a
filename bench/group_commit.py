"""`python -m bench.group_commit`: does group commit win on the event loop? The async reference
(bench/async_app.py, one INSERT a webhook) against the same app storing what waits for a
connection in one multi-row INSERT (bench/async_group_app.py), beside the bare endpoint, in the
paired rounds `make bench` uses (bench/intake.py), each server started for its run and warmed up.
PostgreSQL only: DATABASE_URL, REDIS_URL; BENCH_ROUNDS (default 5), BENCH_WRK_SECONDS (default 5),
BENCH_CONNECTIONS (default 16, 64 is the burst).
"""

from __future__ import annotations

import os
import sys

from bench import intake, services
from bench.__main__ import PYTHON_GENERATOR, closed_loop_generator, deliveries_for, env_int, say, warm_up
from web import gunicorn_conf

REQUESTS = 6_000


def main() -> int:
    if not (os.environ.get("DATABASE_URL") or "").startswith("postgresql"):
        print("bench.group_commit: DATABASE_URL must name a PostgreSQL database", file=sys.stderr)
        return 2
    connections = env_int("BENCH_CONNECTIONS", 16)
    tmp = services.make_tmp("billhook-group-")
    store = broker = None
    try:
        store = services.Store(os.environ["DATABASE_URL"], tmp)
        broker = services.Broker(os.environ.get("REDIS_URL"), tmp)
        env = services.service_env(store.url, broker.url, "bench_group_commit", tmp)
        env["HARNESS_WEBHOOK_SECRET"] = services.WEBHOOK_SECRET

        def uvicorn(name: str, app: str, **extra: str):
            return lambda: services.start_uvicorn(name, app, {**env, **extra}, tmp, workers=gunicorn_conf.workers)

        warm = warm_up(1, REQUESTS, connections)
        starts = {
            "bare": lambda: services.start_gunicorn("bare", "bench.bare_app:app", env, tmp),
            "async": uvicorn("async", "bench.async_app:app"),
            "async-group": uvicorn("async-group", "bench.async_group_app:app", GROUP_CONNECTIONS="2"),
            "async-group-4": uvicorn("async-group-4", "bench.async_group_app:app", GROUP_CONNECTIONS="4"),
        }
        servers = [intake.Server(name, start, warm) for name, start in starts.items()]
        python = closed_loop_generator() == PYTHON_GENERATOR
        runner = intake.closed_loop_runner(python, connections, env_int("BENCH_WRK_SECONDS", 5))
        size = REQUESTS if python else 2 * REQUESTS
        rounds = intake.paired_rounds(
            servers,
            lambda index, name: deliveries_for(1 + index, size, f"g{index}{name}"),
            runner,
            rounds=env_int("BENCH_ROUNDS", 5),
            say=say,
        )
        print(f"group commit on the event loop, {len(rounds)} paired rounds, {connections} connections:")
        for name in starts:
            if name == "bare":
                continue
            cpu = intake.median_cpu(rounds, name)
            rps, p99 = (intake.median_of(rounds, name, pick) for pick in (lambda r: r.rps, lambda r: r.p99_ms))
            print(
                f"  {name:12} {rps:6.0f} req/s, ratio to bare {intake.ratio_to(rounds, name, 'bare')}, "
                f"p99 {p99:.1f} ms, "
                f"CPU a request ms: web {cpu['web']:.2f}, PostgreSQL + Redis {cpu['services']:.2f}, "
                f"errors {sum(r.errors.get(name, 0) for r in rounds)}"
            )
        for name in ("async-group", "async-group-4"):
            print(f"  {name} to async, per round: {intake.ratio_to(rounds, name, 'async')}")
        return 0
    finally:
        services.shut_down([], broker, store, tmp)


if __name__ == "__main__":
    sys.exit(main())
