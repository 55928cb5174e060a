"""A stand-in for PayPal's REST API (api-m.paypal.com): OAuth client-credentials tokens, Orders v2
(create, get, capture) and Subscriptions v1 (create), answering in PayPal's documented shapes
(`Prefer: return=representation`), replaying the first answer for a repeated `PayPal-Request-Id`
the way PayPal does, and recording every request."""

from __future__ import annotations

import base64
import itertools
import threading
import time

from tests.fakes.http import FakeServer, Recorded

_ids = itertools.count(1)
CLIENT_ID = "paypal-client-id"
CLIENT_SECRET = "paypal-client-secret"


def _paypal_id(prefix: str = "") -> str:
    return f"{prefix}{next(_ids):05d}{time.time_ns() % 10**12:012d}"[:17].upper()


def error(status_name: str, issue: str, description: str, message: str) -> dict:
    """PayPal's error body."""
    return {
        "name": status_name,
        "details": [{"issue": issue, "description": description}],
        "message": message,
        "debug_id": "f1e2d3c4b5a69",
        "links": [
            {
                "href": f"https://developer.paypal.com/api/rest/reference/orders/v2/errors/#{issue}",
                "rel": "information_link",
            }
        ],
    }


INSTRUMENT_DECLINED = error(
    "UNPROCESSABLE_ENTITY",
    "INSTRUMENT_DECLINED",
    "The instrument presented  was either declined by the processor or bank, or it can't be used for this payment.",
    "The requested action could not be performed, semantically incorrect, or failed business validation.",
)
INTERNAL_SERVER_ERROR = {
    "name": "INTERNAL_SERVER_ERROR",
    "message": "An internal server error occurred.",
    "debug_id": "90957fca61718",
    "links": [
        {"href": "https://developer.paypal.com/api/orders/v2/#error-INTERNAL_SERVER_ERROR", "rel": "information_link"}
    ],
}


class FakePayPal(FakeServer):
    def __init__(self, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET):
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.tokens_issued: list[str] = []
        self.orders: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        self._replies: dict[tuple[str, str], tuple[int, object]] = {}
        self._state = threading.Lock()
        self.route("POST", "/v1/oauth2/token")(self._token)
        self.route("POST", "/v2/checkout/orders")(self._authorized(self._idempotent(self._create_order)))
        self.route("GET", r"/v2/checkout/orders/(?P<id>[A-Z0-9]+)")(self._authorized(self._get_order))
        self.route("POST", r"/v2/checkout/orders/(?P<id>[A-Z0-9]+)/capture")(
            self._authorized(self._idempotent(self._capture_order))
        )
        self.route("POST", "/v1/billing/subscriptions")(self._authorized(self._idempotent(self._create_subscription)))
        self.route("POST", r"/v1/billing/subscriptions/(?P<id>I-[A-Z0-9]+)/revise")(
            self._authorized(self._idempotent(self._revise_subscription))
        )
        self.route("POST", r"/v1/billing/subscriptions/(?P<id>I-[A-Z0-9]+)/cancel")(
            self._authorized(self._cancel_subscription)
        )
        self.route("GET", "/v1/notifications/webhooks-events")(self._authorized(self._list_webhook_events))
        # What GET /v1/notifications/webhooks-events lists, newest first (tests add to it).
        self.webhook_events: list[dict] = []
        self.webhook_events_page_size_cap = 10

    # -- test controls --------------------------------------------------------------------------

    def approve(self, order_id: str) -> None:
        """The buyer approves the order on PayPal's page."""
        self.orders[order_id]["status"] = "APPROVED"

    def capture_elsewhere(self, order_id: str) -> dict:
        """Someone else (another client, or the dashboard) captures the approved order."""
        status, order = self._capture_order(None, {"id": order_id})
        assert status == 201, order
        return order

    def add_order(
        self, *, custom_id: str, value: str = "29.99", currency: str = "USD", status: str = "APPROVED"
    ) -> str:
        order = self._order(custom_id=custom_id, value=value, currency=currency, description="test order")
        order["status"] = status
        self.orders[order["id"]] = order
        return order["id"]

    # -- auth -----------------------------------------------------------------------------------

    def _token(self, request: Recorded, _match):
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if (
            request.header("Authorization") != f"Basic {expected}"
            or request.form.get("grant_type") != "client_credentials"
        ):
            return 401, {"error": "invalid_client", "error_description": "Client Authentication failed"}
        token = f"A21AA{_paypal_id()}"
        self.tokens_issued.append(token)
        return 200, {
            "scope": "https://uri.paypal.com/services/payments/payment https://uri.paypal.com/services/subscriptions",
            "access_token": token,
            "token_type": "Bearer",
            "app_id": "APP-80W284485P519543T",
            "expires_in": 32400,
            "nonce": "2026-11-24T16:00:00ZdQ8PHXUGBD0DhAPAGrrbdmZcpY-aHnl5k5UQ4PSbXd8",
        }

    def _authorized(self, fn):
        def answer(request: Recorded, match):
            header = request.header("Authorization") or ""
            if not header.startswith("Bearer ") or header[7:] not in self.tokens_issued:
                return 401, {"error": "invalid_token", "error_description": "Token signature verification failed"}
            return fn(request, match)

        return answer

    def _idempotent(self, fn):
        def answer(request: Recorded, match):
            request_id = request.header("PayPal-Request-Id")
            with self._state:
                key = (request.path, request_id or "")
                if request_id and key in self._replies:
                    return self._replies[key]
                reply = fn(request, match)
                if request_id and reply[0] < 500:
                    self._replies[key] = reply
                return reply

        return answer

    # -- orders ---------------------------------------------------------------------------------

    def _order(self, *, custom_id: str, value: str, currency: str, description: str) -> dict:
        order_id = _paypal_id("5O")
        return {
            "id": order_id,
            "intent": "CAPTURE",
            "status": "PAYER_ACTION_REQUIRED",
            "payment_source": {"paypal": {}},
            "purchase_units": [
                {
                    "reference_id": "default",
                    "amount": {"currency_code": currency, "value": value},
                    "payee": {"email_address": "merchant@example.com", "merchant_id": "C7CYMKZDG8D6E"},
                    "description": description,
                    "custom_id": custom_id,
                }
            ],
            "create_time": "2026-11-24T16:00:00Z",
            "links": [
                {
                    "href": f"https://api-m.sandbox.paypal.com/v2/checkout/orders/{order_id}",
                    "rel": "self",
                    "method": "GET",
                },
                {
                    "href": f"https://www.sandbox.paypal.com/checkoutnow?token={order_id}",
                    "rel": "payer-action",
                    "method": "GET",
                },
            ],
        }

    def _create_order(self, request: Recorded, _match):
        body = request.json or {}
        unit = (body.get("purchase_units") or [{}])[0]
        if body.get("intent") != "CAPTURE" or not unit.get("amount"):
            return 400, error(
                "INVALID_REQUEST",
                "MISSING_REQUIRED_PARAMETER",
                "A required field is missing.",
                "Request is not well-formed.",
            )
        order = self._order(
            custom_id=unit.get("custom_id"),
            value=unit["amount"]["value"],
            currency=unit["amount"]["currency_code"],
            description=unit.get("description"),
        )
        self.orders[order["id"]] = order
        return 200, order

    def _get_order(self, _request: Recorded, match):
        order = self.orders.get(match["id"])
        if order is None:
            return 404, _not_found(match["id"])
        return 200, order

    def _capture_order(self, _request: Recorded, match):
        order = self.orders.get(match["id"])
        if order is None:
            return 404, _not_found(match["id"])
        if order["status"] == "COMPLETED":
            return 422, error(
                "UNPROCESSABLE_ENTITY",
                "ORDER_ALREADY_CAPTURED",
                "Order already captured.If 'intent=CAPTURE' only one capture per order is allowed.",
                "The requested action could not be performed, semantically incorrect, or failed business validation.",
            )
        if order["status"] != "APPROVED":
            return 422, error(
                "UNPROCESSABLE_ENTITY",
                "ORDER_NOT_APPROVED",
                "Payer has not yet approved the Order for payment.",
                "The requested action could not be performed, semantically incorrect, or failed business validation.",
            )
        unit = order["purchase_units"][0]
        capture_id = _paypal_id("3C")
        unit["payments"] = {
            "captures": [
                {
                    "id": capture_id,
                    "status": "COMPLETED",
                    "amount": dict(unit["amount"]),
                    "final_capture": True,
                    "seller_protection": {"status": "ELIGIBLE", "dispute_categories": ["ITEM_NOT_RECEIVED"]},
                    "seller_receivable_breakdown": {
                        "gross_amount": dict(unit["amount"]),
                        "paypal_fee": {"currency_code": unit["amount"]["currency_code"], "value": "1.00"},
                        "net_amount": dict(unit["amount"]),
                    },
                    "custom_id": unit.get("custom_id"),
                    "links": [
                        {
                            "href": f"https://api-m.sandbox.paypal.com/v2/payments/captures/{capture_id}",
                            "rel": "self",
                            "method": "GET",
                        },
                    ],
                    "create_time": "2026-11-24T16:01:00Z",
                    "update_time": "2026-11-24T16:01:00Z",
                }
            ]
        }
        order["status"] = "COMPLETED"
        order["payer"] = {
            "name": {"given_name": "John", "surname": "Doe"},
            "email_address": "buyer@example.com",
            "payer_id": "QYR5Z8XDVJNXQ",
        }
        return 201, order

    # -- subscriptions --------------------------------------------------------------------------

    def _create_subscription(self, request: Recorded, _match):
        body = request.json or {}
        if not str(body.get("plan_id", "")).startswith("P-"):
            return 422, error(
                "UNPROCESSABLE_ENTITY",
                "INVALID_PLAN_ID",
                "Plan id is not valid.",
                "The requested action could not be performed.",
            )
        subscription_id = _paypal_id("I-")
        subscription = {
            "id": subscription_id,
            "plan_id": body["plan_id"],
            "custom_id": body.get("custom_id"),
            "status": "APPROVAL_PENDING",
            "status_update_time": "2026-11-24T16:00:00Z",
            "quantity": "1",
            "plan_overridden": False,
            "create_time": "2026-11-24T16:00:00Z",
            "links": [
                {
                    "href": f"https://www.sandbox.paypal.com/webapps/billing/subscriptions?ba_token=BA-{subscription_id[2:]}",
                    "rel": "approve",
                    "method": "GET",
                },
                {
                    "href": f"https://api-m.sandbox.paypal.com/v1/billing/subscriptions/{subscription_id}",
                    "rel": "edit",
                    "method": "PATCH",
                },
                {
                    "href": f"https://api-m.sandbox.paypal.com/v1/billing/subscriptions/{subscription_id}",
                    "rel": "self",
                    "method": "GET",
                },
            ],
        }
        self.subscriptions[subscription_id] = subscription
        return 201, subscription

    def add_subscription(self, *, plan_id: str = "P-BASIC", status: str = "ACTIVE", custom_id: str = "") -> str:
        """A subscription PayPal already holds (as after the buyer approved it)."""
        subscription_id = _paypal_id("I-")
        self.subscriptions[subscription_id] = {
            "id": subscription_id,
            "plan_id": plan_id,
            "status": status,
            "custom_id": custom_id,
        }
        return subscription_id

    def _revise_subscription(self, request: Recorded, match):
        subscription = self.subscriptions.get(match["id"])
        if subscription is None:
            return 404, _not_found(match["id"])
        body = request.json or {}
        if not str(body.get("plan_id", "")).startswith("P-"):
            return 422, error("UNPROCESSABLE_ENTITY", "INVALID_PLAN_ID", "Plan id is not valid.", "Invalid plan.")
        sid = match["id"]
        return 200, {
            "plan_id": body["plan_id"],
            "effective_time": "2026-11-24T16:00:00Z",
            "plan_overridden": False,
            "links": [
                {
                    "href": f"https://www.sandbox.paypal.com/webapps/billing/subscriptions/update?ba_token=BA-{sid[2:]}",
                    "rel": "approve",
                    "method": "GET",
                },
                {"href": f"https://api-m.sandbox.paypal.com/v1/billing/subscriptions/{sid}", "rel": "self"},
            ],
        }

    def _cancel_subscription(self, _request: Recorded, match):
        subscription = self.subscriptions.get(match["id"])
        if subscription is None:
            return 404, _not_found(match["id"])
        if subscription["status"] == "CANCELLED":
            return 422, error(
                "UNPROCESSABLE_ENTITY",
                "SUBSCRIPTION_STATUS_INVALID",
                "Invalid subscription status for cancel action; subscription status should be active or suspended.",
                "The requested action could not be performed.",
            )
        subscription["status"] = "CANCELLED"
        return 204, None

    def _list_webhook_events(self, request: Recorded, _match):
        query = request.query
        size = min(int(query.get("page_size", 10)), self.webhook_events_page_size_cap)
        page = int(query.get("page", 1))
        start, end = query.get("start_time", ""), query.get("end_time", "9999")
        listed = [e for e in self.webhook_events if start <= e["create_time"] <= end]
        chunk = listed[(page - 1) * size : page * size]
        links = []
        if page * size < len(listed):
            params = f"page_size={size}&page={page + 1}&start_time={start}&end_time={end}"
            links.append({"href": f"{self.url}/v1/notifications/webhooks-events?{params}", "rel": "next"})
        return 200, {"events": chunk, "count": len(chunk), "links": links}


def _not_found(order_id: str) -> dict:
    body = error(
        "RESOURCE_NOT_FOUND",
        "INVALID_RESOURCE_ID",
        "Specified resource ID does not exist. Please check the resource ID and try again.",
        "The specified resource does not exist.",
    )
    body["details"][0].update(field="order_id", value=order_id, location="path")
    return body
