"""The ops page's attention section: open duplicate subscriptions, with the command that cancels
each; a canceled duplicate leaves it. Checked with the test client and in headless Chromium."""

from __future__ import annotations

import pytest

from tests.factories import stripe_events as se
from tests.shared.stripe.handlers.support import StripeSubscription, run
from tests.web.test_ops import OPS, OPS_AUTH
from tests.web.test_ops_manual_browser import browser, emails, live_ops  # noqa: F401 - fixtures
from web import create_app


@pytest.fixture
def ops(settings, seeded, enqueued):
    return create_app(settings.with_overrides(flower_basic_auth=OPS_AUTH), enqueue=enqueued).test_client()


def subscribed(seeded, now, created: int) -> StripeSubscription:
    sub = StripeSubscription(created)
    obj = se.subscription(
        subscription_id=sub.id,
        customer=sub.customer,
        price_id=sub.price_id,
        period_start=created,
        period_end=created + 30 * 86_400,
        metadata=sub.metadata,
    )
    obj["created"] = created
    run(seeded, se.event("customer.subscription.created", obj, created=created + 1), now)
    run(seeded, sub.invoice(at=created + 2), now)
    return sub


@pytest.fixture
def duplicate(seeded, now) -> tuple[StripeSubscription, StripeSubscription]:
    t0 = int(now.timestamp())
    return subscribed(seeded, now, t0), subscribed(seeded, now, t0 + 300)


def test_the_ops_page_lists_an_open_duplicate_with_its_cancel_command(ops, duplicate, seeded, now):
    earlier, later = duplicate

    page = ops.get("/ops", headers=OPS).get_data(as_text=True)

    assert "Attention: duplicate subscriptions" in page
    row = page[page.index(f'id="duplicate-{later.id}"') :].split("</tr>")[0]
    assert "acct_42" in row and earlier.id in row
    assert f"billhook subscriptions cancel {later.id} --refund" in row
    assert f'id="duplicate-{earlier.id}"' not in page

    obj = se.subscription(
        subscription_id=later.id,
        customer=later.customer,
        price_id=later.price_id,
        status="canceled",
        period_start=later.t0,
        period_end=later.t0 + 30 * 86_400,
        metadata=later.metadata,
        canceled_at=later.t0 + 900,
    )
    run(seeded, se.event("customer.subscription.deleted", obj, created=later.t0 + 900), now)

    assert "Attention" not in ops.get("/ops", headers=OPS).get_data(as_text=True)


def test_no_attention_section_without_duplicates(ops, seeded, now):
    subscribed(seeded, now, int(now.timestamp()))

    assert 'id="attention"' not in ops.get("/ops", headers=OPS).get_data(as_text=True)


def test_the_attention_section_renders_in_chromium(browser, live_ops, duplicate):  # noqa: F811 - fixtures
    _, later = duplicate

    browser.get(f"http://ops:correct-horse@{live_ops}/ops")

    heading = browser.wait_until(lambda: browser.text(browser.find("#attention-heading")))
    assert heading == "Attention: duplicate subscriptions"
    assert later.id in browser.text(browser.find(f"#duplicate-{later.id}"))
