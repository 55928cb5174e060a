"""Disputes tell the main app: `dispute.created` once per dispute, `dispute.won` / `dispute.lost`
once per decision, under duplicated and reordered delivery, for both providers, in the
documented body."""

from __future__ import annotations

import json

import pytest

from tests.shared.outgoing.test_events import outgoing_events
from tests.shared.outgoing.test_schema import SCHEMA, violations
from tests.shared.paypal.handlers import test_disputes as paypal
from tests.shared.paypal.handlers.support import ACCOUNT as PAYPAL_ACCOUNT
from tests.shared.paypal.handlers.support import run as run_paypal
from tests.shared.stripe.handlers.support import ACCOUNT, run
from tests.shared.stripe.handlers.test_disputes import bought_value_package, dispute_events


@pytest.fixture
def t0(now) -> int:
    return int(now.timestamp())


def told(seeded, account_id: str = ACCOUNT) -> list[tuple[str, dict]]:
    """(type, data) of the account's dispute and credits events, in sequence order."""
    return [
        (e.type, e.body["data"])
        for e in outgoing_events(seeded, account_id)
        if e.type.split(".")[0] in ("dispute", "credits")
    ]


def test_a_lost_dispute_is_told_created_then_lost_once_each(seeded, now, t0):
    intent = bought_value_package(seeded, now, t0)
    created, closed = dispute_events(intent, t0)

    for evt in (created, created, closed, closed):
        run(seeded, evt, now)

    events = told(seeded)
    assert [t for t, _ in events] == [
        "credits.granted",
        "credits.reversed",
        "credits.low",
        "dispute.created",
        "dispute.lost",
    ]
    opened, lost = events[3][1], events[4][1]
    assert opened["dispute"]["state"] == "open" and lost["dispute"]["state"] == "lost"
    assert lost["dispute"]["payment_id"] and lost["dispute"]["amount_cents"] == 2999
    assert (lost["dispute"]["credits_reversed"], lost["dispute"]["credits_restored"]) == (2_000, 0)
    assert lost["billing"]["balance"] == 0
    bodies = [json.loads(json.dumps(e.body)) for e in outgoing_events(seeded)]
    assert [v for body in bodies for v in violations(body, SCHEMA)] == []


def test_a_won_dispute_is_told_with_the_credits_it_gave_back(seeded, now, t0):
    intent = bought_value_package(seeded, now, t0)
    created, closed = dispute_events(intent, t0, outcome="won")

    for evt in (created, closed, closed, created):
        run(seeded, evt, now)

    events = told(seeded)
    assert [t for t, _ in events] == [
        "credits.granted",
        "credits.reversed",
        "credits.low",
        "dispute.created",
        "credits.granted",
        "dispute.won",
    ]
    won = events[-1][1]
    assert (won["dispute"]["credits_reversed"], won["dispute"]["credits_restored"]) == (2_000, 2_000)
    assert won["billing"]["balance"] == 2_000


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_a_closure_delivered_first_tells_the_creation_before_the_decision(seeded, now, t0, outcome):
    intent = bought_value_package(seeded, now, t0)
    created, closed = dispute_events(intent, t0, outcome=outcome)

    run(seeded, closed, now)
    run(seeded, created, now)  # late: nothing new to tell

    assert [t for t, _ in told(seeded) if t.startswith("dispute.")] == ["dispute.created", f"dispute.{outcome}"]


def test_a_paypal_dispute_is_told_the_same_way(seeded, now):
    capture_id = paypal.captured(seeded, now)
    created, resolved = paypal.dispute_events(capture_id, now, outcome="RESOLVED_SELLER_FAVOUR")

    for evt in (resolved, created, created, resolved):
        run_paypal(seeded, evt, now)

    events = [(t, d) for t, d in told(seeded, PAYPAL_ACCOUNT) if t.startswith("dispute.")]
    assert [t for t, _ in events] == ["dispute.created", "dispute.won"]
    assert (
        events[0][1]["dispute"]["provider"] == "paypal"
        and events[0][1]["dispute"]["id"] == created["resource"]["dispute_id"]
    )
