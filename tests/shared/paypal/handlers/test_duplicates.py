"""Two PayPal subscriptions live for one account: the later by PayPal's `create_time` grants
nothing and is flagged, whichever activation arrives first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from shared.models import Subscription
from tests.shared.paypal.handlers.support import GROWTH_CREDITS, activated, balance, run, sale_event, sale_refund_event


def flagged(seeded) -> dict[str, str | None]:
    with seeded() as session:
        rows = {s.id: s for s in session.scalars(select(Subscription))}
    return {
        s.provider_subscription_id: rows[s.duplicate_of_id].provider_subscription_id if s.duplicate_of_id else None
        for s in rows.values()
    }


@pytest.mark.parametrize("later_first", [False, True], ids=["earlier_first", "later_first"])
def test_the_later_paypal_subscription_grants_nothing(seeded, now, later_first):
    earlier = [activated(now, sub_id="I-EARLY"), sale_event(now + timedelta(seconds=30), sub_id="I-EARLY")]
    start = now + timedelta(hours=1)
    later = [activated(start, sub_id="I-LATE"), sale_event(start + timedelta(seconds=30), sub_id="I-LATE")]

    for evt in (later + earlier if later_first else earlier + later) + later:  # the later's told twice
        run(seeded, evt, now)

    assert balance(seeded) == GROWTH_CREDITS
    assert flagged(seeded) == {"I-EARLY": None, "I-LATE": "I-EARLY"}

    # The operator refunds the duplicate: what it granted was taken back already, or never granted.
    run(seeded, sale_refund_event(later[1], now + timedelta(days=1)), now)

    assert balance(seeded) == GROWTH_CREDITS
