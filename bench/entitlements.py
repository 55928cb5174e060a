"""`python -m bench.entitlements`: the latency of `GET /api/v1/internal/accounts/{id}` on the
store the harness makes (PostgreSQL from DATABASE_URL, else SQLite), answered by the app in
process (no network, no gunicorn): the store's one query plus Flask's routing and JSON.

Environment: BENCH_ACCOUNTS (default 2000: each with a subscription and 5 ledger entries),
BENCH_REQUESTS (default 3000). Prints p50/p99/max in milliseconds.
"""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime

from bench import services
from shared.billing import ledger
from shared.billing.accounts import ensure_account
from shared.billing.subscriptions import SubscriptionChange, apply_subscription_state, lock_or_create_subscription
from shared.config import Settings
from shared.outcome import Outcome

TOKEN = "bench-service-token"  # noqa: S105 - the harness's own throwaway token


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


def main() -> int:
    from web import create_app

    accounts = int(os.environ.get("BENCH_ACCOUNTS") or 2000)
    requests = int(os.environ.get("BENCH_REQUESTS") or 3000)
    tmp = services.make_tmp("billhook-entitlements-")
    store = services.Store(os.environ.get("DATABASE_URL"), tmp)
    try:
        populate(store, accounts)
        settings = Settings(database_url=store.url, redis_url="redis://127.0.0.1:1/0", var_dir=tmp, service_token=TOKEN)
        noop = lambda _pk: None  # noqa: E731 - nothing is published here
        app = create_app(settings, enqueue=noop, enqueue_email=noop, enqueue_delivery=noop)
        client = app.test_client()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        timings = []
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(f"/api/v1/internal/accounts/acct_{random.randrange(accounts)}", headers=headers)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.get_data(as_text=True)
        app.extensions["billhook"].dispose()
    finally:
        store.close()
    timings.sort()
    p50, p99 = timings[len(timings) // 2], timings[int(len(timings) * 0.99)]
    print(
        f"entitlements on {store.kind}: {requests} requests over {accounts} accounts: "
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {timings[-1]:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
