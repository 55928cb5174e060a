"""PayPal's OAuth2 client-credentials tokens, cached across client instances until shortly before
they expire (shared/paypal/client.py asks here first)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# Refresh a token this long before PayPal says it expires (never less than half its life).
TOKEN_REFRESH_MARGIN_SECONDS = 60.0


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at: float


class TokenCache:
    """OAuth tokens shared by every client in the process, keyed by base URL and credentials."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}

    @staticmethod
    def key(base_url: str, client_id: str, client_secret: str) -> str:
        digest = hashlib.sha256(f"{base_url}\0{client_id}\0{client_secret}".encode()).hexdigest()
        return digest

    def get(self, key: str) -> str | None:
        token = self._tokens.get(key)
        if token is None or self.clock() >= token.refresh_at:
            return None
        return token.value

    def put(self, key: str, value: str, expires_in: float) -> None:
        margin = min(TOKEN_REFRESH_MARGIN_SECONDS, expires_in / 2)
        with self._lock:
            self._tokens[key] = _Token(value, self.clock() + expires_in - margin)

    def drop(self, key: str) -> None:
        with self._lock:
            self._tokens.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


TOKENS = TokenCache()
