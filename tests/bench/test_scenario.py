"""The chaos scenario's expectations against billhook itself, in process on the test store: a
seeded stream of Stripe and PayPal accounts, shuffled and duplicated, run through the handlers as
the worker runs them (an event waiting on another is retried after it), then checked by the chaos
run's own checks. `make chaos` adds the servers, the concurrency and the breakage."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from bench import chaos, scenario
from shared import processing
from shared.errors import RetryLater
from tests.factories.inbox import store_event


def run_stream(session_factory, stream: scenario.Scenario) -> None:
    waiting = [store_event(session_factory, evt) for evt in stream.deliveries]
    for _ in range(20):  # passes: a sale before its activation, a reversal before its sale, ...
        retry = []
        for pk in waiting:
            try:
                processing.process_event(session_factory, pk, clock=lambda: datetime.now(UTC))
            except RetryLater:
                retry.append(pk)
        if not retry:
            return
        waiting = retry
    raise AssertionError(f"{len(waiting)} events still waiting on another")


@pytest.mark.slow
def test_paypal_and_stripe_accounts_end_as_the_scenario_expects_in_any_order(seeded):
    # Seed 8 delivers a sale before the older failure of its cycle, the order that left a PayPal
    # subscription past_due before its sales applied their own state.
    stream = scenario.generate(8, 600, duplicate_share=0.3, disputes=True, paypal_share=0.5, prefix="t")
    kinds = Counter(evt.get("event_type") for evt in stream.events if scenario.provider_of(evt) == "paypal")
    assert kinds["BILLING.SUBSCRIPTION.ACTIVATED"] >= 10 and kinds["BILLING.SUBSCRIPTION.PAYMENT.FAILED"] > 0
    assert kinds["PAYMENT.SALE.REVERSED"] > 0 and kinds["BILLING.SUBSCRIPTION.SUSPENDED"] > 0

    run_stream(seeded, stream)
    report = chaos.Report(chaos.Config(), accounts=len(stream.expected))
    chaos._check(SimpleNamespace(session_factory=seeded), stream, {e["id"] for e in stream.events}, report)

    assert report.grants > 0 and report.violations == 0, report.table()
