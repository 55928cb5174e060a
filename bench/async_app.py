"""The intake benchmark's async reference: the lean reference's durable intake (bench/lean_app.py)
in the other shape issue #19 names, an event loop instead of a thread a request, so the run
measures what that shape would give billhook, beside what billhook's shape gives.

A raw ASGI app (no framework) under uvicorn with uvloop and httptools, as many processes as the
Procfile's gunicorn has workers. Per webhook, as the lean reference: Stripe's signature check on
the raw bytes, `json.loads`, one `INSERT ... ON CONFLICT DO NOTHING RETURNING id` (autocommit, so
committed before the answer) on one of a few async psycopg connections of the process, the new
id handed to a publisher thread that LPUSHes what has gathered, one log line. A database error
answers 503. PostgreSQL only (DATABASE_URL); the queue is BILLHOOK_QUEUE on REDIS_URL.

On uvicorn's plain asyncio loop and h11 parser the same app ran at a third of this (0.14-0.15 of
the bare endpoint against 0.45-0.60, docs/benchmarks.md): the loop is most of the difference.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from datetime import UTC, datetime

import psycopg
import stripe

# The lean reference's statement, secret, publisher and log set-up: the two differ in shape only.
from bench.lean_app import DSN, INSERT, SECRET, publish_forever, published_ids

log = logging.getLogger("bench.async")

# Connections a process keeps, requests taking one in turn: the 16 connections of the bench's
# closed loop over two processes keep at most 8 requests in flight in each.
CONNECTIONS = 8
_JSON_HEADERS = [(b"content-type", b"application/json")]
_BAD_REQUEST = b'{"error":{"code":"bad_request"}}'
_UNAVAILABLE = b'{"error":{"code":"unavailable"}}'


class _Connections:
    """The process's connections, handed out one request at a time."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._free: asyncio.Queue[psycopg.AsyncConnection] = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self._count):
            self._free.put_nowait(await psycopg.AsyncConnection.connect(DSN, autocommit=True))

    async def insert(self, params: tuple) -> int | None:
        """The new row's id, or None for a duplicate."""
        connection = await self._free.get()
        try:
            if connection.broken:  # the server dropped it: a fresh one, or a 503 and the next request tries
                connection = await psycopg.AsyncConnection.connect(DSN, autocommit=True)
            async with connection.cursor() as cursor:
                await cursor.execute(INSERT, params)
                row = await cursor.fetchone()
                return None if row is None else row[0]
        finally:
            self._free.put_nowait(connection)


def make_app(store):
    """The ASGI app on `store`: `await store.open()` at start-up, `await store.insert(params)` the
    new row's id or None for a duplicate, raising psycopg.Error when nothing was stored."""

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            if scope["method"] == "POST" and scope["path"] == "/webhooks/stripe":
                await _webhook(scope, receive, send)
            else:
                await _answer(send, 404, b'{"error":{"code":"not_found"}}')

    async def _lifespan(receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await store.open()
                threading.Thread(target=publish_forever, daemon=True).start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _webhook(scope, receive, send) -> None:
        raw = await _body(receive)
        header = next((value.decode("latin-1") for key, value in scope["headers"] if key == b"stripe-signature"), "")
        try:
            stripe.WebhookSignature.verify_header(raw, header, SECRET, 300)
            event = json.loads(raw)
        except (stripe.SignatureVerificationError, ValueError):
            await _answer(send, 400, _BAD_REQUEST)
            return
        now = datetime.now(UTC)
        created = datetime.fromtimestamp(event["created"], UTC) if event.get("created") else None
        try:
            pk = await store.insert((event["id"], event["type"], raw.decode(), created, now, now))
        except psycopg.Error:
            await _answer(send, 503, _UNAVAILABLE)  # not stored: the provider retries
            return
        if pk is not None:
            published_ids.put(pk)
        log.info("webhook %s %s", event["id"], "accepted" if pk is not None else "duplicate")
        duplicate = b"false" if pk is not None else b"true"
        await _answer(send, 200, b'{"received":true,"duplicate":%s,"status":"received"}' % duplicate)

    return app


app = make_app(_Connections(CONNECTIONS))


async def _body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})
