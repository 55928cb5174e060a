"""A threaded HTTP server on 127.0.0.1 that answers from registered routes and records every
request it receives, for standing in for a provider's API in tests."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    client_port: int | None = None  # the same port twice: one kept-alive connection

    @property
    def form(self) -> dict[str, str]:
        """A form-encoded body, flat: `line_items[0][price]` stays one key."""
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


Reply = tuple[int, object]  # (status, JSON body)
Route = Callable[[Recorded, re.Match], Reply]


@dataclass
class _Override:
    path_prefix: str
    status: int | None = None
    body: object = None
    delay: float = 0.0


@dataclass
class FakeServer:
    routes: list[tuple[str, re.Pattern, Route]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    _overrides: list[_Override] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _connections: set = field(default_factory=set)

    def route(self, method: str, pattern: str) -> Callable[[Route], Route]:
        def register(fn: Route) -> Route:
            self.routes.append((method, re.compile(f"^{pattern}$"), fn))
            return fn

        return register

    def fail_next(self, path_prefix: str, status: int, body: object) -> None:
        """The next request under `path_prefix` gets this answer instead of the route's."""
        self._overrides.append(_Override(path_prefix, status, body))

    def stall_next(self, path_prefix: str, seconds: float) -> None:
        """The next request under `path_prefix` is answered only after `seconds` (a timeout)."""
        self._overrides.append(_Override(path_prefix, delay=seconds))

    def calls(self, method: str | None = None, path_prefix: str = "") -> list[Recorded]:
        return [r for r in self.requests if (method is None or r.method == method) and r.path.startswith(path_prefix)]

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keeps connections open between requests, as the real APIs do

            def setup(self):
                super().setup()
                with fake._lock:
                    fake._connections.add(self.connection)

            def finish(self):
                super().finish()
                with fake._lock:
                    fake._connections.discard(self.connection)

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                recorded = Recorded(
                    method=self.command,
                    path=parts.path,
                    query=dict(parse_qsl(parts.query)),
                    headers=dict(self.headers.items()),
                    body=self.rfile.read(length) if length else b"",
                    client_port=self.client_address[1],
                )
                with fake._lock:
                    fake.requests.append(recorded)
                    override = next((o for o in fake._overrides if recorded.path.startswith(o.path_prefix)), None)
                    if override is not None:
                        fake._overrides.remove(override)
                status, body = fake._answer(recorded, override)
                payload = b"" if status == 204 else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_GET = do_POST = do_DELETE = do_PATCH = _handle

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening and drop kept-alive connections, so no client pool can reach this
        server's routes after a test (a later server may get the same port)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):  # already gone
                connection.shutdown(socket.SHUT_RDWR)

    def _answer(self, recorded: Recorded, override: _Override | None) -> Reply:
        if override is not None and override.delay:
            time.sleep(override.delay)
        if override is not None and override.status is not None:
            return override.status, override.body
        for method, pattern, fn in self.routes:
            match = pattern.match(recorded.path)
            if method == recorded.method and match:
                return fn(recorded, match)
        return 404, {"error": {"message": f"no route for {recorded.method} {recorded.path}"}}
