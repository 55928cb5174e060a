"""The caller's invoices and credit notes, and a printable page behind a signed, short-lived link.

- `GET /api/v1/billing/invoices?limit=&cursor=`: the signed-in account's invoices, newest first,
  a page at a time (`limit` 1 to 100, default 20; `next_cursor` names the next page, null on the last).
- `GET /api/v1/billing/invoices/<number>`: one of them (another account's number is 404).
- `GET /invoices/<number>/print?account=&expires=&sig=`: the printable HTML invoice. A browser
  opening a link cannot send the bearer token, and a token in a query string ends up in logs and
  history, so the JSON answers carry this link instead: an HMAC over number, account and expiry
  under a key derived from billhook's JWT secret (a separate purpose, so a link is never a token).
  An expired or altered link is 403.

Seller details printed on the page come from the `manual` integration provider's config, its
`seller` block: `{"name", "address" (lines), "tax_id", "email"}`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, render_template, request, url_for

from shared import credentials
from shared.billing import invoices
from shared.models import CreditNote, Invoice
from web.auth import current_caller, require_account
from web.context import billhook
from web.errors import ApiError
from web.paging import cursor_param, encode_cursor, limit_param, only_params

bp = Blueprint("invoices", __name__)

NUMBER = re.compile(r"[A-Z0-9-]{1,32}")
LINK_SECONDS = 15 * 60
DEFAULT_PAGE = 20
MAX_PAGE = 100
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
# The OpenAPI schema of an invoice as `_answer` writes it (web/openapi.py lists it).
INVOICE_SCHEMA = {
    "type": "object",
    "properties": {
        "number": {"type": "string", "description": "Gapless per year: 2026-000123 (older: BH-2026-000042)"},
        "issued_at": {"type": "string", "format": "date-time"},
        "status": {"type": "string", "enum": ["paid", "open", "void"]},
        "amount_cents": {"type": "integer"},
        "currency": {"type": "string"},
        "lines": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "description": {"type": "string", "nullable": True},
                    "amount_cents": {"type": "integer", "nullable": True},
                    "quantity": {"type": "integer", "nullable": True},
                },
            },
        },
        "provider": {"type": "string"},
        "hosted_url": {"type": "string", "nullable": True, "description": "The provider's invoice page"},
        "notes": {"type": "string", "nullable": True},
        "credit_notes": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "number": {"type": "string", "description": "CN-2026-000007"},
                    "issued_at": {"type": "string", "format": "date-time"},
                    "reason": {"type": "string", "enum": ["refund", "dispute_lost", "rejected", "reversal"]},
                    "amount_cents": {"type": "integer"},
                    "currency": {"type": "string"},
                },
            },
        },
        "print_url": {
            "type": "string",
            "description": "The printable HTML invoice: a signed link, valid 15 minutes, needing no token",
        },
        "print_url_expires_at": {"type": "string", "format": "date-time"},
    },
}
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # the signed link never leaves in a Referer
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}


@bp.get("/api/v1/billing/invoices")
@require_account
def list_invoices():
    only_params("limit", "cursor")
    limit = limit_param(DEFAULT_PAGE, MAX_PAGE)
    before = cursor_param(datetime, int)
    account_id = current_caller().account_id
    with billhook().session_factory() as session:
        found = invoices.invoices_of_account(session, account_id, limit + 1, before=before)
        page, more = found[:limit], len(found) > limit
        notes = invoices.credit_notes_of(session, [i.id for i in page])
        next_cursor = encode_cursor(page[-1].issued_at, page[-1].id) if more else None
        return jsonify({"invoices": [_answer(i, notes[i.id]) for i in page], "next_cursor": next_cursor})


@bp.get("/api/v1/billing/invoices/<number>")
@require_account
def show_invoice(number: str):
    account_id = current_caller().account_id
    with billhook().session_factory() as session:
        invoice = invoices.find_by_number(session, account_id, number) if NUMBER.fullmatch(number) else None
        if invoice is None:
            raise ApiError(404, "not_found", "no such invoice")
        return jsonify(_answer(invoice, invoices.credit_notes_of(session, [invoice.id])[invoice.id]))


@bp.get("/invoices/<number>/print")
def print_invoice(number: str):
    account_id = request.args.get("account", "")
    expires = request.args.get("expires", "")
    if not (NUMBER.fullmatch(number) and _valid(number, account_id, expires, request.args.get("sig", ""))):
        return _forbidden("This invoice link is invalid or has expired. Open the invoice again from your account.")
    with billhook().session_factory() as session:
        invoice = invoices.find_by_number(session, account_id, number)
        if invoice is None:
            raise ApiError(404, "not_found", "no such invoice")
        notes = invoices.credit_notes_of(session, [invoice.id])[invoice.id]
        provider = credentials.get_provider(session, "manual")
        seller = (provider.config or {}).get("seller") if provider is not None else None
    page = render_template("invoice.html", invoice=invoice, notes=notes, seller=_seller(seller), money=money)
    return Response(page, headers=_HEADERS)


def sign(number: str, account_id: str, expires: int) -> str:
    message = f"{number}\n{account_id}\n{expires}".encode()
    return hmac.new(_link_key(), message, hashlib.sha256).hexdigest()


def print_link(number: str, account_id: str, *, now: float | None = None) -> tuple[str, int]:
    expires = int(now if now is not None else time.time()) + LINK_SECONDS
    url = url_for(
        "invoices.print_invoice",
        number=number,
        account=account_id,
        expires=expires,
        sig=sign(number, account_id, expires),
        _external=True,
    )
    return url, expires


def money(cents: int | None, currency: str) -> str:
    cents = cents or 0
    sign_ = "-" if cents < 0 else ""
    return f"{sign_}{abs(cents) // 100}.{abs(cents) % 100:02d} {currency.upper()}"


def _link_key() -> bytes:
    secret = billhook().settings.jwt_secret.encode()
    return hmac.new(secret, b"billhook invoice print link", hashlib.sha256).digest()


def _valid(number: str, account_id: str, expires: str, signature: str) -> bool:
    if not (account_id and len(account_id) <= 64 and expires.isdigit() and len(expires) <= 12):
        return False
    if not _SIGNATURE.fullmatch(signature) or int(expires) < time.time():
        return False
    return hmac.compare_digest(sign(number, account_id, int(expires)), signature)


def _forbidden(message: str):
    if request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json":
        return jsonify({"error": {"code": "invalid_link", "message": message}}), 403
    return Response(render_template("invoice.html", forbidden=message), status=403, headers=_HEADERS)


def _seller(config: object) -> dict:
    config = config if isinstance(config, dict) else {}
    address = config.get("address") or []
    lines = address.splitlines() if isinstance(address, str) else [str(a) for a in address]
    return {
        "name": str(config.get("name") or ""),
        "address": lines,
        "tax_id": str(config.get("tax_id") or ""),
        "email": str(config.get("email") or ""),
    }


def _answer(invoice: Invoice, notes: list[CreditNote]) -> dict:
    link, expires = print_link(invoice.number or "", invoice.account_id)
    return {
        "number": invoice.number,
        "issued_at": invoice.issued_at,
        "status": invoice.status,
        "amount_cents": invoice.amount_cents,
        "currency": invoice.currency,
        "lines": [
            {
                "description": line.get("description"),
                "amount_cents": line.get("amount_cents"),
                "quantity": line.get("quantity"),
            }
            for line in invoice.line_items or []
            if isinstance(line, dict)
        ],
        "provider": invoice.provider,
        "hosted_url": invoice.hosted_url,
        "notes": invoice.notes,
        "credit_notes": [
            {
                "number": n.number,
                "issued_at": n.issued_at,
                "reason": n.reason,
                "amount_cents": n.amount_cents,
                "currency": n.currency,
            }
            for n in notes
        ],
        "print_url": link,
        "print_url_expires_at": datetime.fromtimestamp(expires, UTC),
    }
