"""Offline verification pieces: the certificate host allow-list, the certificate cache, the
signed message, the transmission time tolerance."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta

import pytest

from shared.paypal import webhooks as pw
from tests.factories import paypal_events as pe


@pytest.mark.parametrize(
    "url",
    [
        "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77",
        "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77",
        "https://api-m.paypal.com/v1/notifications/certs/CERT-1",
        "https://api-m.sandbox.paypal.com:443/v1/notifications/certs/CERT-1",
    ],
)
def test_paypal_certificate_urls_are_allowed(url):
    assert pw.is_paypal_cert_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://api.paypal.com/v1/notifications/certs/CERT-1",  # not https
        "https://api.paypal.com.evil.com/v1/notifications/certs/CERT-1",
        "https://evilpaypal.com/v1/notifications/certs/CERT-1",
        "https://user@api.paypal.com/v1/notifications/certs/CERT-1",
        "https://api.paypal.com:8443/v1/notifications/certs/CERT-1",
        "https://api.paypal.com/v1/oauth2/token",  # not the cert path
        "https://api.paypal.com/v1/notifications/certs/../../oauth2/token",
        "https://api.paypal.com\\@evil.com/v1/notifications/certs/CERT-1",
        "file:///etc/passwd",
        "",
    ],
)
def test_other_urls_are_refused(url):
    assert not pw.is_paypal_cert_url(url)


class Fetcher(list):
    def __init__(self, pem: bytes):
        super().__init__()
        self.pem = pem

    def __call__(self, url: str) -> bytes:
        self.append(url)
        return self.pem


def test_certificate_is_fetched_once_then_again_after_its_ttl():
    clock = [0.0]
    fetch = Fetcher(pe.signing_cert().pem)
    cache = pw.CertificateCache(fetch, ttl=60, clock=lambda: clock[0])
    now = datetime.now(UTC)

    cache.get(pe.CERT_URL, now=now)
    cache.get(pe.CERT_URL, now=now)
    assert len(fetch) == 1
    clock[0] = 61
    cache.get(pe.CERT_URL, now=now)
    assert len(fetch) == 2


def test_refused_url_never_reaches_the_fetcher():
    fetch = Fetcher(pe.signing_cert().pem)
    with pytest.raises(pw.SignatureError) as raised:
        pw.CertificateCache(fetch).get("https://evil.example/v1/notifications/certs/X", now=datetime.now(UTC))
    assert raised.value.code == "untrusted_cert_url" and fetch == []


def test_expired_certificate_is_refused():
    now = datetime.now(UTC)
    old = pe.make_cert(not_before=now - timedelta(days=400), not_after=now - timedelta(days=1))
    body, headers = pe.signed(b'{"id": "WH-1"}', cert=old)
    with pytest.raises(pw.SignatureError):
        pw.verify_offline(
            body,
            headers,
            webhook_id=pe.WEBHOOK_ID,
            certs=pw.CertificateCache(Fetcher(old.pem)),
            now=now,
            tolerance_seconds=300,
        )


def test_unreadable_certificate_means_the_verifier_is_unavailable():
    body, headers = pe.signed(b'{"id": "WH-1"}')
    with pytest.raises(pw.VerifierUnavailable):
        pw.verify_offline(
            body,
            headers,
            webhook_id=pe.WEBHOOK_ID,
            certs=pw.CertificateCache(Fetcher(b"<html>not a cert</html>")),
            now=datetime.now(UTC),
            tolerance_seconds=300,
        )


def test_signed_message_is_paypals_pipe_joined_fields_with_unsigned_crc32():
    body = b'{"id":"WH-1","event_type":"PAYMENT.CAPTURE.COMPLETED"}'
    message = pw.signed_message(body, transmission_id="T1", transmission_time="2026-11-24T12:00:00Z", webhook_id="W1")
    assert message == f"T1|2026-11-24T12:00:00Z|W1|{zlib.crc32(body) & 0xFFFFFFFF}".encode()


def test_transmission_time_in_the_future_beyond_tolerance_is_refused():
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    pw.check_transmission_time("2026-11-24T12:04:59Z", now=now, tolerance_seconds=300)
    with pytest.raises(pw.SignatureError):
        pw.check_transmission_time("2026-11-24T12:05:01Z", now=now, tolerance_seconds=300)
    with pytest.raises(pw.SignatureError):
        pw.check_transmission_time("yesterday", now=now, tolerance_seconds=300)
