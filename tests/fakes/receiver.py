"""A local HTTP server standing in for the main app's webhook endpoint: it verifies every
delivery with the `standardwebhooks` package (a verifier no one here wrote) against the secrets
it is told, counts deliveries per `webhook-id`, and can be told to answer 500 for a while."""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.fakes.http import FakeServer, Recorded

PATH = "/hooks/billhook"


@dataclass
class Receiver:
    secrets: list[str] = field(default_factory=list)
    server: FakeServer = field(default_factory=FakeServer)
    # Each accepted delivery's body, by webhook-id; how often each id was answered 2xx.
    events: dict[str, dict] = field(default_factory=dict)
    accepted: Counter = field(default_factory=Counter)
    refused_signatures: int = 0
    failing: int = 0  # answer 500 to this many more requests
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return self.server.url + PATH

    def start(self) -> Receiver:
        self.server.route("POST", PATH)(self._receive)
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def fail_next(self, count: int) -> None:
        with self._lock:
            self.failing = count

    def verified_by(self, secret: str, request: Recorded) -> bool:
        try:
            Webhook(secret).verify(request.body, _headers(request))
        except WebhookVerificationError:
            return False
        return True

    def _receive(self, request: Recorded, _match) -> tuple[int, object]:
        with self._lock:
            if self.failing > 0:
                self.failing -= 1
                return 500, {"error": "down for a while"}
            if not self.secrets or not all(self.verified_by(s, request) for s in self.secrets):
                self.refused_signatures += 1
                return 400, {"error": "bad signature"}
            webhook_id = request.header("webhook-id")
            self.accepted[webhook_id] += 1
            self.events[webhook_id] = json.loads(request.body)
        return 200, {"ok": True}

    def by_account(self, account_id: str) -> list[dict]:
        with self._lock:
            found = [e for e in self.events.values() if e["account_id"] == account_id]
        return sorted(found, key=lambda e: e["sequence"])

    def types(self, account_id: str) -> list[str]:
        return [e["type"] for e in self.by_account(account_id)]


def _headers(request: Recorded) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}
