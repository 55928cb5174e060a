"""Webhook intake is isolated from slow work, on the real server started from the Procfile's web
line: while 8 checkouts hang on a Stripe that accepts connections and never answers and 4 clients
trickle their bodies, every signed webhook is answered 2xx within 2 s, every checkout answers a
JSON 504 within the Stripe client's total bound, and every trickler a JSON 408."""

from __future__ import annotations

import contextlib
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from bench.services import start_gunicorn
from shared.stripe.client import DEFAULT_TIMEOUT_SECONDS as STRIPE_TOTAL_SECONDS
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.factories import stripe_events as se
from tests.fakes.black_hole import BlackHole
from tests.integration.conftest import worker_env
from web.auth import issue_token
from web.gunicorn_conf import BODY_READ_SECONDS

pytestmark = [pytest.mark.postgres]

HUNG_CHECKOUTS = 8
TRICKLERS = 4
WEBHOOKS = 24
WEBHOOK_BOUND_SECONDS = 2.0
# Scheduling slack on a busy 2-vCPU machine: the bounds themselves are the clients'.
SLACK_SECONDS = 3.0


@pytest.fixture
def black_hole():
    hole = BlackHole()
    yield hole
    hole.close()


@pytest.fixture
def procfile_web(pg_settings, black_hole, tmp_path: Path):
    """billhook's web app under the Procfile's gunicorn settings on PostgreSQL, Stripe's API at the
    black hole."""
    settings = pg_settings.with_overrides(stripe_api_base=black_hole.url)
    web = start_gunicorn("web", "web.wsgi:app", worker_env(settings, tmp_path / "unused.ready"), tmp_path)
    yield settings, f"http://127.0.0.1:{web.port}"
    web.stop()


def _checkout(url: str, token: str) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.post(
        f"{url}/api/v1/billing/stripe/credit-checkout",
        json={"package_id": "value"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    return response, time.monotonic() - started


def _trickle(url: str) -> socket.socket:
    """A webhook delivery that announces 1000 bytes of body and sends one."""
    host, port = url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)))
    conn.sendall(
        b"POST /webhooks/stripe HTTP/1.1\r\nHost: billhook\r\nContent-Type: application/json\r\n"
        b"Stripe-Signature: t=1,v1=00\r\nContent-Length: 1000\r\n\r\n{"
    )
    return conn


def _read_answer(conn: socket.socket, timeout: float) -> bytes:
    conn.settimeout(timeout)
    data = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := conn.recv(65536):
            data += chunk
    return data


def _webhook(url: str) -> tuple[int, float]:
    body, headers = se.signed(se.event("customer.created", {"id": se.unique("cus")}), TEST_WEBHOOK_SECRET)
    started = time.monotonic()
    response = requests.post(f"{url}/webhooks/stripe", data=body, headers=headers, timeout=30)
    return response.status_code, time.monotonic() - started


def test_intake_answers_every_webhook_while_checkouts_hang_and_clients_trickle(procfile_web, black_hole):
    settings, url = procfile_web
    tokens = [issue_token(settings, f"acct_iso_{i}") for i in range(HUNG_CHECKOUTS)]
    with ThreadPoolExecutor(HUNG_CHECKOUTS) as pool:
        checkouts = [pool.submit(_checkout, url, token) for token in tokens]
        tricklers = [_trickle(url) for _ in range(TRICKLERS)]
        # Every checkout is inside its Stripe call before the webhooks start.
        deadline = time.monotonic() + 10
        while len(black_hole.accepted) < HUNG_CHECKOUTS:
            assert time.monotonic() < deadline, f"only {len(black_hole.accepted)} checkouts reached Stripe"
            time.sleep(0.05)

        webhooks = [_webhook(url) for _ in range(WEBHOOKS)]
        answers = [_read_answer(conn, BODY_READ_SECONDS + SLACK_SECONDS) for conn in tricklers]
        results = [future.result() for future in checkouts]

    assert all(200 <= status < 300 for status, _ in webhooks), webhooks
    assert max(elapsed for _, elapsed in webhooks) < WEBHOOK_BOUND_SECONDS, webhooks
    for response, elapsed in results:
        assert response.status_code == 504, response.text
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == "provider_timeout"
        assert elapsed < STRIPE_TOTAL_SECONDS + SLACK_SECONDS
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"application/json" in answer
    for conn in tricklers:
        conn.close()
