"""PayPal's webhook verification, per the provider's config: `postback` (PayPal's
verify-webhook-signature API) or `offline` (SHA256withRSA against PayPal's pinned cert host);
`development` (billhook's own certificate) only with BILLHOOK_DEV_MODE=1."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from flask import Flask, current_app, request

from shared.credentials import active_provider
from shared.errors import NotConfigured
from shared.logs import log_line
from shared.paypal import development
from shared.paypal import webhooks as verification
from shared.paypal.client import PayPalGateway
from web.context import Billhook, billhook
from web.errors import ApiError
from web.metrics import note_request

log = logging.getLogger("billhook.web")

CERTS_EXTENSION = "billhook.paypal_certs"


def certificate_cache(app: Flask) -> verification.CertificateCache:
    """The app's PayPal certificate cache (tests swap in one with a local fetcher)."""
    return app.extensions.setdefault(CERTS_EXTENSION, verification.CertificateCache())


def verify(raw: bytes) -> None:
    method = check(billhook(), raw, request.headers, certificate_cache(current_app))
    if method == verification.DEVELOPMENT:
        note_request(verification="development")  # named on the request's log line


def check(ext: Billhook, raw: bytes, headers: Mapping[str, str], certs: verification.CertificateCache) -> str:
    """The check itself, for both intakes (the event loop's runs it in a thread: it reads the
    store and may call PayPal). Returns the verification method that passed; a refusal is an
    ApiError."""
    with ext.session_factory() as session:
        provider = active_provider(session, "paypal")
        if provider is not None:
            session.expunge(provider)
    if provider is None or not provider.webhook_id:
        # Not the sender's fault: 503 makes PayPal retry once a webhook id is configured.
        raise ApiError(503, "not_configured", "no PayPal webhook id is configured")
    config = provider.config or {}
    method = config.get("verification", verification.POSTBACK)
    try:
        tolerance = int(config.get("tolerance_seconds", ext.settings.webhook_tolerance_seconds))
    except (TypeError, ValueError) as exc:
        raise ApiError(503, "not_configured", "the PayPal tolerance_seconds setting is not a number") from exc
    now = datetime.now(UTC)
    try:
        if method == verification.OFFLINE:
            verification.verify_offline(
                raw,
                headers,
                webhook_id=provider.webhook_id,
                certs=certs,
                now=now,
                tolerance_seconds=tolerance,
            )
        elif method == verification.POSTBACK:
            verification.verify_postback(
                raw,
                headers,
                webhook_id=provider.webhook_id,
                client=PayPalGateway.from_provider(provider, ext.settings),
                now=now,
                tolerance_seconds=tolerance,
            )
        elif method == verification.DEVELOPMENT and ext.settings.dev_mode:
            verification.verify_development(
                raw,
                headers,
                webhook_id=provider.webhook_id,
                cert_pem=development.certificate_pem(ext.settings.var_dir),
                now=now,
                tolerance_seconds=tolerance,
            )
        elif method == verification.DEVELOPMENT:
            raise ApiError(503, "not_configured", "PayPal development verification needs BILLHOOK_DEV_MODE=1")
        else:
            raise ApiError(503, "not_configured", "the PayPal verification method is not postback or offline")
        return method
    except verification.SignatureError as exc:
        log_line(log, "webhook refused", level=logging.WARNING, provider="paypal", reason=exc.code)
        raise ApiError(400, exc.code, exc.message) from exc
    except NotConfigured as exc:
        raise ApiError(503, "not_configured", "PayPal client credentials are not configured") from exc
    except verification.VerifierUnavailable as exc:
        log_line(log, "webhook verifier unavailable", level=logging.WARNING, provider="paypal", error=str(exc))
        raise ApiError(503, "verifier_unavailable", "the signature could not be checked now; retry later") from exc
