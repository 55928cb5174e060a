"""The internal API the main app calls, under /api/v1/internal/, authenticated by billhook's
service token (`Authorization: Bearer <BILLHOOK_SERVICE_TOKEN>`).

- `POST /emails`: queue an account email (welcome, password_reset, email_verification) once per
  idempotency key; the send task is published after the commit.
- `POST /credits/debit`: take credits once per idempotency key, never below zero (409); a debit
  that takes the balance below the account's threshold queues the low_credits email.
- `POST /credits/adjust`: a signed correction (`amount` + or -, `reason`, `actor`) once per
  idempotency key; it may take the balance below zero.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

from flask import Blueprint, jsonify, request
from jinja2 import TemplateError
from sqlalchemy import select

from shared import handoff
from shared.billing import ledger, notifications
from shared.billing.accounts import ensure_account
from shared.email import outbox
from shared.email import render as emails
from shared.models import Account, EmailOutbox
from shared.outcome import Outcome
from web import fields
from web.auth import guard_with_service_token
from web.context import billhook
from web.errors import ApiError
from web.json import json_object
from web.metrics import note_request

log = logging.getLogger("billhook.web")

bp = Blueprint("internal_api", __name__, url_prefix="/api/v1/internal")

_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,150}")
_EMAIL = re.compile(r"[^@\s<>,;]{1,64}@[^@\s<>,;]{1,255}")
MAX_EMAIL = 320
MAX_CONTEXT_BYTES = 16 * 1024
# Templates read flat values; a little nesting is allowed, not the thousands of levels that
# would exhaust a recursive serializer.
MAX_CONTEXT_DEPTH = 8
MAX_ACCOUNT_ID = 64
MAX_DESCRIPTION = 300
MAX_ACTOR = 90
MAX_DEBIT = 1_000_000_000


guard_with_service_token(bp)


# -- emails -----------------------------------------------------------------------------------


@bp.post("/emails")
def queue_email():
    body = json_object()
    template = body.get("template")
    if template not in emails.ACCOUNT:
        raise ApiError(
            400,
            "template_not_allowed",
            f"template must be one of {', '.join(emails.ACCOUNT)} (billing emails are sent by billhook)",
        )
    key = _idempotency_key(body)
    context = _context(body, template)
    account_id = _optional_account_id(body)
    recipient = body.get("to")
    if recipient is not None and not (fields.is_identifier(recipient, MAX_EMAIL) and _EMAIL.fullmatch(recipient)):
        raise ApiError(400, "invalid_field", "to must be an email address")
    if recipient is None and account_id is None:
        raise ApiError(400, "invalid_field", "give `to` (an email address) or `account_id` (an account with one)")
    note_request(account=account_id)  # on the request's one log line
    ext = billhook()
    full_key = f"api:{key}"
    outcome = Outcome()
    with ext.session_factory.begin() as session:
        if account_id is not None:
            account = ensure_account(session, account_id)
            recipient = recipient or account.email
            if not recipient:
                raise ApiError(422, "no_address", f"account {account_id} has no email address; give `to`")
            context = {"name": account.name, **context}
        queued = outbox.queue_email(
            session,
            outcome,
            account_id=account_id,
            recipient=recipient,
            template=template,
            context=context,
            idempotency_key=full_key,
        )
        row = session.scalars(select(EmailOutbox).filter_by(idempotency_key=full_key)).one()
        if not queued and (row.template != template or row.recipient != recipient):
            raise ApiError(409, "idempotency_key_reused", "this idempotency key was used for a different email")
        answer = {"id": row.id, "status": row.status, "duplicate": not queued}
    handoff.hand_over(ext.enqueue_email, outcome.emails, what="email")  # after the commit
    return jsonify(answer), 200 if answer["duplicate"] else 202


def _context(body: dict, template: str) -> dict:
    context = body.get("context", {})
    if not isinstance(context, dict):
        raise ApiError(400, "invalid_context", "context must be a JSON object")
    try:
        fields.check_storable(context, max_depth=MAX_CONTEXT_DEPTH, max_string=MAX_CONTEXT_BYTES)
    except fields.Unstorable as exc:
        raise ApiError(400, "invalid_context", f"context cannot be stored: {exc}") from exc
    if len(json.dumps(context)) > MAX_CONTEXT_BYTES:
        raise ApiError(400, "invalid_context", f"context must be at most {MAX_CONTEXT_BYTES} bytes of JSON")
    missing = [
        name for name in emails.REQUIRED[template] if not isinstance(context.get(name), str) or not context[name]
    ]
    if missing:
        raise ApiError(400, "invalid_context", f"{template} needs context {', '.join(missing)} (strings)")
    try:
        emails.render(template, context)  # refuse now what the send task could never render
    except TemplateError as exc:
        raise ApiError(400, "invalid_context", f"{template} cannot be rendered with this context: {exc}") from exc
    return context


# -- credits ----------------------------------------------------------------------------------


@bp.post("/credits/debit")
def debit_credits():
    body = json_object()
    account_id = _required_account_id(body)
    amount = body.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_DEBIT:
        raise ApiError(400, "invalid_field", f"amount must be an integer from 1 to {MAX_DEBIT}")
    description = body.get("description") or "Usage"
    if not fields.is_line(description, MAX_DESCRIPTION):
        raise ApiError(400, "invalid_field", f"description must be one line of at most {MAX_DESCRIPTION} chars")
    key = f"api:debit:{_idempotency_key(body)}"
    return _write_ledger(
        account_id,
        key,
        lambda session, outcome, now: ledger.debit_credits(
            session,
            outcome,
            account_id=account_id,
            amount=amount,
            description=description,
            idempotency_key=key,
            at=now,
        ),
        amount=amount,
        reused="this idempotency key was used for a different debit",
    )


@bp.post("/credits/adjust")
def adjust_credits():
    body = json_object()
    account_id = _required_account_id(body)
    amount = body.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0 or abs(amount) > ledger.MAX_ADJUSTMENT:
        raise ApiError(400, "invalid_field", f"amount must be a non-zero integer of at most {ledger.MAX_ADJUSTMENT}")
    reason = body.get("reason")
    if not fields.is_line(reason, MAX_DESCRIPTION) or not reason.strip():
        raise ApiError(400, "invalid_field", f"reason is required: one line of 1 to {MAX_DESCRIPTION} chars")
    actor = body.get("actor", "main_app")
    if not fields.is_line(actor, MAX_ACTOR) or not actor.strip():
        raise ApiError(400, "invalid_field", f"actor must be one line of 1 to {MAX_ACTOR} chars")
    key = f"adjust:{_idempotency_key(body)}"
    return _write_ledger(
        account_id,
        key,
        lambda session, outcome, now: ledger.adjust_credits(
            session,
            outcome,
            account_id=account_id,
            amount=amount,
            reason=reason.strip(),
            actor=f"api:{actor.strip()}",
            idempotency_key=key,
            at=now,
        ),
        amount=amount,
        reused="this idempotency key was used for a different entry",
    )


def _write_ledger(account_id: str, key: str, write, *, amount: int, reused: str):
    """One ledger write of the main app's (a debit, an adjustment) in its own transaction, with
    the low-credits email it may cause, its emails and deliveries handed over after the commit,
    and the answer: 201 for a new entry, 200 for a replay of the same key."""
    note_request(account=account_id)  # on the request's one log line
    ext = billhook()
    outcome = Outcome()
    now = datetime.now(UTC)
    with ext.session_factory.begin() as session:
        try:
            written = write(session, outcome, now)
        except ledger.UnknownAccount as exc:
            raise ApiError(404, "account_not_found", f"no account {account_id}") from exc
        except ledger.InsufficientCredits as exc:
            raise ApiError(
                409, "insufficient_credits", f"the balance ({exc.balance}) does not cover {exc.amount} credits"
            ) from exc
        except ledger.KeyReused as exc:
            raise ApiError(409, "idempotency_key_reused", reused) from exc
        if not written.replayed:
            notifications.low_credits_if_crossed(
                session,
                outcome,
                session.get(Account, account_id),
                before=written.balance_before,
                after=written.balance_after,
                cause_key=key,
                at=now,
            )
    handoff.after_commit(outcome, email=ext.enqueue_email, delivery=ext.enqueue_delivery)
    answer = {
        "entry_id": written.entry_id,
        "amount": amount,
        "balance": written.balance_after,
        "replayed": written.replayed,
    }
    return jsonify(answer), 200 if written.replayed else 201


# -- helpers ----------------------------------------------------------------------------------


def _idempotency_key(body: dict) -> str:
    key = body.get("idempotency_key", request.headers.get("Idempotency-Key"))
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ApiError(400, "invalid_idempotency_key", "idempotency_key is required: 1 to 150 of A-Z a-z 0-9 _ . : -")
    return key


def _required_account_id(body: dict) -> str:
    account_id = _optional_account_id(body)
    if account_id is None:
        raise ApiError(400, "invalid_field", "account_id is required")
    return account_id


def _optional_account_id(body: dict) -> str | None:
    account_id = body.get("account_id")
    if account_id is None:
        return None
    if not fields.is_identifier(account_id, MAX_ACCOUNT_ID):
        raise ApiError(
            400,
            "invalid_field",
            f"account_id must be 1 to {MAX_ACCOUNT_ID} printable chars with no spaces around them",
        )
    return account_id
