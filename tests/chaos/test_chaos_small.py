"""The chaos run of `make chaos` (bench/chaos.py), small: a few hundred shuffled, concurrent,
duplicated deliveries against real PostgreSQL and Redis, a worker SIGKILLed and restarted, Redis
restarted, and every exactly-once promise checked at the end."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from bench.chaos import Config, run
from tests.conftest import PG_URL, service_missing

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def pg_base_url() -> str:
    engine = create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any connection failure means the service is missing
        service_missing(f"PostgreSQL for the chaos run: {type(exc).__name__}")
    finally:
        engine.dispose()
    return PG_URL


def test_killed_worker_and_restarted_redis_lose_nothing_and_double_nothing(pg_base_url):
    config = Config(seed=11, deliveries=300, grace_seconds=5, sweep_every=1.0, sweep_limit=20, timeout=120)
    report = run(config, pg_base_url, say=lambda _message: None)
    # Killed, restarted, Redis restarted (and any instance that exited on its own, started again
    # as a supervisor would: reported, not hidden).
    deliberate = [a for a in report.actions if "exited on its own" not in a]
    assert [a.split(" ")[0] for a in deliberate] == ["SIGKILLed", "restarted", "restarted"], report.actions
    assert "restarted Redis (down ~1 s)" in deliberate
    assert report.accepted == report.distinct
    assert report.violations == 0, report.table()
