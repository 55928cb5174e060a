"""`python -m bench.statements`: the SQL statements the processing mix of `make bench` costs, per
inbox event and per outgoing event, split by what they are for; the count that says what an
outgoing event's entitlement snapshot costs.

The bench's processing backlog (bench/scenario.py: checkouts, first and renewal invoices,
failures, subscription changes, purchases, 20% duplicates) with one endpoint registered, each
event run through `processing.process_event` in this process, in delivery order (an event whose
dependency is not there yet runs again after the others). Statements are counted with a
`before_cursor_execute` listener on the engine (an executemany counts once: one round trip).

Environment: DATABASE_URL (else SQLite), BENCH_EVENTS (default 600 distinct events), BENCH_SEED.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import event, func, select

from bench import scenario, services
from shared import inbox, processing
from shared.dispatch import is_handled
from shared.models import OutgoingEvent
from shared.outgoing import endpoints


def kind_of(statement: str) -> str:
    sql = " ".join(statement.split()).lower()
    if "plans.features" in sql and "credit_ledger" in sql:
        return "snapshot"
    if sql.startswith("update accounts"):
        return "account update"
    if any(f"{verb} outgoing_" in sql for verb in ("from", "into", "update")):
        return "outgoing rows"
    return "other"


def count(store: services.Store, seed: int, events: int) -> tuple[Counter, int, int]:
    now = datetime.now(UTC)
    with store.session_factory.begin() as session:
        endpoints.add_endpoint(session, "http://127.0.0.1:9/hook", allow_private=True, at=now)
    backlog = scenario.generate(seed, events, duplicate_share=0.2, refunds=False, prefix="s")
    pks = []
    with store.session_factory.begin() as session:
        for evt in backlog.deliveries:
            stored = inbox.record_event(
                session,
                provider="stripe",
                event_id=evt["id"],
                type=evt["type"],
                payload=evt,
                event_created_at=datetime.fromtimestamp(evt["created"], UTC),
                handled=is_handled("stripe", evt["type"]),
                at=now,
            )
            pks.append(stored.id)
    counted: Counter = Counter()

    def listen(_conn, _cursor, statement, _params, _context, _executemany):
        counted[kind_of(statement)] += 1

    event.listen(store.engine, "before_cursor_execute", listen)
    waiting = pks
    try:
        while waiting:
            again = []
            for pk in waiting:
                try:
                    processing.process_event(store.session_factory, pk, clock=lambda: now)
                except Exception:  # noqa: BLE001 - a dependency not stored yet: after the others
                    again.append(pk)
            if len(again) == len(waiting):
                raise RuntimeError(f"{len(again)} events cannot be processed")
            waiting = again
    finally:
        event.remove(store.engine, "before_cursor_execute", listen)
    with store.session_factory() as session:
        outgoing = session.scalar(select(func.count()).select_from(OutgoingEvent))
    return counted, len(pks), outgoing


def main() -> int:
    tmp = services.make_tmp("billhook-statements-")
    store = services.Store(os.environ.get("DATABASE_URL"), tmp)
    try:
        counted, inbox_events, outgoing = count(
            store, int(os.environ.get("BENCH_SEED") or 1), int(os.environ.get("BENCH_EVENTS") or 600)
        )
    finally:
        store.close()
        services.remove_tmp(tmp)
    total = sum(counted.values())
    print(f"{store.kind}: {inbox_events} deliveries, {outgoing} outgoing events, {total} statements")
    print(f"  per delivery: {total / inbox_events:.2f}; per outgoing event: {total / outgoing:.2f}")
    for kind in ("snapshot", "outgoing rows", "account update", "other"):
        print(f"  {kind}: {counted[kind]} ({counted[kind] / outgoing:.2f} per outgoing event)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
