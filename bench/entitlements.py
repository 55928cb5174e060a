"""The latency of `GET /api/v1/internal/accounts/{id}` (target: p99 ≤ 10 ms on PostgreSQL).

Measured as the main app sees it: through gunicorn started with the Procfile's web options
(`services.start_gunicorn`), one keep-alive connection asking for one account after another, each
request timed from its first byte sent to the last byte of the answer read. `make bench` calls
`bench_entitlements` on the run's store after the processing rounds (the accounts those rounds
made, with their subscriptions, ledgers and outgoing events); `python -m bench.entitlements`
populates a store of its own and also times the app in process (no HTTP, no gunicorn), which
separates the store's query and Flask from the server.

Environment: BENCH_ENTITLEMENT_REQUESTS (default 2000 timed requests, after 200 to warm up);
standalone also DATABASE_URL (else SQLite) and BENCH_ACCOUNTS (default 2000: each with a
subscription and 5 ledger entries).
"""

from __future__ import annotations

import http.client
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from bench import services
from shared.billing import ledger
from shared.billing.accounts import ensure_account
from shared.billing.subscriptions import SubscriptionChange, apply_subscription_state, lock_or_create_subscription
from shared.config import Settings
from shared.models import Account
from shared.outcome import Outcome

TOKEN = "bench-service-token"  # noqa: S105 - the harness's own throwaway token
PATH = "/api/v1/internal/accounts/"
P99_TARGET_MS = 10.0
WARM_UP = 200
MAX_ACCOUNTS = 5000


@dataclass(frozen=True)
class Latency:
    via: str
    requests: int
    accounts: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, via: str, accounts: int, timings: list[float]) -> Latency:
        timings = sorted(timings)
        return cls(
            via, len(timings), accounts, timings[len(timings) // 2], timings[int(len(timings) * 0.99)], timings[-1]
        )

    def text(self) -> str:
        return (
            f"{self.via}: {self.requests} requests over {self.accounts} accounts: "
            f"p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms, max {self.max_ms:.2f} ms"
        )


def requests_wanted() -> int:
    return int(os.environ.get("BENCH_ENTITLEMENT_REQUESTS") or 2000)


def account_ids(store: services.Store) -> list[str]:
    with store.session_factory() as session:
        return list(session.scalars(select(Account.id).order_by(Account.id).limit(MAX_ACCOUNTS)))


def timed_requests(ask: Callable[[str], int], ids: list[str], count: int) -> list[float]:
    """`count` requests for random accounts of `ids`, each timed in ms; every answer must be 200."""
    rng = random.Random(1)
    timings = []
    for _ in range(count):
        account_id = rng.choice(ids)
        started = time.perf_counter()
        status = ask(account_id)
        timings.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"GET {PATH}{account_id} answered {status}")
    return timings


def over_http(port: int, ids: list[str], count: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def ask(account_id: str) -> int:
        connection.request("GET", PATH + account_id, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status

    try:
        timed_requests(ask, ids, WARM_UP)
        return timed_requests(ask, ids, count)
    finally:
        connection.close()


def bench_entitlements(store: services.Store, env: dict[str, str], tmp: Path, procs: list[services.Proc]) -> dict:
    """`make bench`'s row: the run's accounts asked for through gunicorn, one after another."""
    ids = account_ids(store)
    if not ids:
        raise RuntimeError("the store has no accounts to ask for")
    web = services.start_gunicorn("entitlements", "web.wsgi:app", {**env, "BILLHOOK_SERVICE_TOKEN": TOKEN}, tmp)
    procs.append(web)
    try:
        timings = over_http(web.port, ids, requests_wanted())
    finally:
        web.stop()
    return Latency.of("gunicorn", len(ids), timings).__dict__


def table_row(result: dict, postgres: bool) -> str:
    """The row for bench/__main__.py's table of measures."""
    verdict = ("met" if result["p99_ms"] <= P99_TARGET_MS else "NOT met") if postgres else "n/a (SQLite)"
    return (
        f"| entitlements GET /api/v1/internal/accounts/{{id}}, p99 ms ({result['via']}, one keep-alive "
        f"connection, {result['requests']} requests over {result['accounts']} accounts; p50 {result['p50_ms']:.2f}) "
        f"| {result['p99_ms']:.2f} | ≤ {P99_TARGET_MS:.0f} on PostgreSQL | {verdict} |"
    )


# -- standalone: `python -m bench.entitlements` -----------------------------------------------


def populate(store: services.Store, accounts: int) -> None:
    now = datetime.now(UTC)
    with store.session_factory.begin() as session:
        for n in range(accounts):
            account_id = f"acct_{n}"
            ensure_account(session, account_id)
            sub = lock_or_create_subscription(
                session, provider="stripe", provider_subscription_id=f"sub_{n}", account_id=account_id
            )
            change = SubscriptionChange(status=random.choice(("active", "past_due", "canceled")), plan_id="growth")
            apply_subscription_state(session, Outcome(), sub, change, event_at=now, event_id=f"e{n}", now=now)
            for k in range(5):
                ledger.grant_credits(
                    session,
                    Outcome(),
                    account_id=account_id,
                    credits=100,
                    kind=ledger.GRANT_PURCHASE,
                    description="bench",
                    idempotency_key=f"bench:{n}:{k}",
                    at=now,
                )


def in_process(store: services.Store, tmp: Path, ids: list[str], count: int) -> list[float]:
    from web import create_app

    settings = Settings(database_url=store.url, redis_url="redis://127.0.0.1:1/0", var_dir=tmp, service_token=TOKEN)
    noop = lambda _pk: None  # noqa: E731 - nothing is published here
    app = create_app(settings, enqueue=noop, enqueue_email=noop, enqueue_delivery=noop)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        ask = lambda account_id: client.get(PATH + account_id, headers=headers).status_code  # noqa: E731
        timed_requests(ask, ids, WARM_UP)
        return timed_requests(ask, ids, count)
    finally:
        app.extensions["billhook"].dispose()


def main() -> int:
    accounts = int(os.environ.get("BENCH_ACCOUNTS") or 2000)
    tmp = services.make_tmp("billhook-entitlements-")
    store = services.Store(os.environ.get("DATABASE_URL"), tmp)
    broker = None
    procs: list[services.Proc] = []
    try:
        populate(store, accounts)
        ids = account_ids(store)
        local = Latency.of("in process", len(ids), in_process(store, tmp, ids, requests_wanted()))
        print(f"entitlements on {store.kind}, {local.text()}", flush=True)
        broker = services.Broker(os.environ.get("REDIS_URL"), tmp)
        env = services.service_env(store.url, broker.url, "bench_entitlements", tmp)
        served = bench_entitlements(store, env, tmp, procs)
        print(f"entitlements on {store.kind}, {Latency(**served).text()}")
        print(table_row(served, store.kind == "PostgreSQL"))
    finally:
        services.shut_down(procs, broker, store, tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
