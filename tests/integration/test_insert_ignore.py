"""insert_ignore on the real PostgreSQL: the unique key decides, and the caller is told which way."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.billing import ledger
from shared.billing.accounts import ensure_account
from shared.outcome import Outcome

pytestmark = [pytest.mark.postgres]


def test_a_new_row_reads_as_inserted_and_a_repeat_as_not(pg_settings, pg_session_factory):
    at = datetime.now(UTC)
    with pg_session_factory.begin() as session:
        ensure_account(session, "acct_ii")
        entry = {"account_id": "acct_ii", "amount": 5, "kind": "adjustment", "description": "d", "at": at}
        first = ledger.add_entry(session, Outcome(), idempotency_key="ii-1", **entry)
        again = ledger.add_entry(session, Outcome(), idempotency_key="ii-1", **entry)
    assert (first, again) == (True, False)


def test_outgoing_rows_are_multi_row_inserts_whose_taken_keys_leave_no_gap(pg_session_factory):
    """On PostgreSQL the events of a transaction are one INSERT (insertmanyvalues) and their
    deliveries another; a key a committed event holds is skipped and the sequence closed up."""
    from sqlalchemy import select

    from shared.models import OutgoingDelivery, OutgoingEvent
    from shared.outgoing import endpoints
    from shared.outgoing import events as outgoing

    at = datetime.now(UTC)
    with pg_session_factory.begin() as session:
        endpoints.add_endpoint(session, "http://127.0.0.1:9/hook", allow_private=True, at=at)
        ensure_account(session, "acct_mr")

    def emit(*keys: str) -> Outcome:
        outcome = Outcome()
        with pg_session_factory.begin() as session:
            for key in keys:
                outgoing.emit(session, outcome, account_id="acct_mr", type="credits.low", key=key, data={}, at=at)
        return outcome

    first = emit("mr:1")
    later = emit("mr:0", "mr:1", "mr:2", "mr:3")

    with pg_session_factory() as session:
        events = list(session.scalars(select(OutgoingEvent).order_by(OutgoingEvent.sequence)))
        delivered = sorted(session.scalars(select(OutgoingDelivery.id)))
    assert [(e.idempotency_key, e.sequence, e.body["sequence"]) for e in events] == [
        ("mr:1", 1, 1),
        ("mr:0", 2, 2),
        ("mr:2", 3, 3),
        ("mr:3", 4, 4),
    ]
    assert (len(first.deliveries), len(later.deliveries)) == (1, 3)
    assert delivered == sorted(first.deliveries + later.deliveries)
