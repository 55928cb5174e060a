"""The OpenAPI 3 document of the billing API, served at /api/v1/openapi.json.

Written by hand next to the views; tests/web/test_billing_api.py checks that every route of the
billing blueprint is documented and every documented operation is a route. The fields' shapes
(lengths, patterns, required fields) are the validation's own patterns, so a body the document
allows is one the API takes, and tests/fuzz/test_openapi_schemathesis.py checks every answer
against the document.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from web.billing_api import ITEM_ID, REQUEST_KEY
from web.invoices import DEFAULT_PAGE as INVOICE_PAGE
from web.invoices import MAX_PAGE as INVOICE_PAGE_MAX
from web.invoices import NUMBER as INVOICE_NUMBER
from web.openapi_schemas import SCHEMAS
from web.paging import CURSOR

bp = Blueprint("openapi", __name__)

_ERROR = {"$ref": "#/components/schemas/Error"}
_BEARER = [{"bearerAuth": []}]


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*statuses: int) -> dict:
    text = {
        400: "Bad input (a body that is not a standard JSON object, a field, header or query parameter outside "
        "its schema, a cursor this API did not return, an item not purchasable through this provider, "
        "no customer yet)",
        401: "Missing, invalid or expired bearer token, or one whose claims are not printable text of bounded length",
        404: "Unknown or inactive plan or credit package, or a PayPal order that is not the caller's",
        409: "Conflicts with the account's subscription, or the PayPal order is not approved yet",
        413: "The body is over the size limit (1 MiB by default), however it is sent",
        502: "The payment provider refused or failed the call; `provider` names it",
        503: "The provider is not configured, or the store is unavailable (retry later)",
    }
    return {str(s): _json(_ERROR, text[s]) for s in statuses}


def _body(**fields: dict) -> dict:
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "required": list(fields), "properties": fields},
            }
        },
    }


def _pattern(compiled) -> str:
    """A pattern the views match in full, anchored as JSON Schema's `pattern` (a search) needs."""
    return f"^{compiled.pattern}$"


_STRING_ID = {"type": "string", "minLength": 1, "maxLength": 100, "pattern": _pattern(ITEM_ID)}
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Repeat a request safely: the same key returns the same provider object.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": _pattern(REQUEST_KEY)},
}


def _authed(
    summary: str, ok: dict, errors: tuple[int, ...], body: dict | None = None, *, idempotent: bool = True
) -> dict:
    errors = tuple(sorted({*errors, 503} | ({413} if body is not None else set())))
    operation = {
        "summary": summary,
        "security": _BEARER,
        "parameters": [_IDEMPOTENCY] if idempotent else [],
        "responses": {"200": ok, **_errors(*errors)},
    }
    if body is not None:
        operation["requestBody"] = body
    return operation


PATHS = {
    "/api/v1/billing/plans": {
        "get": {
            "summary": "Active subscription plans (public)",
            "security": [],
            "responses": {
                "200": _json({"type": "object", "properties": {"plans": {"type": "array", "items": _ref("Plan")}}}),
                **_errors(503),
            },
        }
    },
    "/api/v1/billing/credit-packages": {
        "get": {
            "summary": "Active credit packages (public)",
            "security": [],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {"credit_packages": {"type": "array", "items": _ref("CreditPackage")}},
                    }
                ),
                **_errors(503),
            },
        }
    },
    "/api/v1/billing/account": {
        "get": {
            "summary": "The caller's balance, subscription and recent ledger entries",
            "security": _BEARER,
            "responses": {"200": _json(_ref("Account")), **_errors(401, 503)},
        }
    },
    "/api/v1/billing/stripe/checkout": {
        "post": _authed(
            "Subscribe to a plan through Stripe Checkout; on a live Stripe subscription, change its plan",
            _json({"oneOf": [_ref("CheckoutStarted"), _ref("PlanChanged")]}),
            (400, 401, 404, 409, 502, 503),
            _body(plan_id=_STRING_ID),
        )
    },
    "/api/v1/billing/stripe/credit-checkout": {
        "post": _authed(
            "Buy a credit package through Stripe Checkout (credits are granted by the webhook)",
            _json(_ref("CreditCheckoutStarted")),
            (400, 401, 404, 502, 503),
            _body(package_id=_STRING_ID),
        )
    },
    "/api/v1/billing/stripe/billing-portal": {
        "post": _authed(
            "A Stripe billing portal session for the caller's customer",
            _json({"type": "object", "required": ["portal_url"], "properties": {"portal_url": {"type": "string"}}}),
            (400, 401, 502, 503),
        )
    },
    "/api/v1/billing/stripe/checkout/{session_id}": {
        "get": {
            **_authed(
                "The return page's sync: the caller's Checkout Session from Stripe, applied at once when complete "
                "(the later webhook changes nothing)",
                _json(_ref("CheckoutSynced")),
                (400, 401, 404, 502, 503),
                idempotent=False,
            ),
            "parameters": [{"name": "session_id", "in": "path", "required": True, "schema": _STRING_ID}],
        }
    },
    "/api/v1/billing/stripe/cancel-subscription": {
        "post": _authed(
            "Cancel the caller's Stripe subscription at the period's end (applied when Stripe's webhook arrives)",
            _json(_ref("StripeSubscription")),
            (400, 401, 404, 409, 502, 503),
            _body(at_period_end={"type": "boolean", "enum": [True]}),
        )
    },
    "/api/v1/billing/stripe/resume-subscription": {
        "post": _authed(
            "Undo a cancellation scheduled for the period's end (applied when Stripe's webhook arrives)",
            _json(_ref("StripeSubscription")),
            (400, 401, 404, 409, 502, 503),
        )
    },
    "/api/v1/billing/paypal/create-order": {
        "post": _authed(
            "A PayPal order (intent CAPTURE) for a credit package; the buyer approves at approve_url",
            _json(_ref("PayPalOrderCreated")),
            (400, 401, 404, 502, 503),
            _body(package_id=_STRING_ID),
        )
    },
    "/api/v1/billing/paypal/capture-order": {
        "post": _authed(
            "Capture the caller's approved PayPal order; on COMPLETED its credits are granted (once per order)",
            _json(_ref("PayPalOrderCaptured")),
            (400, 401, 404, 409, 502, 503),
            _body(order_id=_STRING_ID),
            idempotent=False,  # every capture of an order is the same capture
        )
    },
    "/api/v1/billing/paypal/create-subscription": {
        "post": _authed(
            "A PayPal subscription for the plan's PayPal plan; the buyer approves at approve_url",
            _json(_ref("PayPalSubscriptionCreated")),
            (400, 401, 404, 409, 502, 503),
            _body(plan_id=_STRING_ID),
        )
    },
    "/api/v1/billing/paypal/change-plan": {
        "post": _authed(
            "Revise the caller's live PayPal subscription to another plan; the buyer approves at approve_url and "
            "the plan changes when PayPal's webhook says so",
            _json(_ref("PayPalPlanChange")),
            (400, 401, 404, 409, 502, 503),
            _body(plan_id=_STRING_ID),
        )
    },
    "/api/v1/billing/paypal/cancel-subscription": {
        "post": _authed(
            "Cancel the caller's live PayPal subscription at PayPal; the webhook applies the cancellation",
            _json(_ref("PayPalCancelRequested")),
            (401, 404, 502, 503),
            idempotent=False,
        )
    },
    "/api/v1/billing/manual-payments": {
        "post": {
            **_authed(
                "Ask to pay by bank transfer, cheque or invoice: a pending payment with an open invoice and "
                "payment instructions; an operator approves it (201; 200 for a retry with the same key)",
                _json(_ref("ManualPayment")),
                (400, 401, 404, 409, 503),
                {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["method"],
                                "properties": {
                                    "plan_id": _STRING_ID,
                                    "package_id": _STRING_ID,
                                    "method": {
                                        "type": "string",
                                        "enum": ["bank_transfer", "cheque", "invoice", "other"],
                                    },
                                    "reference": {"type": "string", "maxLength": 200},
                                },
                            }
                        }
                    },
                },
            ),
        }
    },
    "/api/v1/billing/invoices": {
        "get": {
            "summary": "The caller's invoices, newest first, each with its credit notes and a printable link, "
            "a page at a time",
            "security": _BEARER,
            "parameters": [
                {
                    "name": "limit",
                    "in": "query",
                    "description": "Invoices per page",
                    "schema": {"type": "integer", "minimum": 1, "maximum": INVOICE_PAGE_MAX, "default": INVOICE_PAGE},
                },
                {
                    "name": "cursor",
                    "in": "query",
                    "description": "The previous page's next_cursor; absent for the first page",
                    "schema": {"type": "string", "pattern": _pattern(CURSOR)},
                },
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["invoices", "next_cursor"],
                        "properties": {
                            "invoices": {"type": "array", "items": _ref("Invoice")},
                            "next_cursor": {
                                "type": "string",
                                "nullable": True,
                                "description": "The next page's cursor; null on the last page",
                            },
                        },
                    }
                ),
                **_errors(400, 401, 503),
            },
        }
    },
    "/api/v1/billing/invoices/{number}": {
        "get": {
            "summary": "One of the caller's invoices (another account's number is 404)",
            "security": _BEARER,
            "parameters": [
                {
                    "name": "number",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": _pattern(INVOICE_NUMBER)},
                }
            ],
            "responses": {"200": _json(_ref("Invoice")), **_errors(401, 404, 503)},
        }
    },
    "/api/v1/billing/manual-payments/{payment_ref}": {
        "get": {
            "summary": "One of the caller's manual payments, with its invoice and decision",
            "security": _BEARER,
            "parameters": [{"name": "payment_ref", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _json(_ref("ManualPayment")), **_errors(401, 404, 503)},
        }
    },
}


def document() -> dict:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "billhook billing API",
            "version": "1.0.0",
            "description": "Checkout, billing portal and account balance for the SaaS frontend. "
            "Authenticated calls carry the main app's JWT as `Authorization: Bearer <token>`.",
        },
        "servers": [{"url": "/"}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


@bp.get("/api/v1/openapi.json")
def openapi_json():
    return jsonify(document())
