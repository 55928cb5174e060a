"""Intake latency under adversity, as the Procfile runs billhook: webhooks to the event-loop intake
(web/webhooks/server.py) while checkouts hang on the web server (gunicorn) on a Stripe that accepts
connections and never answers and clients trickle their webhook bodies to the intake, as
tests/integration/test_isolation.py sets it up (docs/operating.md).

The adversity is kept up for the whole run: a checkout that gets its 504 is sent again at once,
a trickler that gets its 408 reconnects, so there are always HUNG_CHECKOUTS and TRICKLERS in flight.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench import loadgen, services
from shared import credentials
from shared.config import Settings
from tests.fakes.black_hole import BlackHole
from web.auth import issue_token

HUNG_CHECKOUTS = 8
TRICKLERS = 4
JWT_SECRET = "bench-jwt-secret-0123456789abcdef01234567"  # noqa: S105 - the bench's own throwaway server


class Adversity:
    """HUNG_CHECKOUTS checkout callers against `web_port` and TRICKLERS slow-body clients against
    `intake_port`, until stopped."""

    def __init__(self, web_port: int, intake_port: int, settings):
        self.web_port = web_port
        self.intake_port = intake_port
        self.tokens = [issue_token(settings, f"acct_adverse_{i}") for i in range(HUNG_CHECKOUTS)]
        self.stopping = threading.Event()
        self.answers: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._checkouts, args=(t,), daemon=True) for t in self.tokens]
        self._threads += [threading.Thread(target=self._trickle, daemon=True) for _ in range(TRICKLERS)]

    def __enter__(self) -> Adversity:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(30)

    def _count(self, what: str) -> None:
        with self._lock:
            self.answers[what] += 1

    def _checkouts(self, token: str) -> None:
        body = json.dumps({"package_id": "value"})
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        while not self.stopping.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", self.web_port, timeout=60)
            try:
                conn.request("POST", "/api/v1/billing/stripe/credit-checkout", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                self._count(f"checkout {response.status}")
            except OSError as exc:
                self._count(f"checkout {type(exc).__name__}")
            finally:
                conn.close()

    def _trickle(self) -> None:
        """A webhook delivery announcing 1000 bytes of body and sending one, again and again."""
        while not self.stopping.is_set():
            address = ("127.0.0.1", self.intake_port)
            with contextlib.suppress(OSError), socket.create_connection(address, timeout=60) as c:
                c.sendall(
                    b"POST /webhooks/stripe HTTP/1.1\r\nHost: billhook\r\nContent-Type: application/json\r\n"
                    b"Stripe-Signature: t=1,v1=00\r\nContent-Length: 1000\r\n\r\n{"
                )
                status = c.recv(64).split(b" ", 2)[1:2]
                self._count(f"trickle {status[0].decode() if status else 'closed'}")


def bench_intake_under_adversity(
    store: services.Store,
    env: dict[str, str],
    tmp: Path,
    deliveries: list[loadgen.Delivery],
    *,
    rate: int,
    warm_up: Callable[[int], None],
) -> dict:
    """Fixed-rate intake latency on the Procfile's intake with the adversity in flight, the intake
    warmed up (`warm_up(port)`) as the bench's other servers are before it."""
    hole = BlackHole()
    with store.session_factory.begin() as session:
        credentials.set_provider(session, "stripe", api_key="sk_test_bench")
    env = {**env, "STRIPE_API_BASE": hole.url, "BILLHOOK_JWT_SECRET": JWT_SECRET}
    web = services.start_gunicorn("web-adverse", "web.wsgi:app", env, tmp)
    intake = services.start_intake("intake-adverse", env, tmp)
    try:
        warm_up(intake.port)
        settings = Settings(database_url=store.url, redis_url="redis://unused", var_dir=tmp, jwt_secret=JWT_SECRET)
        with Adversity(web.port, intake.port, settings) as adversity:
            # Generous: on a loaded machine the first checkouts queue behind gunicorn's start-up.
            services.wait_until(
                lambda: len(hole.accepted) >= HUNG_CHECKOUTS,
                90,
                f"every checkout to hang on Stripe (answers so far: {dict(adversity.answers)})",
            )
            result = loadgen.fixed_rate(
                intake.port, "/webhooks/stripe", deliveries, rate=rate, max_seconds=len(deliveries) / rate + 1
            )
        return {
            "rate": rate,
            "p50_ms": result.percentile(50),
            "p99_ms": result.percentile(99),
            "requests": result.sent,
            "errors": result.errors,
            "statuses": dict(result.statuses),
            "adversity": dict(adversity.answers),
        }
    finally:
        intake.stop()
        web.stop()
        hole.close()
