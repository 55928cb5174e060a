"""Manual payments tell the main app too: the decision, the period it starts, and its lapse once
the paid period ends, each once, in the account's sequence and the documented body."""

from __future__ import annotations

import json

from sqlalchemy import select

from shared.billing import manual_payments
from shared.models import OutgoingEvent, Subscription
from shared.outcome import Outcome
from tests.shared.billing.test_manual_payments import ACCOUNT, decide, request
from tests.shared.billing.test_manual_payments import store as store  # noqa: F401 - the fixture
from tests.shared.outgoing.test_schema import SCHEMA, violations


def bodies(session_factory) -> list[dict]:
    with session_factory() as session:
        stmt = select(OutgoingEvent).filter_by(account_id=ACCOUNT).order_by(OutgoingEvent.sequence)
        return [e.body for e in session.scalars(stmt)]


def test_an_approved_plan_period_and_its_lapse_are_told_once(store, now):  # noqa: F811
    pid, _ = request(store, now, plan_id="starter")
    decide(store, now, pid)
    decide(store, now, pid)  # decided already: nothing new
    with store() as session:
        end = session.scalars(select(Subscription)).one().current_period_end
    for _ in range(2):
        with store.begin() as session:
            manual_payments.lapse_ended_periods(session, Outcome(), now=end)

    told = bodies(store)

    assert [b["type"] for b in told] == [
        "manual_payment.approved",
        "subscription.activated",
        "credits.granted",
        "subscription.lapsed",
    ]
    assert [b["sequence"] for b in told] == [1, 2, 3, 4]
    assert told[1]["data"]["billing"]["entitled"] is True and told[-1]["data"]["billing"]["entitled"] is False
    assert [v for body in told for v in violations(json.loads(json.dumps(body)), SCHEMA)] == []


def test_a_rejection_is_told_once(store, now):  # noqa: F811
    pid, _ = request(store, now)
    decide(store, now, pid, approve=False, reason="no transfer arrived")

    assert [b["type"] for b in bodies(store)] == ["manual_payment.rejected"]
