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
