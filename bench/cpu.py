"""CPU a request of each intake, in this process, with no HTTP server and no load generator: the
WSGI apps are called directly on prepared requests, billhook's event-loop intake (web/webhooks/asgi.py)
through ASGI on a uvloop loop, one request after another (`python -m bench.cpu`). It counts what the
apps themselves cost, with far less of the machine's noise than throughput has (its own
process's CPU time, not the clock), so two runs, or two commits, can be compared.

Environment: DATABASE_URL (PostgreSQL; the lean reference needs it), REDIS_URL, CPU_REQUESTS
(default 3000 a round), CPU_ROUNDS (default 5).
"""

from __future__ import annotations

import io
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable

from werkzeug.test import EnvironBuilder

from bench import services
from bench.__main__ import deliveries_for, env_int
from bench.asgi_client import request

PATH = "/webhooks/stripe"


def environ_for(body: bytes, headers: dict[str, str]) -> dict:
    return EnvironBuilder(path=PATH, method="POST", data=body, headers=headers).get_environ()


def cpu_per_request(app: Callable, environs: list[dict]) -> float:
    """Microseconds of this process's CPU a request (the publisher thread's included)."""

    def start_response(status, _headers, _exc_info=None):
        if not status.startswith("200"):
            raise RuntimeError(f"intake answered {status}")

    started = time.process_time()
    for environ in environs:
        environ = dict(environ)
        environ["wsgi.input"] = io.BytesIO(environ["billhook.body"])
        for _ in app(environ, start_response):
            pass
    return 1e6 * (time.process_time() - started) / len(environs)


def asgi_cpu_per_request(app, loop, deliveries: list[tuple[bytes, dict[str, str]]]) -> float:
    """Microseconds of this process's CPU a request through the ASGI app, one at a time."""

    async def one(body: bytes, headers: dict[str, str]) -> None:
        answer = await request(app, PATH, [body], headers)
        if answer is None or answer.status != 200:
            raise RuntimeError(f"intake answered {answer and answer.status}")

    async def all_of_them() -> None:
        for body, headers in deliveries:
            await one(body, headers)

    started = time.process_time()
    loop.run_until_complete(all_of_them())
    return 1e6 * (time.process_time() - started) / len(deliveries)


def prepared(seed: int, count: int, prefix: str) -> list[dict]:
    out = []
    for body, headers in deliveries_for(seed, count, prefix):
        environ = environ_for(body, headers)
        environ["billhook.body"] = body
        out.append(environ)
    return out


def main() -> int:
    count, rounds = env_int("CPU_REQUESTS", 3000), env_int("CPU_ROUNDS", 5)
    tmp = services.make_tmp("billhook-cpu-")
    store = services.Store(os.environ.get("DATABASE_URL"), tmp)
    broker = services.Broker(os.environ.get("REDIS_URL"), tmp)
    intake = loop = None
    try:
        env = services.service_env(store.url, broker.url, f"cpu_{os.getpid()}", tmp)
        env["HARNESS_WEBHOOK_SECRET"] = services.WEBHOOK_SECRET
        os.environ.update(env)
        import bench.bare_app
        import web.wsgi

        logging.getLogger().setLevel(logging.WARNING)  # the request lines would be most of the output

        import uvloop

        from web.webhooks import asgi

        apps = {"bare": bench.bare_app.app.wsgi_app, "billhook-flask": web.wsgi.app.wsgi_app}
        if store.kind == "PostgreSQL":
            import bench.lean_app

            apps["lean"] = bench.lean_app.app.wsgi_app
        loop = uvloop.new_event_loop()
        intake = asgi.create_app()

        def measure(name: str, seed: int, count: int, prefix: str) -> float:
            if name == "billhook":
                return asgi_cpu_per_request(intake, loop, deliveries_for(seed, count, prefix))
            return cpu_per_request(apps[name], prepared(seed, count, prefix))

        names = ["bare", "billhook", *[n for n in apps if n != "bare"]]
        for name in names:  # warm: connections, caches, the publisher thread
            measure(name, 99, 300, f"cw{name}")
        results: dict[str, list[float]] = {name: [] for name in names}
        for index in range(rounds):
            for name in names:
                results[name].append(measure(name, index, count, f"c{index}{name}"))
        print(f"CPU a request, µs, in-process ({rounds} rounds of {count}; {store.kind}): median (min–max)")
        bare = statistics.median(results["bare"])
        for name, values in results.items():
            median = statistics.median(values)
            print(f"  {name:14} {median:7.0f} ({min(values):.0f}–{max(values):.0f})  ×{median / bare:.2f} of bare")
        return 0
    finally:
        if intake is not None:
            loop.run_until_complete(intake.close())
        broker.delete_queue(f"cpu_{os.getpid()}")
        broker.close()
        store.close()
        services.remove_tmp(tmp)


if __name__ == "__main__":
    sys.exit(main())
