"""One HTTP request to an ASGI app in this process, with no server: what `python -m bench.cpu`
measures billhook's event-loop intake with, and what its tests drive it with
(tests/web/webhooks/test_asgi.py)."""

from __future__ import annotations

import asyncio
import json


class Answer:
    def __init__(self, status: int, headers: dict[bytes, bytes], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> dict:
        return json.loads(self.body)


async def request(
    app, path: str, chunks: list[bytes], headers: dict[str, str], *, method: str = "POST", then: str = "end"
) -> Answer | None:
    """The body in `chunks` (one `http.request` message each), then `then`: "end" (the last chunk
    is the body's last), "disconnect" (the client goes) or "hang" (nothing more ever comes). None
    when the app sent nothing back."""
    sent: list[dict] = []
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1 or then != "end"}
        for i, chunk in enumerate(chunks)
    ]

    async def receive():
        if messages:
            return messages.pop(0)
        if then == "disconnect":
            return {"type": "http.disconnect"}
        await asyncio.Event().wait()  # a client that never sends the rest

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    await app(scope, receive, send)
    if not sent:
        return None
    start, body = sent
    return Answer(start["status"], dict(start["headers"]), body["body"])
