"""The ops page's manual-payment buttons in a real browser: headless Chromium, basic auth, the
form token of the page, and a click on Approve that lands back on the page with the payment
decided and its credits granted once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from werkzeug.serving import make_server

from shared import credentials
from shared.billing import ledger, manual_payments
from shared.billing.accounts import ensure_account
from shared.outcome import Outcome
from tests.conftest import Enqueued
from tests.web.test_ops import OPS_AUTH
from tests.web.webdriver import Browser, browser_or_skip
from web import create_app


@pytest.fixture
def emails() -> Enqueued:
    return Enqueued()


@pytest.fixture
def live_ops(settings, seeded, enqueued, emails):
    app = create_app(settings.with_overrides(flower_basic_auth=OPS_AUTH), enqueue=enqueued, enqueue_email=emails)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture
def browser():
    chromium, driver = browser_or_skip()
    browser = Browser(chromium, driver)
    yield browser
    browser.quit()


def pending_payment(seeded) -> str:
    with seeded.begin() as session:
        credentials.set_provider(session, "manual", config={"instructions": "IBAN ..."})
        ensure_account(session, "acct_b", email="b@example.com")
        return manual_payments.request_manual_payment(
            session,
            Outcome(),
            account_id="acct_b",
            plan_id=None,
            package_id="value",
            method="bank_transfer",
            reference="TR-9",
            request_key="acct_b:1",
            requested_by="test",
            at=datetime.now(UTC),
        ).payment.provider_payment_id


def test_ops_page_in_chromium_approves_a_manual_payment(browser, live_ops, seeded, emails):
    pid = pending_payment(seeded)

    browser.get(f"http://ops:correct-horse@{live_ops}/ops")
    browser.click(browser.find(f"#payment-{pid} button[name=approve]"))

    notice = browser.wait_until(lambda: browser.text(browser.find("#payment-notice")))
    assert notice == f"Manual payment {pid} approved."
    assert browser.find_all(f"#payment-{pid}") == []
    with seeded() as session:
        assert ledger.balance(session, "acct_b") == 2_000
    assert len(emails) == 1
