"""The printable invoice in a real browser: headless Chromium opens the signed link the JSON
answer gives (no token), sees the invoice with its seller, lines and credit note; an altered
link shows the refusal."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

from tests.web import test_invoices
from tests.web.test_invoices import SELLER, issue
from tests.web.webdriver import Browser, browser_or_skip

# The app with the seller configured, its test client, and a user's bearer headers.
app, client, user = test_invoices.app, test_invoices.client, test_invoices.user


@pytest.fixture
def live(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture
def browser():
    chromium, driver = browser_or_skip()
    browser = Browser(chromium, driver)
    yield browser
    browser.quit()


def test_printable_invoice_opens_in_chromium_from_the_signed_link(browser, live, client, user, seeded, now):
    number = issue(seeded, "acct_1", "cs_print", now, credit=500)
    base = client.get(f"/api/v1/billing/invoices/{number}", headers=user()).json["print_url"]
    link = live + base[base.index("/invoices/") :]  # the test client's host is localhost

    browser.get(link)

    assert browser.text(browser.find("#number")) == number
    assert browser.text(browser.find("#seller-name")) == SELLER["name"]
    assert browser.text(browser.find("#total")) == "29.99 USD"
    assert len(browser.find_all("#lines .line")) == 1
    assert browser.text(browser.find(f"#cn-CN-{now.year}-000001 .amount")) == "-5.00 USD"

    browser.get(link.replace("sig=", "sig=0"))

    assert "invalid or has expired" in browser.text(browser.find("#forbidden"))
    assert browser.find_all("#number") == []
