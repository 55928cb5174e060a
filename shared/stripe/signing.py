"""Producing Stripe-style signatures, for `billhook events send` and tests. (Verification uses the
stripe library itself, in web/.)"""

from __future__ import annotations

import hashlib
import hmac
import time


def stripe_signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    signature = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"
