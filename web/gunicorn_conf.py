"""Gunicorn's settings for the web tier (`gunicorn --config python:web.gunicorn_conf`), shared by the
Procfile and the tests that start the real server. Why these values: docs/operating.md.

Threaded workers: a request waiting on a provider (bounded in total by the provider clients) or a
client sending its body slowly holds one thread, not a whole process, so webhook intake keeps
threads free while checkouts hang. A sync worker held one process per slow request.
"""

from __future__ import annotations

import os
import time

from werkzeug.exceptions import RequestTimeout

from shared.config import WEB_THREADS_ENV

# Seconds a client has to send its whole body once its headers arrived: a trickling client holds
# its thread at most this long, then gets a JSON 408.
BODY_READ_SECONDS = float(os.environ.get("BILLHOOK_BODY_READ_SECONDS", "10"))

worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads per process: enough for a burst of slow calls (each checkout waits on a provider at most
# its client's total bound, 10 s) with most threads still free for intake.
# The intake's connection pool is sized from the same variable (Settings.web_threads).
threads = int(os.environ.get(WEB_THREADS_ENV, "16"))
# With gthread this bounds the main loop's heartbeat, not a request: requests are bounded by the
# provider clients' totals and BODY_READ_SECONDS, both well under it.
timeout = 30
graceful_timeout = 30
keepalive = 5


def pre_request(worker, req) -> None:
    """Bound the reading of this request's body in total (gunicorn bounds none of it): every recv
    gets what is left of BODY_READ_SECONDS, and a body not complete by then is a 408."""
    unreader = getattr(req, "unreader", None)
    sock = getattr(unreader, "sock", None)
    if sock is None:  # not a plain socket connection (HTTP/2): left to gunicorn
        return
    read_chunk = type(unreader).chunk.__get__(unreader)
    deadline = time.monotonic() + BODY_READ_SECONDS

    def chunk(size_hint=None):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RequestTimeout(f"the request body was not received within {BODY_READ_SECONDS:g} s")
        sock.settimeout(remaining)
        try:
            return read_chunk(size_hint)
        except TimeoutError as exc:
            raise RequestTimeout(f"the request body was not received within {BODY_READ_SECONDS:g} s") from exc
        finally:
            # Writing the response gets a bound of its own, not the remains of the read's.
            sock.settimeout(BODY_READ_SECONDS)

    unreader.chunk = chunk


def post_request(worker, req, environ, resp) -> None:
    """The connection's next request (keep-alive) reads its headers as gunicorn does: unbounded
    here, its own pre_request bounds its body."""
    unreader = getattr(req, "unreader", None)
    if unreader is not None:
        vars(unreader).pop("chunk", None)
