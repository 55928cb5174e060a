"""Email templates: Jinja2 HTML and plain text, one base layout per format."""

from __future__ import annotations

# Templates the webhook handlers send.
TRANSACTIONAL = (
    "payment_confirmation",
    "payment_approved",
    "payment_rejected",
    "payment_failed",
    "subscription_activated",
    "subscription_renewal",
    "low_credits",
    "refund_notification",
)
# Templates the main app asks for through the internal API.
ACCOUNT = ("welcome", "password_reset", "email_verification")
TEMPLATES = ACCOUNT + TRANSACTIONAL
