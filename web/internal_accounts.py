"""The main app's view of billing, under /api/v1/internal/ with the service token:

- `GET /accounts/{id}`: what the account is entitled to now (plan, status, grace, features,
  balance), from the store in one query;
- `GET /accounts?changed_since=ISO&cursor=…&limit=…`: accounts whose billing state changed, oldest
  change first, for the main app's catch-up after it missed webhooks;
- `GET|POST /endpoints`, `POST /endpoints/{id}/rotate-secret|disable|enable`: where billhook sends
  its signed outgoing webhooks (a new endpoint's secret and a rotated one are shown once).
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, jsonify, request

from shared.billing import entitlements
from shared.outgoing import endpoints
from web.auth import guard_with_service_token
from web.context import billhook
from web.errors import ApiError
from web.metrics import note_request
from web.paging import cursor_param, encode_cursor, limit_param

bp = Blueprint("internal_accounts", __name__, url_prefix="/api/v1/internal")

MAX_ACCOUNT_ID = 64
DEFAULT_PAGE = 100
MAX_PAGE = 500
MAX_OVERLAP_SECONDS = 30 * 24 * 3600


guard_with_service_token(bp)


# -- entitlements -----------------------------------------------------------------------------


@bp.get("/accounts/<account_id>")
def account_entitlement(account_id: str):
    if not account_id.strip() or len(account_id) > MAX_ACCOUNT_ID:
        raise ApiError(400, "invalid_account_id", f"an account id has 1 to {MAX_ACCOUNT_ID} characters")
    note_request(account=account_id)
    ext = billhook()
    with ext.session_factory() as session:
        if not ext.settings.is_sqlite:
            # One SELECT sees one snapshot by itself: outside a transaction it saves the BEGIN and
            # ROLLBACK round trips, half the store's share of this answer (docs/benchmarks.md).
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        state = entitlements.entitlement(session, account_id, now=_now())
    if state is None:
        raise ApiError(404, "account_not_found", f"no account {account_id}")
    return jsonify(state)


@bp.get("/accounts")
def accounts_changed():
    since = _iso_param("changed_since")
    limit = limit_param(DEFAULT_PAGE, MAX_PAGE)
    after = cursor_param(datetime, str)
    with billhook().session_factory() as session:
        page = entitlements.changed_since(session, since, after=after, limit=limit, now=_now())
    next_cursor = None
    if len(page) == limit:
        last = page[-1]
        next_cursor = encode_cursor(last["billing_changed_at"], last["account_id"])
    return jsonify({"accounts": page, "next_cursor": next_cursor})


def _iso_param(name: str) -> datetime:
    raw = request.args.get(name)
    if raw is None:
        return datetime(1970, 1, 1, tzinfo=UTC)
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", f"{name} must be an ISO 8601 timestamp") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# -- endpoints --------------------------------------------------------------------------------


@bp.get("/endpoints")
def list_endpoints():
    now = _now()
    with billhook().session_factory() as session:
        return jsonify({"endpoints": [endpoints.describe(e, now) for e in endpoints.list_endpoints(session)]})


@bp.post("/endpoints")
def add_endpoint():
    body = _json_body()
    url = body.get("url")
    if not isinstance(url, str) or not url:
        raise ApiError(400, "invalid_field", "url is required (an http or https URL)")
    event_types = body.get("event_types", [])
    if not isinstance(event_types, list) or not all(isinstance(t, str) for t in event_types):
        raise ApiError(400, "invalid_field", "event_types must be a list of event type names")
    allow_private = body.get("allow_private", False)
    description = body.get("description")
    if not isinstance(allow_private, bool):
        raise ApiError(400, "invalid_field", "allow_private must be true or false")
    if description is not None and (not isinstance(description, str) or len(description) > 200):
        raise ApiError(400, "invalid_field", "description must be a string of at most 200 chars")
    now = _now()
    with billhook().session_factory.begin() as session:
        created = _refusing(
            endpoints.add_endpoint,
            session,
            url,
            event_types=event_types,
            allow_private=allow_private,
            description=description,
            at=now,
        )
        answer = {**endpoints.describe(created.endpoint, now), "secret": created.secret}
    return jsonify(answer), 201


@bp.post("/endpoints/<endpoint_id>/rotate-secret")
def rotate_secret(endpoint_id: str):
    body = request.get_json(silent=True) or {}
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    overlap = body.get("overlap_seconds", billhook().settings.outgoing_secret_overlap_seconds)
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap <= MAX_OVERLAP_SECONDS:
        raise ApiError(400, "invalid_field", f"overlap_seconds must be an integer from 0 to {MAX_OVERLAP_SECONDS}")
    now = _now()
    with billhook().session_factory.begin() as session:
        secret = _refusing(endpoints.rotate_secret, session, endpoint_id, overlap_seconds=overlap, at=now)
        answer = {**endpoints.describe(endpoints.get_endpoint(session, endpoint_id), now), "secret": secret}
    return jsonify(answer)


@bp.post("/endpoints/<endpoint_id>/disable")
def disable_endpoint(endpoint_id: str):
    return _set_enabled(endpoint_id, False)


@bp.post("/endpoints/<endpoint_id>/enable")
def enable_endpoint(endpoint_id: str):
    return _set_enabled(endpoint_id, True)


def _set_enabled(endpoint_id: str, enabled: bool):
    now = _now()
    with billhook().session_factory.begin() as session:
        endpoint = _refusing(endpoints.set_enabled, session, endpoint_id, enabled, at=now)
        answer = endpoints.describe(endpoint, now)
    return jsonify(answer)


def _refusing(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except endpoints.UnknownEndpoint as exc:
        raise ApiError(404, "endpoint_not_found", str(exc)) from exc
    except endpoints.EndpointError as exc:
        raise ApiError(400, "invalid_endpoint", str(exc)) from exc


def _json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    return body


def _now() -> datetime:
    return datetime.now(UTC)
