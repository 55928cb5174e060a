"""The chaos run's stand-in for the main app: a webhook receiver on 127.0.0.1 that verifies every
delivery with the `standardwebhooks` package, answers 500 to a share of them (so deliveries are
retried under the run's worker kill and Redis restart), and the checks at the end: every outgoing
event delivered, none missing at the receiver, and each account's sequence without gaps."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.models import OutgoingDelivery, OutgoingEvent
from shared.models.outgoing import DeliveryStatus
from shared.outgoing import delivery, endpoints

PATH = "/billhook"


class Receiver:
    def __init__(self, *, failure_share: float, seed: int):
        self.failure_share = failure_share
        self.random = random.Random(seed)
        self.verifier: Webhook | None = None
        self.lock = threading.Lock()
        self.accepted: Counter = Counter()
        self.events: dict[str, dict] = {}
        self.refused = 0
        self.failed_on_purpose = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver.receive(body, {k.lower(): v for k, v in self.headers.items()})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True, name="chaos-receiver").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{PATH}"

    def receive(self, body: bytes, headers: dict[str, str]) -> int:
        with self.lock:
            if self.random.random() < self.failure_share:
                self.failed_on_purpose += 1
                return 500
        try:
            event = self.verifier.verify(body, headers)
        except WebhookVerificationError:
            with self.lock:
                self.refused += 1
            return 400
        with self.lock:
            self.accepted[headers["webhook-id"]] += 1
            self.events[headers["webhook-id"]] = event
        return 200

    def register(self, session_factory) -> None:
        with session_factory.begin() as session:
            created = endpoints.add_endpoint(session, self.url, allow_private=True, at=datetime.now(UTC))
        self.verifier = Webhook(created.secret)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def sweep(store, enqueue: Callable[[int], None], *, grace_seconds: int, limit: int) -> int:
    return len(
        delivery.sweep(store.session_factory, enqueue, now=datetime.now(UTC), grace_seconds=grace_seconds, limit=limit)
    )


def wait_delivered(store, timeout: float, say) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with store.session_factory() as session:
            pending = session.scalar(
                select(func.count())
                .select_from(OutgoingDelivery)
                .where(OutgoingDelivery.status == DeliveryStatus.PENDING)
            )
        if not pending:
            return
        time.sleep(0.5)
    say(f"[chaos] gave up waiting for outgoing deliveries after {timeout:.0f} s")


def check(store, receiver: Receiver) -> dict[str, list[str]]:
    """Violations by check: deliveries not delivered, events the receiver never got, sequence gaps
    (in the store, and as the receiver saw them)."""
    with store.session_factory() as session:
        undelivered = session.execute(
            select(OutgoingDelivery.id, OutgoingDelivery.status, OutgoingDelivery.last_error).where(
                OutgoingDelivery.status != DeliveryStatus.DELIVERED
            )
        ).all()
        events = session.execute(select(OutgoingEvent.id, OutgoingEvent.account_id, OutgoingEvent.sequence)).all()
    missing = [event_id for event_id, _, _ in events if event_id not in receiver.events]
    stored: dict[str, list[int]] = {}
    for _, account_id, sequence in events:
        stored.setdefault(account_id, []).append(sequence)
    received: dict[str, list[int]] = {}
    for event in receiver.events.values():
        received.setdefault(event["account_id"], []).append(event["sequence"])
    gaps = [
        f"{where} {account}: {sorted(seqs)[:8]}…"
        for where, by_account in (("store", stored), ("receiver", received))
        for account, seqs in by_account.items()
        if sorted(seqs) != list(range(1, len(seqs) + 1))
    ]
    return {
        "undelivered": [f"delivery {i} {s}: {e}" for i, s, e in undelivered],
        "missing": [f"{event_id} never received" for event_id in missing],
        "gaps": gaps,
        "refused": [f"{receiver.refused} deliveries failed verification"] if receiver.refused else [],
    }


def summary(receiver: Receiver, events: int) -> str:
    redelivered = sum(n - 1 for n in receiver.accepted.values())
    return (
        f"outgoing: {events} events, {len(receiver.events)} received and verified; {receiver.failed_on_purpose} "
        f"answered 500 on purpose; {redelivered} received again after a 2xx (at least once, deduped on webhook-id)"
    )


def stored_events(store) -> int:
    with store.session_factory() as session:
        return session.scalar(select(func.count()).select_from(OutgoingEvent))


def rows(outgoing: dict[str, list[str]]) -> list[tuple[str, list[str]]]:
    """The report table's rows for the outgoing checks: (check, violations)."""
    return [
        ("outgoing deliveries not delivered", outgoing.get("undelivered", [])),
        ("outgoing events missing at the receiver", outgoing.get("missing", [])),
        ("outgoing sequence gaps per account", outgoing.get("gaps", [])),
        ("outgoing signatures refused", outgoing.get("refused", [])),
    ]
