"""Verifying a PayPal webhook delivery, two ways (chosen per provider, `config["verification"]`):

- ``postback``: ask PayPal (`POST /v1/notifications/verify-webhook-signature`) with the webhook id
  billhook registered; one API call per delivery.
- ``offline``: check the signature locally. PayPal signs
  ``<transmission_id>|<transmission_time>|<webhook_id>|<crc32 of the raw body, decimal>`` with
  SHA256withRSA; the certificate is at PAYPAL-CERT-URL, which is fetched only from PayPal's own
  hosts over https (an allow-list checked before any request, as warehouse pins SNS's cert host)
  and cached.

A third, ``development``, checks the signature against billhook's own development certificate
(shared/paypal/development.py); web accepts it only with BILLHOOK_DEV_MODE=1.

All refuse a transmission time outside the tolerance. Failures raise `SignatureError` with a
code and a message safe to return to the sender.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from shared.errors import ProviderError
from shared.paypal import development
from shared.paypal.client import PayPalGateway

POSTBACK = "postback"
OFFLINE = "offline"
DEVELOPMENT = "development"
VERIFIERS = (POSTBACK, OFFLINE)
AUTH_ALGO = "SHA256withRSA"
CERT_PATH_PREFIX = "/v1/notifications/certs/"
CERT_CACHE_SECONDS = 24 * 3600.0
MAX_CERT_BYTES = 64 * 1024

H_ALGO = "PAYPAL-AUTH-ALGO"
H_CERT_URL = "PAYPAL-CERT-URL"
H_TRANSMISSION_ID = "PAYPAL-TRANSMISSION-ID"
H_SIG = "PAYPAL-TRANSMISSION-SIG"
H_TIME = "PAYPAL-TRANSMISSION-TIME"
REQUIRED_HEADERS = (H_ALGO, H_CERT_URL, H_TRANSMISSION_ID, H_SIG, H_TIME)


class SignatureError(Exception):
    """The delivery is refused. `code` and `message` are safe to answer with."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class VerifierUnavailable(Exception):
    """billhook could not check the delivery (PayPal or its cert host failed): not the sender's
    fault, so the intake answers 503 and PayPal retries."""


def transmission_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The PAYPAL-* headers, upper-cased; SignatureError naming the missing ones."""
    upper = {k.upper(): v for k, v in headers.items() if k.upper().startswith("PAYPAL-")}
    missing = [h for h in REQUIRED_HEADERS if not upper.get(h)]
    if missing:
        raise SignatureError("missing_signature", f"missing PayPal signature headers: {', '.join(missing)}")
    if upper[H_ALGO] != AUTH_ALGO:
        raise SignatureError("unsupported_algorithm", f"PAYPAL-AUTH-ALGO must be {AUTH_ALGO}")
    return upper


def check_transmission_time(value: str, *, now: datetime, tolerance_seconds: int) -> datetime:
    try:
        sent = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise SignatureError("invalid_transmission_time", "PAYPAL-TRANSMISSION-TIME is not an ISO 8601 time") from exc
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    if abs((now - sent).total_seconds()) > tolerance_seconds:
        raise SignatureError("stale_timestamp", "the transmission time is outside the tolerance")
    return sent


# -- the certificate host allow-list -------------------------------------------------------------


def is_paypal_cert_url(url: str) -> bool:
    """https on port 443 of paypal.com or a subdomain, no credentials, under PayPal's cert path.

    Checked before any request is made: a forged delivery must not make billhook fetch (or trust a
    key from) anywhere else."""
    if not isinstance(url, str) or len(url) > 2000 or any(c in url for c in "\\@ \t\r\n"):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    host = (parts.hostname or "").rstrip(".")
    return (
        parts.scheme == "https"
        and port in (None, 443)
        and parts.username is None
        and parts.password is None
        and (host == "paypal.com" or host.endswith(".paypal.com"))
        and parts.path.startswith(CERT_PATH_PREFIX)
        and ".." not in parts.path
    )


def fetch_certificate_pem(url: str, timeout: float = 10.0) -> bytes:
    """The default fetcher: https with TLS verification, no redirects (a redirect could leave the
    allow-list), a size cap."""
    try:
        response = requests.get(url, timeout=(5.0, timeout), allow_redirects=False, stream=True)
        body = response.raw.read(MAX_CERT_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        raise VerifierUnavailable("PayPal's certificate host could not be reached") from exc
    if response.status_code != 200 or len(body) > MAX_CERT_BYTES:
        raise VerifierUnavailable(f"PayPal's certificate host answered HTTP {response.status_code}")
    return body


class CertificateCache:
    """Certificates by URL, fetched through `fetch` only for allow-listed URLs, kept `ttl` seconds."""

    def __init__(
        self,
        fetch: Callable[[str], bytes] = fetch_certificate_pem,
        *,
        ttl: float = CERT_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        allowed: Callable[[str], bool] = is_paypal_cert_url,
    ):
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._allowed = allowed
        self._lock = threading.Lock()
        self._certs: dict[str, tuple[float, x509.Certificate]] = {}

    def get(self, url: str, *, now: datetime) -> x509.Certificate:
        if not self._allowed(url):
            raise SignatureError("untrusted_cert_url", "PAYPAL-CERT-URL is not a PayPal certificate URL")
        hit = self._certs.get(url)
        if hit is not None and self._clock() - hit[0] < self._ttl:
            cert = hit[1]
        else:
            pem = self._fetch(url)
            try:
                cert = x509.load_pem_x509_certificate(pem)
            except ValueError as exc:
                raise VerifierUnavailable("PayPal's certificate could not be read") from exc
            with self._lock:
                self._certs[url] = (self._clock(), cert)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise SignatureError("invalid_signature", "PayPal's signing certificate is not valid now")
        return cert

    def clear(self) -> None:
        with self._lock:
            self._certs.clear()


# -- verifiers --------------------------------------------------------------------------------


def signed_message(raw: bytes, *, transmission_id: str, transmission_time: str, webhook_id: str) -> bytes:
    crc = zlib.crc32(raw) & 0xFFFFFFFF
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{crc}".encode()


def verify_offline(
    raw: bytes,
    headers: Mapping[str, str],
    *,
    webhook_id: str,
    certs: CertificateCache,
    now: datetime,
    tolerance_seconds: int,
) -> None:
    h = transmission_headers(headers)
    check_transmission_time(h[H_TIME], now=now, tolerance_seconds=tolerance_seconds)
    try:
        signature = base64.b64decode(h[H_SIG], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("invalid_signature", "PAYPAL-TRANSMISSION-SIG is not base64") from exc
    cert = certs.get(h[H_CERT_URL], now=now)
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError("invalid_signature", "PayPal's certificate does not hold an RSA key")
    message = signed_message(
        raw, transmission_id=h[H_TRANSMISSION_ID], transmission_time=h[H_TIME], webhook_id=webhook_id
    )
    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise SignatureError("invalid_signature", "the signature does not match the body") from exc


def verify_development(
    raw: bytes, headers: Mapping[str, str], *, webhook_id: str, cert_pem: bytes, now: datetime, tolerance_seconds: int
) -> None:
    """The offline check, with billhook's development certificate as the only trusted one."""
    certs = CertificateCache(lambda _url: cert_pem, allowed=lambda url: url == development.CERT_URL)
    verify_offline(raw, headers, webhook_id=webhook_id, certs=certs, now=now, tolerance_seconds=tolerance_seconds)


def verify_postback(
    raw: bytes,
    headers: Mapping[str, str],
    *,
    webhook_id: str,
    client: PayPalGateway,
    now: datetime,
    tolerance_seconds: int,
) -> None:
    h = transmission_headers(headers)
    check_transmission_time(h[H_TIME], now=now, tolerance_seconds=tolerance_seconds)
    # PayPal would fetch the cert itself; refusing a foreign URL here keeps the answer the same
    # whichever verifier is configured.
    if not is_paypal_cert_url(h[H_CERT_URL]):
        raise SignatureError("untrusted_cert_url", "PAYPAL-CERT-URL is not a PayPal certificate URL")
    try:
        verified = client.verify_webhook_signature(headers=h, event=raw, webhook_id=webhook_id)
    except ProviderError as exc:
        if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (401, 403, 429):
            # PayPal refused the verification request itself (e.g. a malformed event body).
            raise SignatureError("invalid_signature", "PayPal did not verify the delivery") from exc
        raise VerifierUnavailable(exc.message) from exc
    if not verified:
        raise SignatureError("invalid_signature", "PayPal did not verify the delivery")
