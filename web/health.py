"""Liveness and readiness for load balancers and orchestrators.

`GET /healthz`: the process answers (no dependency is touched, so a slow database never gets a
healthy process restarted). `GET /readyz`: the store answers, the broker answers, and the store's
schema is at the code's newest migration; otherwise 503 naming what failed. Failure details are
exception class names only: a connection error's text may quote a URL with its password.

`warnings` lists data problems an operator should see (Stripe events in API versions billhook
cannot read, or newer than it knows) without making the service unready: a bad event must not
pull intake out of the load balancer.
"""

from __future__ import annotations

import functools
import time

import redis
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, jsonify
from sqlalchemy import text

from shared.config import PROJECT_ROOT
from shared.stripe import versions
from web.context import billhook

bp = Blueprint("health", __name__)

BROKER_TIMEOUT_SECONDS = 0.5


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    checks = {"database": _check_database(), "broker": _check_broker(), "migrations": _check_migrations()}
    failed = [name for name, result in checks.items() if not result["ok"]]
    seen = _stripe_versions() if checks["database"]["ok"] else {}
    body = {
        "status": "unready" if failed else "ready",
        "failed": failed,
        "checks": checks,
        "warnings": versions.version_warnings(seen),
        "stripe_api_versions": seen,
    }
    if billhook().settings.dev_mode:
        body["mode"] = "development"  # BILLHOOK_DEV_MODE=1: the PayPal development certificate may be trusted
    return jsonify(body), 503 if failed else 200


def _stripe_versions() -> dict[str, int]:
    """The API versions of the latest Stripe events; empty when they cannot be read (a warning's
    source failing is not a readiness failure)."""
    try:
        with billhook().session_factory() as session:
            return versions.recent_versions(session)
    except Exception:  # noqa: BLE001 - readiness is decided by the checks above
        return {}


def _timed(check):
    @functools.wraps(check)
    def run() -> dict:
        started = time.perf_counter()
        try:
            result = {"ok": True, **(check() or {})}
        except Exception as exc:  # noqa: BLE001 - any failure makes the dependency unready
            detail = str(exc) if isinstance(exc, MigrationsBehind) else type(exc).__name__
            result = {"ok": False, "error": detail}
        result["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
        return result

    return run


@_timed
def _check_database() -> None:
    with billhook().engine.connect() as conn:
        conn.execute(text("SELECT 1"))


@_timed
def _check_broker() -> None:
    client = redis.Redis.from_url(
        billhook().settings.redis_url,
        socket_connect_timeout=BROKER_TIMEOUT_SECONDS,
        socket_timeout=BROKER_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    finally:
        client.close()


@_timed
def _check_migrations() -> dict:
    with billhook().engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    expected = set(code_heads())
    if current != expected:
        raise MigrationsBehind(f"database at {sorted(current) or 'none'}, code at {sorted(expected)}")
    return {"revision": ",".join(sorted(current))}


class MigrationsBehind(Exception):
    pass


@functools.cache
def code_heads() -> tuple[str, ...]:
    """The newest migration(s) the code ships; read once per process."""
    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("path_separator", "os")
    return tuple(ScriptDirectory.from_config(config).get_heads())
