"""The ops page in a real browser: headless Chromium logs in with basic auth, sees the failed
event with its attempts and error, clicks Replay, and lands back on the page with the event
waiting again and published once."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

from shared.models import WebhookEvent
from tests.web.test_ops import OPS_AUTH, store
from tests.web.webdriver import Browser, browser_or_skip
from web import create_app


@pytest.fixture
def live_ops(settings, seeded, enqueued):
    app = create_app(settings.with_overrides(flower_basic_auth=OPS_AUTH), enqueue=enqueued)
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


def test_ops_page_in_chromium_replays_a_failed_event(browser, live_ops, seeded, enqueued):
    failed = store(seeded, status="failed", error="PermanentError: plan missing", attempts=3)
    done = store(seeded, status="succeeded", attempts=1)

    browser.get(f"http://ops:correct-horse@{live_ops}/ops")

    row = browser.find(f"#event-{failed}")
    assert browser.attribute(row, "data-status") == "failed"
    assert browser.text(browser.find(f"#event-{failed} .attempts")) == "3"
    assert browser.text(browser.find(f"#event-{failed} .error")) == "PermanentError: plan missing"
    assert browser.find_all(f"#event-{done} button") == []

    browser.click(browser.find(f"#event-{failed} button"))

    notice = browser.wait_until(lambda: browser.text(browser.find("#notice")))
    assert notice == f"Event {failed} queued again."
    assert browser.url.endswith(f"/ops?replayed={failed}&notice=replayed")
    assert browser.attribute(browser.find(f"#event-{failed}"), "data-status") == "received"
    assert enqueued == [failed]
    with seeded() as session:
        assert session.get(WebhookEvent, failed).status == "received"


def test_ops_page_in_chromium_without_credentials_is_refused(browser, live_ops):
    browser.get(f"http://{live_ops}/ops")
    assert "billhook ops" not in browser.page_text()
