"""The inbox's hot statements keep using indexes when the inbox is large: at 100,000 events, the
sweeper's query and the worker's claim read through an index, never a scan of the table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from shared.db import locking_by_ids
from shared.inbox import claiming, sweep
from shared.models import WebhookEvent

pytestmark = [pytest.mark.postgres]

ROWS = 100_000


@pytest.fixture
def large_inbox(pg_session_factory):
    """100,000 events, nearly all done, a few waiting, as in a store that has run for months."""
    with pg_session_factory.begin() as session:
        session.execute(
            text(
                "INSERT INTO webhook_events (provider, event_id, type, payload, received_at, updated_at, status,"
                " attempts) SELECT 'stripe', 'evt_' || n, 'invoice.paid', '{}', now() - interval '1 day',"
                " now() - interval '1 day', CASE WHEN n % 2000 = 0 THEN 'received' ELSE 'succeeded' END, 1"
                " FROM generate_series(1, :rows) AS n"
            ),
            {"rows": ROWS},
        )
    with pg_session_factory() as session:
        session.connection().exec_driver_sql("ANALYZE webhook_events")
        session.commit()
    return pg_session_factory


def _plan(session_factory, stmt, params: dict) -> str:
    compiled = stmt.compile(dialect=postgresql.psycopg.dialect())
    with session_factory() as session:
        cursor = session.connection().connection.cursor()
        cursor.execute("EXPLAIN " + str(compiled), {**compiled.params, **params})
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_sweepers_query_reads_an_index_at_100k_events(large_inbox):
    now = datetime.now(UTC)
    plan = _plan(large_inbox, sweep.due_statement(now, grace_seconds=60, limit=500), {})
    assert "Seq Scan on webhook_events" not in plan, plan
    assert "ix_webhook_events_status_received" in plan, plan  # only the few `received` rows are read


def test_the_claim_reads_the_primary_key_at_100k_events(large_inbox):
    plan = _plan(large_inbox, claiming._LOCK_EVENT, {"event_pk": 4000})
    assert "Seq Scan on webhook_events" not in plan, plan
    assert "pk_webhook_events" in plan, plan


def test_a_batchs_claim_reads_the_primary_key_at_100k_events(large_inbox):
    stmt = locking_by_ids(WebhookEvent).params(ids=list(range(4000, 4008)))  # inbox.lock_events
    compiled = stmt.compile(dialect=postgresql.psycopg.dialect(), compile_kwargs={"literal_binds": True})
    with large_inbox() as session:
        cursor = session.connection().connection.cursor()
        cursor.execute("EXPLAIN " + str(compiled))
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Seq Scan on webhook_events" not in plan, plan
    assert "pk_webhook_events" in plan, plan
