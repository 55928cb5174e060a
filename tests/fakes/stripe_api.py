"""A stand-in for api.stripe.com: answers in Stripe's published object shapes (the fixtures in
tests/fixtures/stripe/objects.json, through tests/factories/stripe_events.py), replays a response
for a repeated Idempotency-Key the way Stripe does, and records every request."""

from __future__ import annotations

import threading

from tests.factories import stripe_events as se
from tests.fakes.http import FakeServer, Recorded

CARD_DECLINED = {
    "error": {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": "generic_decline",
        "message": "Your card was declined.",
        "doc_url": "https://stripe.com/docs/error-codes/card-declined",
    }
}
API_ERROR = {"error": {"type": "api_error", "message": "An unknown error occurred"}}


def resource_missing(kind: str, object_id: str) -> dict:
    return {
        "error": {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "param": "id",
            "message": f"No such {kind}: '{object_id}'",
        }
    }


def _metadata(form: dict, prefix: str = "metadata") -> dict:
    """`metadata[account_id]=a` (or `subscription_data[metadata][plan_id]=b` with that prefix) as a dict."""
    start = f"{prefix}["
    return {k[len(start) : -1]: v for k, v in form.items() if k.startswith(start) and "[" not in k[len(start) :]}


class FakeStripe(FakeServer):
    def __init__(self):
        super().__init__()
        self.subscriptions: dict[str, dict] = {}
        self._replies: dict[str, tuple[int, object]] = {}
        self._replay_lock = threading.Lock()
        self.route("POST", "/v1/customers")(self._idempotent(self._create_customer))
        self.route("POST", "/v1/checkout/sessions")(self._idempotent(self._create_checkout_session))
        self.route("POST", "/v1/billing_portal/sessions")(self._idempotent(self._create_portal_session))
        self.route("GET", r"/v1/subscriptions/(?P<id>[^/]+)")(self._retrieve_subscription)
        self.route("POST", r"/v1/subscriptions/(?P<id>[^/]+)")(self._idempotent(self._update_subscription))

    def add_subscription(self, *, subscription_id: str, customer: str, price_id: str, status: str = "active") -> dict:
        obj = se.subscription(
            subscription_id=subscription_id,
            customer=customer,
            price_id=price_id,
            status=status,
            period_start=1_790_000_000,
            period_end=1_792_592_000,
        )
        self.subscriptions[subscription_id] = obj
        return obj

    def _idempotent(self, fn):
        def answer(request: Recorded, match):
            key = request.header("Idempotency-Key")
            with self._replay_lock:
                if key and key in self._replies:
                    return self._replies[key]
                reply = fn(request, match)
                if key:
                    self._replies[key] = reply
                return reply

        return answer

    def _create_customer(self, request: Recorded, _match):
        form = request.form
        obj = se.fixture("customer")
        obj.update(id=se.unique("cus"), email=form.get("email"), name=form.get("name"), metadata=_metadata(form))
        return 200, obj

    def _create_checkout_session(self, request: Recorded, _match):
        form = request.form
        obj = se.fixture("checkout.session")
        session_id = se.unique("cs_test")
        obj.update(
            id=session_id,
            url=f"https://checkout.stripe.com/c/pay/{session_id}",
            mode=form.get("mode"),
            customer=form.get("customer"),
            client_reference_id=form.get("client_reference_id"),
            metadata=_metadata(form),
            success_url=form.get("success_url"),
            cancel_url=form.get("cancel_url"),
            status="open",
            payment_status="unpaid",
            subscription=None,
            payment_intent=None,
        )
        return 200, obj

    def _create_portal_session(self, request: Recorded, _match):
        form = request.form
        obj = se.fixture("billing_portal.session")
        obj.update(
            id=se.unique("bps"),
            customer=form.get("customer"),
            return_url=form.get("return_url"),
            url=f"https://billing.stripe.com/p/session/{se.unique('test')}",
            livemode=False,
            flow=None,
        )
        return 200, obj

    def _retrieve_subscription(self, _request: Recorded, match):
        obj = self.subscriptions.get(match["id"])
        if obj is None:
            return 404, resource_missing("subscription", match["id"])
        return 200, obj

    def _update_subscription(self, request: Recorded, match):
        obj = self.subscriptions.get(match["id"])
        if obj is None:
            return 404, resource_missing("subscription", match["id"])
        form = request.form
        item = obj["items"]["data"][0]
        if form.get("items[0][id]") == item["id"] and form.get("items[0][price]"):
            item["price"]["id"] = form["items[0][price]"]
        obj["metadata"] = {**obj.get("metadata", {}), **_metadata(form)}
        return 200, obj
