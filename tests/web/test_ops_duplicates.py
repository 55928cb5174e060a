"""The ops page's attention section: open duplicate subscriptions, with the command that cancels
each; a canceled duplicate leaves it. Checked with the test client and in headless Chromium."""

from __future__ import annotations

import pytest

from tests.shared.stripe.handlers.support import CreatedSubscription, run
from tests.web.test_ops import OPS, OPS_AUTH
from tests.web.test_ops_manual_browser import browser, emails, live_ops  # noqa: F401 - fixtures
from web import create_app


@pytest.fixture
def ops(settings, seeded, enqueued):
    return create_app(settings.with_overrides(flower_basic_auth=OPS_AUTH), enqueue=enqueued).test_client()


def subscribed(seeded, now, created: int) -> CreatedSubscription:
    sub = CreatedSubscription(created, created=created)
    for evt in sub.first_period():
        run(seeded, evt, now)
    return sub


@pytest.fixture
def duplicate(seeded, now) -> tuple[CreatedSubscription, CreatedSubscription]:
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

    run(seeded, later.state(at=later.created + 900, status="canceled", event_type="customer.subscription.deleted"), now)

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
