"""Where the time goes: the intake request and the worker's per-event path, run in this process
under pyinstrument against a store and broker of the harness's own (`python -m bench.profile`).

Environment as for `make bench`; PROFILE_REQUESTS / PROFILE_EVENTS (default 1500 / 600).
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

from pyinstrument import Profiler

from bench import scenario, services
from bench.__main__ import deliveries_for, env_int, store_backlog
from shared import processing
from shared.config import Settings


def main() -> int:
    tmp = services.make_tmp("billhook-profile-")
    store = services.Store(os.environ.get("DATABASE_URL"), tmp)
    broker = services.Broker(os.environ.get("REDIS_URL"), tmp)
    try:
        settings = Settings(
            database_url=store.url, redis_url=broker.url, var_dir=tmp, queue_name=f"profile_{os.getpid()}"
        )
        profile_intake(settings, env_int("PROFILE_REQUESTS", 1500))
        profile_worker(store, env_int("PROFILE_EVENTS", 600))
        broker.delete_queue(settings.queue_name)
    finally:
        broker.close()
        store.close()
        services.remove_tmp(tmp)
    return 0


def profile_intake(settings: Settings, count: int) -> None:
    from web import create_app

    app = create_app(settings)
    client = app.test_client()
    deliveries = deliveries_for(7, count, "prof")
    for body, headers in deliveries[:100]:
        client.post("/webhooks/stripe", data=body, headers=headers)
    profiler = Profiler(interval=0.0005)
    with profiler:
        for body, headers in deliveries[100:]:
            response = client.post("/webhooks/stripe", data=body, headers=headers)
            assert response.status_code == 200, response.data
    _print(profiler)


def profile_worker(store, count: int) -> None:
    backlog = scenario.generate(9, count, duplicate_share=0.0, refunds=False, prefix="prw")
    pks = store_backlog(store, backlog.events)

    def clock():
        return datetime.now(UTC)

    profiler = Profiler(interval=0.0005)
    with profiler:
        for evt in backlog.events:
            processing.process_event(store.session_factory, pks[evt["id"]], clock=clock)
    _print(profiler)


def _print(profiler: Profiler) -> None:
    show_all = os.environ.get("PROFILE_ALL") == "1"
    print(profiler.output_text(unicode=True, color=False, show_all=show_all), file=sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
