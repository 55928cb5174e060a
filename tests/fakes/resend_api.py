"""A stand-in for api.resend.com: `POST /emails` answers `{"id": ...}` the way Resend does,
replays the first response for a repeated `Idempotency-Key` (and refuses the key with a different
body, 409), and keeps the emails it actually accepted, so a test can count what a person got."""

from __future__ import annotations

import threading
import uuid

from tests.fakes.http import FakeServer, Recorded

VALIDATION_ERROR = {
    "statusCode": 422,
    "name": "validation_error",
    "message": "Invalid `to` field. The email address needs to follow the `email@example.com` format.",
}
RATE_LIMITED = {
    "statusCode": 429,
    "name": "rate_limit_exceeded",
    "message": "Too many requests. You can only make 2 requests per second.",
}
SERVER_ERROR = {"statusCode": 500, "name": "internal_server_error", "message": "An unexpected error occurred."}


class FakeResend(FakeServer):
    def __init__(self):
        super().__init__()
        self.emails: list[dict] = []  # accepted (delivered) emails, each with its id and key
        self._by_key: dict[str, tuple[dict, str]] = {}
        self._emails_lock = threading.Lock()
        self.route("POST", "/emails")(self._send)

    def _send(self, recorded: Recorded, _match) -> tuple[int, object]:
        body = recorded.json or {}
        for field in ("from", "to", "subject"):
            if not body.get(field):
                return 422, {
                    "statusCode": 422,
                    "name": "missing_required_field",
                    "message": f"Missing `{field}` field.",
                }
        key = recorded.header("Idempotency-Key")
        with self._emails_lock:
            if key and key in self._by_key:
                first_body, email_id = self._by_key[key]
                if first_body != body:
                    return 409, {
                        "statusCode": 409,
                        "name": "invalid_idempotent_request",
                        "message": "Same idempotency key used with a different request payload.",
                    }
                return 200, {"id": email_id}
            email_id = str(uuid.uuid4())
            if key:
                self._by_key[key] = (body, email_id)
            self.emails.append({"id": email_id, "idempotency_key": key, **body})
        return 200, {"id": email_id}

    def reset(self) -> None:
        """Forget every request and email, so one server can serve a module's tests."""
        with self._lock, self._emails_lock:
            self.requests.clear()
            self._overrides.clear()
            self.emails.clear()
            self._by_key.clear()

    def emails_to(self, recipient: str) -> list[dict]:
        return [e for e in self.emails if recipient in e.get("to", [])]
