"""POST /webhooks/paypal: both verifiers, the cert host allow-list, and the durable inbox path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared import credentials
from shared.models import WebhookEvent
from shared.paypal.webhooks import CertificateCache
from tests.factories import paypal_events as pe
from tests.fakes.paypal_api import CLIENT_ID, CLIENT_SECRET
from tests.fakes.paypal_notifications import VERIFY_PATH, FakePayPalNotifications
from web.webhooks.paypal import CERTS_EXTENSION


class CertFetches(list):
    """The cert fetcher at the internet edge: serves the test certificate, records each URL."""

    def __init__(self, pem: bytes):
        super().__init__()
        self.pem = pem

    def __call__(self, url: str) -> bytes:
        self.append(url)
        return self.pem


@pytest.fixture
def fake_paypal():
    fake = FakePayPalNotifications(pe.signing_cert(), {pe.WEBHOOK_ID}).start()
    yield fake
    fake.stop()


def _configure(session_factory, verification: str) -> None:
    with session_factory.begin() as session:
        credentials.set_provider(
            session,
            "paypal",
            api_key=CLIENT_ID,
            api_secret=CLIENT_SECRET,
            webhook_id=pe.WEBHOOK_ID,
            config={"verification": verification},
        )


@pytest.fixture
def fetches():
    return CertFetches(pe.signing_cert().pem)


@pytest.fixture
def offline_client(settings, seeded, enqueued, fetches):
    from web import create_app

    _configure(seeded, "offline")
    app = create_app(settings, enqueue=enqueued)
    app.extensions[CERTS_EXTENSION] = CertificateCache(fetch=fetches)
    return app.test_client()


@pytest.fixture
def postback_client(settings, seeded, enqueued, fake_paypal, fetches):
    from web import create_app

    _configure(seeded, "postback")
    app = create_app(settings.with_overrides(paypal_api_base=fake_paypal.url), enqueue=enqueued)
    app.extensions[CERTS_EXTENSION] = CertificateCache(fetch=fetches)
    return app.test_client()


def _capture_event(**kwargs) -> dict:
    order_id = pe.unique()
    return pe.event(
        "PAYMENT.CAPTURE.COMPLETED",
        pe.capture(order_id=order_id, account_id="acct_pp", package_id="starter", amount_cents=999),
        **kwargs,
    )


def _stored(session_factory) -> list[WebhookEvent]:
    with session_factory() as session:
        return list(session.query(WebhookEvent).filter_by(provider="paypal"))


# -- offline ----------------------------------------------------------------------------------


def test_offline_signed_delivery_is_stored_and_enqueued_once(offline_client, seeded, enqueued, fetches):
    evt = _capture_event(created=datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
    body, headers = pe.signed(evt)

    first = offline_client.post("/webhooks/paypal", data=body, headers=headers)
    again = offline_client.post("/webhooks/paypal", data=body, headers=pe.signed(evt)[1])

    assert first.status_code == 200, first.json
    assert first.json == {"received": True, "duplicate": False, "status": "received"}
    assert again.status_code == 200 and again.json["duplicate"] is True
    [stored] = _stored(seeded)
    assert (stored.event_id, stored.type) == (evt["id"], "PAYMENT.CAPTURE.COMPLETED")
    assert stored.event_created_at == datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert enqueued == [stored.id]
    assert fetches == [pe.CERT_URL]  # fetched once, then cached


def test_unhandled_paypal_event_type_is_kept_but_not_enqueued(offline_client, seeded, enqueued):
    body, headers = pe.signed(pe.event("INVOICING.INVOICE.PAID", {"id": "INV2-1"}))
    response = offline_client.post("/webhooks/paypal", data=body, headers=headers)
    assert response.status_code == 200 and response.json["status"] == "ignored"
    assert enqueued == []


def test_tampered_body_is_refused_with_400(offline_client, seeded, enqueued):
    body, headers = pe.signed(_capture_event())
    tampered = body.replace(b'"9.99"', b'"0.01"')
    response = offline_client.post("/webhooks/paypal", data=tampered, headers=headers)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_signature"
    assert _stored(seeded) == [] and enqueued == []


def test_signature_for_another_webhook_id_is_refused(offline_client, seeded):
    body, headers = pe.signed(_capture_event(), webhook_id="OTHERWEBHOOK123")
    response = offline_client.post("/webhooks/paypal", data=body, headers=headers)
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_signature"


def test_signature_by_another_key_is_refused(offline_client, seeded):
    body, headers = pe.signed(_capture_event(), cert=pe.make_cert())
    response = offline_client.post("/webhooks/paypal", data=body, headers=headers)
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_signature"


@pytest.mark.parametrize("header", ["PAYPAL-TRANSMISSION-SIG", "PAYPAL-CERT-URL", "PAYPAL-TRANSMISSION-TIME"])
def test_missing_signature_header_is_refused_with_400(offline_client, seeded, header):
    body, headers = pe.signed(_capture_event())
    del headers[header]
    response = offline_client.post("/webhooks/paypal", data=body, headers=headers)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "missing_signature"
    assert header in response.json["error"]["message"]


def test_stale_transmission_time_is_refused_with_400(offline_client, seeded, fetches):
    body, headers = pe.signed(_capture_event(), transmission_time=datetime.now(UTC) - timedelta(minutes=10))
    response = offline_client.post("/webhooks/paypal", data=body, headers=headers)
    assert response.status_code == 400 and response.json["error"]["code"] == "stale_timestamp"
    assert fetches == []


def test_unsupported_algorithm_is_refused(offline_client, seeded):
    body, headers = pe.signed(_capture_event())
    headers["PAYPAL-AUTH-ALGO"] = "SHA1withRSA"
    response = offline_client.post("/webhooks/paypal", data=body, headers=headers)
    assert response.status_code == 400 and response.json["error"]["code"] == "unsupported_algorithm"


@pytest.mark.parametrize(
    "cert_url",
    [
        "https://evil.example.com/v1/notifications/certs/CERT-1",
        "http://api.paypal.com/v1/notifications/certs/CERT-1",
        "https://api.paypal.com.evil.com/v1/notifications/certs/CERT-1",
        "https://api.paypal.com@evil.com/v1/notifications/certs/CERT-1",
        "https://127.0.0.1/v1/notifications/certs/CERT-1",
    ],
)
def test_certificate_url_off_paypal_hosts_is_refused_without_a_request(offline_client, seeded, fetches, cert_url):
    body, headers = pe.signed(_capture_event(), cert_url=cert_url)
    response = offline_client.post("/webhooks/paypal", data=body, headers=headers)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "untrusted_cert_url"
    assert fetches == []


def test_signed_body_that_is_not_an_event_is_refused(offline_client, seeded):
    for raw, code in ((b"not json", "malformed_json"), (b'{"id": "WH-1"}', "malformed_event")):
        body, headers = pe.signed(raw)
        response = offline_client.post("/webhooks/paypal", data=body, headers=headers)
        assert response.status_code == 400 and response.json["error"]["code"] == code


def test_no_webhook_id_configured_answers_503(client, seeded):
    body, headers = pe.signed(_capture_event())
    response = client.post("/webhooks/paypal", data=body, headers=headers)
    assert response.status_code == 503 and response.json["error"]["code"] == "not_configured"


# -- postback ---------------------------------------------------------------------------------


def test_postback_verified_delivery_is_accepted_and_sent_verbatim(postback_client, seeded, enqueued, fake_paypal):
    # Indented and sorted: re-serialising would change the bytes, and with them the CRC PayPal checks.
    body, headers = pe.signed(json.dumps(_capture_event(), indent=2, sort_keys=True).encode())

    response = postback_client.post("/webhooks/paypal", data=body, headers=headers)

    assert response.status_code == 200, response.json
    [call] = fake_paypal.calls("POST", VERIFY_PATH)
    assert call.header("Authorization").startswith("Bearer A21AA")
    assert call.json["webhook_id"] == pe.WEBHOOK_ID
    assert call.json["transmission_id"] == headers["PAYPAL-TRANSMISSION-ID"]
    assert call.body.endswith(b'"webhook_event":' + body + b"}")
    assert len(enqueued) == 1


def test_postback_failure_is_refused_with_400(postback_client, seeded, enqueued, fake_paypal):
    body, headers = pe.signed(_capture_event(), cert=pe.make_cert())
    response = postback_client.post("/webhooks/paypal", data=body, headers=headers)
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_signature"
    assert _stored(seeded) == [] and enqueued == []


def test_postback_refuses_foreign_cert_url_before_asking_paypal(postback_client, seeded, fake_paypal):
    body, headers = pe.signed(_capture_event(), cert_url="https://evil.example.com/v1/notifications/certs/X")
    response = postback_client.post("/webhooks/paypal", data=body, headers=headers)
    assert response.status_code == 400 and response.json["error"]["code"] == "untrusted_cert_url"
    assert fake_paypal.calls("POST", VERIFY_PATH) == []


def test_postback_with_paypal_down_answers_503_so_paypal_retries(postback_client, seeded, fake_paypal):
    from tests.fakes.paypal_api import INTERNAL_SERVER_ERROR

    fake_paypal.fail_next(VERIFY_PATH, 500, INTERNAL_SERVER_ERROR)
    body, headers = pe.signed(_capture_event())
    response = postback_client.post("/webhooks/paypal", data=body, headers=headers)
    assert response.status_code == 503 and response.json["error"]["code"] == "verifier_unavailable"
    assert _stored(seeded) == []
    retried = postback_client.post("/webhooks/paypal", data=body, headers=headers)
    assert retried.status_code == 200


def test_postback_without_client_credentials_answers_503(client, seeded):
    with seeded.begin() as session:
        credentials.set_provider(session, "paypal", webhook_id=pe.WEBHOOK_ID, config={"verification": "postback"})
    body, headers = pe.signed(_capture_event())
    response = client.post("/webhooks/paypal", data=body, headers=headers)
    assert response.status_code == 503 and response.json["error"]["code"] == "not_configured"
