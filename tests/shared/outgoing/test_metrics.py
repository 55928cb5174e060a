"""Outgoing deliveries in /metrics: attempts by outcome, rows by status, the oldest undelivered age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared import metrics
from shared.billing.accounts import ensure_account
from shared.outcome import Outcome
from shared.outgoing import endpoints
from shared.outgoing import events as outgoing
from tests.web.test_metrics import scrape, value


def test_pending_deliveries_and_the_oldest_ones_age_are_scraped(client, seeded):
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    with seeded.begin() as session:
        endpoints.add_endpoint(session, "http://127.0.0.1:9/hook", allow_private=True, at=an_hour_ago)
        ensure_account(session, "acct_m")
        outgoing.emit(session, Outcome(), account_id="acct_m", type="credits.low", key="k", data={}, at=an_hour_ago)
    before = scrape(client)
    metrics.record_delivery("retry")
    after = scrape(client)

    assert value(after, "billhook_outgoing_deliveries_by_status", status="pending") == 1
    assert value(after, "billhook_outgoing_deliveries_by_status", status="delivered") == 0
    assert 3500 < value(after, "billhook_outgoing_oldest_undelivered_age_seconds") < 3700
    counted = "billhook_outgoing_deliveries_total"
    assert value(after, counted, outcome="retry") - value(before, counted, outcome="retry") == 1
