"""bench/wrk.py: the closed-loop intake runs with wrk send the harness's signed deliveries, each
once and in order, and count what the server answered."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench import wrk

pytestmark = pytest.mark.skipif(wrk.available() is None, reason="wrk is not installed")


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as gunicorn
    disable_nagle_algorithm = True  # headers and body go out in two writes
    received: list[tuple[str, bytes, str]] = []
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            self.received.append((self.path, body, self.headers.get("Stripe-Signature", "")))
            refuse = len(self.received) % 10 == 0  # every tenth answered 400
        answer = b"{}"
        self.send_response(400 if refuse else 200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_args):
        pass


@pytest.fixture
def recorder():
    _Recorder.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_wrk_sends_each_delivery_in_order_and_counts_the_answers(recorder):
    deliveries = [(b'{"id": "evt_%d"}' % n, {"Content-Type": "application/json", "Stripe-Signature": f"t=1,v1={n}"})
                  for n in range(200_000)]  # fmt: skip

    result = wrk.closed_loop(recorder.server_port, "/webhooks/stripe", deliveries, connections=4, seconds=1)

    received = _Recorder.received
    assert result.sent > 100 and result.repeated == 0
    # Every answered request was a delivery, with its own signature, in the list's order (wrk stops
    # with some requests unanswered: the server may have seen a few more than wrk counted; and it
    # builds one request at start-up that it never sends: the list's first).
    assert result.sent <= len(received) <= result.sent + 4
    assert {path for path, _, _ in received} == {"/webhooks/stripe"}
    numbers = sorted(int(signature.split("v1=")[1]) for _, _, signature in received)
    assert numbers[0] in (0, 1) and numbers == list(range(numbers[0], numbers[0] + len(received)))
    assert all(body == b'{"id": "evt_%s"}' % signature.split("v1=")[1].encode() for _, body, signature in received)
    # Every tenth request to arrive was refused; the up to 4 in flight when wrk stopped were
    # answered but not counted, and one of them may have been the tenth: one off either way.
    assert abs(result.errors - result.sent // 10) <= 1
    assert result.errors == result.sent - result.ok
    assert result.rate == pytest.approx(result.ok / result.seconds)
    assert 0 < result.percentile(50) <= result.percentile(99)


def test_a_run_longer_than_the_list_repeats_it_and_says_so(recorder):
    deliveries = [(b'{"id": "evt_%d"}' % n, {"Stripe-Signature": f"t=1,v1={n}"}) for n in range(50)]

    result = wrk.closed_loop(recorder.server_port, "/webhooks/stripe", deliveries, connections=2, seconds=1)

    assert result.sent > 50
    assert result.repeated == result.sent - 50
    bodies = [body for _, body, _ in _Recorder.received]
    assert len(bodies) >= result.sent
    assert set(bodies) == {b'{"id": "evt_%d"}' % n for n in range(50)}
