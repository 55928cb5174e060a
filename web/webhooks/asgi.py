"""Webhook intake on an event loop: `POST /webhooks/stripe` and `POST /webhooks/paypal` as a raw
ASGI app, served by uvicorn on uvloop and httptools (web/webhooks/server.py, the Procfile's
`intake:` line). The same intake as the Flask app's (web/webhooks/__init__.py), in the shape
that measured fastest (docs/benchmarks.md): one process serves many deliveries at once without a
thread each, and nothing of Flask's request set-up runs.

What a delivery goes through is the Flask intake's, piece for piece: the body read whole within
BODY_READ_SECONDS (else a 408) and at most the webhook limit however it is sent (else a 413); the
signature on the raw bytes (stripe.check, with the secrets' cache refreshed in a thread when it is
stale; PayPal's whole check in threads of its own, since it reads the store and may call PayPal);
the strict parser (events.py); the INSERT committed before the 2xx (async_store.py: deliveries
arriving together committed together, a dropped connection retried once, a store that is down a
503); the id handed to the publisher thread, whose breaker keeps a dead broker off the request;
the request's one log line and the webhook metrics; errors as JSON. Anything else is the Flask
app's (the APIs, the ops page, /metrics): a 404 here.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.exc import DBAPIError

from shared.config import Settings
from shared.logs import configure_logging, log_line
from shared.paypal import webhooks as paypal_verification
from web.context import Billhook
from web.errors import ApiError, store_unavailable
from web.gunicorn_conf import BODY_READ_SECONDS
from web.metrics import count_webhook
from web.webhooks import answer, hand_over, outcome, paypal, stored_fields, stripe
from web.webhooks.async_store import AsyncIntakeStore, StoreError, StoreUnavailable
from web.webhooks.events import read_delivery
from worker.publisher import EXIT_FLUSH_SECONDS, Publisher, publishing_celery

log = logging.getLogger("billhook.web")
request_log = logging.getLogger("billhook.web.requests")

# The paths served here, their provider and the name the request line gives them (the Flask
# endpoints' names, so that both intakes' lines read alike).
ROUTES = {
    "/webhooks/stripe": ("stripe", "webhooks.stripe_webhook"),
    "/webhooks/paypal": ("paypal", "webhooks.paypal_webhook"),
}
# Database connections a process keeps. The deliveries that come in while they are busy, or in
# the same turn of the loop, are stored together by the next one free (async_store.py), so a few
# are enough: 2 a process served as many webhooks as 8 in paired rounds, with a shorter tail and a
# quarter of the connections (docs/benchmarks.md). The Procfile's two processes keep 4.
CONNECTIONS = 2
# PayPal's checks at once a process: a check waits on PayPal at most its client's total bound, so
# a slow PayPal holds these threads and no other part of the intake.
PAYPAL_THREADS = 8

_JSON = (b"content-type", b"application/json")
_CLOSE = (b"connection", b"close")


class _Answer:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: dict, *headers: tuple[bytes, bytes]):
        self.status = status
        self.body = json.dumps(body, separators=(",", ":")).encode()
        self.headers = [_JSON, *headers]


def _error(status: int, code: str, message: str, *headers: tuple[bytes, bytes]) -> _Answer:
    return _Answer(status, {"error": {"code": code, "message": message}}, *headers)


class _Disconnected(Exception):
    """The client went away before its body was in: nothing to answer, nothing stored."""


class IntakeApp:
    def __init__(self, ext: Billhook, *, publisher: Publisher | None = None, connections: int = CONNECTIONS):
        self.ext = ext
        self.settings = ext.settings
        self.store = AsyncIntakeStore(ext, connections=connections)
        self.certs = paypal_verification.CertificateCache()
        self._publisher = publisher
        self._secrets_read: asyncio.Future[list[str]] | None = None
        self._paypal_threads = ThreadPoolExecutor(PAYPAL_THREADS, thread_name_prefix="billhook-paypal-check")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def close(self) -> None:
        """Close the connections and publish what is still handed over (a process that is done)."""
        await self.store.close()
        self._paypal_threads.shutdown(wait=False, cancel_futures=True)
        if self._publisher is not None:
            await asyncio.to_thread(self._publisher.flush, EXIT_FLUSH_SECONDS)
        self.ext.dispose()

    async def _http(self, scope, receive, send) -> None:
        started = time.perf_counter()
        path, method = scope["path"], scope["method"]
        route = ROUTES.get(path)
        fields: dict = {}
        if route is None:
            reply = _error(404, "not_found", "not served here: webhook intake only")
        elif method != "POST":
            reply = _error(405, "method_not_allowed", "the method is not allowed for this URL", (b"allow", b"POST"))
        else:
            try:
                reply = await self._webhook(route[0], scope, receive, fields)
            except _Disconnected:
                return
            except ApiError as exc:
                reply = _error(exc.status, exc.code, exc.message)
            except Exception as exc:
                reply = _unexpected(exc)
        await send({"type": "http.response.start", "status": reply.status, "headers": reply.headers})
        await send({"type": "http.response.body", "body": reply.body})
        seconds = time.perf_counter() - started
        if route is not None and method == "POST":
            count_webhook(route[0], fields.get("type"), fields.get("outcome"), reply.status, seconds)
        log_line(
            request_log,
            "request",
            method=method,
            path=path,
            endpoint=route[1] if route else None,
            status=reply.status,
            duration_ms=round(seconds * 1000, 2),
            **fields,
        )

    async def _webhook(self, provider: str, scope, receive, fields: dict) -> _Answer:
        headers = _headers(scope)
        try:
            raw = await self._body(receive, headers)
        except TimeoutError:
            return _error(
                408, "request_timeout", f"the request body was not received within {BODY_READ_SECONDS:g} s", _CLOSE
            )
        except _TooLarge:
            return _error(413, "payload_too_large", "the body is over the webhook size limit", _CLOSE)
        if provider == "stripe":
            header = headers.get("stripe-signature")
            secrets = await self._stripe_secrets() if header else []  # no store read for a 400
            stripe.check(raw, header, secrets, self.settings)
        else:
            loop = asyncio.get_running_loop()
            passed = await loop.run_in_executor(self._paypal_threads, paypal.check, self.ext, raw, headers, self.certs)
            if passed == paypal_verification.DEVELOPMENT:
                fields["verification"] = "development"
        delivery = read_delivery(provider, raw)
        fields.update(provider=provider, event=delivery.event_id, type=delivery.type)
        stored = await self.store.store_event(**stored_fields(raw, delivery))
        hand_over(self.ext, stored, delivery)
        fields["outcome"] = outcome(stored)
        return _Answer(200, answer(stored))

    async def _body(self, receive, headers: dict[str, str]) -> bytes:
        """The whole body, within BODY_READ_SECONDS in total and at most the webhook limit, with
        or without a Content-Length (a chunked body is counted as it comes)."""
        limit = self.settings.max_webhook_bytes
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise _TooLarge
        chunks: list[bytes] = []
        size = 0
        async with asyncio.timeout(BODY_READ_SECONDS):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _Disconnected
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise _TooLarge
                chunks.append(chunk)
                if not message.get("more_body"):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _stripe_secrets(self) -> list[str]:
        """The cached secrets; when they are stale, one read of the store in a thread, which the
        deliveries arriving meanwhile wait on together (not one read each)."""
        cache = self.ext.webhook_secrets
        secrets = cache.cached("stripe")
        if secrets is not None:
            return secrets
        if self._secrets_read is None or self._secrets_read.done():
            self._secrets_read = asyncio.ensure_future(asyncio.to_thread(cache.secrets_for, "stripe"))
        return await asyncio.shield(self._secrets_read)  # one delivery cancelled does not cancel the read


class _TooLarge(Exception):
    pass


def _headers(scope) -> dict[str, str]:
    """The request's headers by lower-cased name; a repeated header keeps its first value."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return headers


def _unexpected(exc: Exception) -> _Answer:
    """As web/errors.py answers them: the store down is a 503 (the provider retries), a bug a 500.
    Logged by type: a database error's text can quote what was sent."""
    if isinstance(exc, StoreUnavailable) or store_unavailable(exc):
        log.error("database unavailable: %s", exc if isinstance(exc, StoreUnavailable) else _name(exc))
        return _error(503, "store_unavailable", "the store is unavailable; retry later")
    if isinstance(exc, StoreError | DBAPIError):
        log.error("database error: %s", exc if isinstance(exc, StoreError) else _name(exc))
    else:
        log.exception("unhandled error")
    return _error(500, "internal_error", "internal error")


def _name(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    return type(orig if orig is not None else exc).__name__


def create_app(settings: Settings | None = None, *, enqueue=None, connections: int = CONNECTIONS) -> IntakeApp:
    """The intake app; its ids go to a publisher thread of the process unless `enqueue` is given."""
    settings = settings or Settings.from_env()
    publisher = None
    if enqueue is None:
        publisher = Publisher(lambda: publishing_celery(settings))
        enqueue = publisher.publish_event
    # Intake queues no emails or deliveries: the Flask app's other paths do.
    ext = Billhook(settings, enqueue, _no_emails, None)
    return IntakeApp(ext, publisher=publisher, connections=connections)


def _no_emails(_outbox_id: int) -> None:
    return None


def serving_app() -> IntakeApp:
    """uvicorn's factory (web/webhooks/server.py), in each worker process."""
    configure_logging()
    app = create_app()
    gc.freeze()  # as web/wsgi.py: what lives as long as the process, out of the collector's walk
    return app
