"""The PayPal stand-in plus `POST /v1/notifications/verify-webhook-signature`, answering as PayPal
does ({"verification_status": "SUCCESS" | "FAILURE"}) by checking the delivery's signature against
the test certificate and the webhook ids it knows. The event must arrive verbatim: PayPal signs
the bytes it sent, so the fake checks the CRC of exactly the bytes billhook embedded."""

from __future__ import annotations

import base64
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from shared.paypal.webhooks import signed_message
from tests.factories.paypal_events import SigningCert
from tests.fakes.http import Recorded
from tests.fakes.paypal_api import FakePayPal, error

VERIFY_PATH = "/v1/notifications/verify-webhook-signature"
FIELDS = ("auth_algo", "cert_url", "transmission_id", "transmission_sig", "transmission_time", "webhook_id")


class FakePayPalNotifications(FakePayPal):
    def __init__(self, cert: SigningCert, webhook_ids: set[str]):
        super().__init__()
        self.cert = cert
        self.webhook_ids = set(webhook_ids)
        self.route("POST", VERIFY_PATH)(self._authorized(self._verify))

    def _verify(self, request: Recorded, _match):
        try:
            fields = json.loads(request.body)
            raw_event = request.body.split(b'"webhook_event":', 1)[1].rstrip()[:-1]
        except (ValueError, IndexError):
            fields, raw_event = {}, b""
        if not isinstance(fields, dict) or any(not fields.get(f) for f in FIELDS) or not raw_event:
            return 400, error(
                "VALIDATION_ERROR", "MISSING_REQUIRED_PARAMETER", "A required field is missing.", "Invalid request."
            )
        return 200, {"verification_status": "SUCCESS" if self._valid(fields, raw_event) else "FAILURE"}

    def _valid(self, fields: dict, raw_event: bytes) -> bool:
        if fields["webhook_id"] not in self.webhook_ids or fields["auth_algo"] != "SHA256withRSA":
            return False
        message = signed_message(
            raw_event,
            transmission_id=fields["transmission_id"],
            transmission_time=fields["transmission_time"],
            webhook_id=fields["webhook_id"],
        )
        try:
            self.cert.key.public_key().verify(
                base64.b64decode(fields["transmission_sig"]), message, padding.PKCS1v15(), hashes.SHA256()
            )
        except (InvalidSignature, ValueError):
            return False
        return True
