"""Bearer tokens from the main app: a JWT signed HS256 with `settings.jwt_secret`, audience
`settings.jwt_audience`, `exp` required, `sub` = the account id; optional `email` and `name`
create or update the account. A request acts only on the account its token names.
"""

from __future__ import annotations

import functools
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from flask import g, request

from shared.billing.accounts import ensure_account
from shared.config import Settings
from web import fields
from web.context import billhook
from web.errors import ApiError

ALGORITHM = "HS256"
LEEWAY_SECONDS = 30
MAX_ACCOUNT_ID = 64
MAX_EMAIL = 320
MAX_NAME = 200
# One @, no spaces or brackets around it: what an address the store keeps and a mailer takes looks like.
_EMAIL = re.compile(r"[^@\s<>,;]{1,64}@[^@\s<>,;]{1,255}")


@dataclass(frozen=True)
class Caller:
    account_id: str
    email: str | None
    name: str | None


def issue_token(
    settings: Settings,
    account_id: str,
    *,
    email: str | None = None,
    name: str | None = None,
    ttl: timedelta = timedelta(hours=1),
    now: datetime | None = None,
) -> str:
    """What the main app does; here for development (`billhook tokens create`) and tests."""
    if not settings.jwt_secret:
        raise ValueError("no JWT secret is configured (BILLHOOK_JWT_SECRET)")
    now = now or datetime.now(UTC)
    claims = {"sub": account_id, "aud": settings.jwt_audience, "iat": now, "exp": now + ttl}
    if email:
        claims["email"] = email
    if name:
        claims["name"] = name
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def decode_token(settings: Settings, token: str) -> Caller:
    """The caller a token names; ApiError 401 for anything but a valid, unexpired token."""
    if not settings.jwt_secret:
        raise ApiError(503, "not_configured", "bearer tokens cannot be checked: no JWT secret is configured")
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise _unauthorized("token_expired", "the bearer token has expired") from exc
    except jwt.InvalidTokenError as exc:
        raise _unauthorized("invalid_token", "the bearer token is not valid") from exc
    return parse_claims(claims)


def parse_claims(claims: dict) -> Caller:
    """The caller a verified token's claims name, or ApiError 401. Nothing is trimmed: an account
    id with a space or newline around it would be a second account to the store and the same
    one to a person, so it is refused, as is any claim the store could not keep (NUL, controls,
    lone surrogates, over-long)."""
    sub, email, name = claims.get("sub"), claims.get("email"), claims.get("name")
    if not fields.is_identifier(sub, MAX_ACCOUNT_ID):
        raise _unauthorized(
            "invalid_token",
            f"the token's sub must be an account id of 1 to {MAX_ACCOUNT_ID} printable chars, no surrounding spaces",
        )
    if email is not None and not (fields.is_identifier(email, MAX_EMAIL) and _EMAIL.fullmatch(email)):
        raise _unauthorized("invalid_token", "the token's email is not an email address")
    if name is not None and not fields.is_line(name, MAX_NAME):
        raise _unauthorized("invalid_token", f"the token's name must be one line of at most {MAX_NAME} chars")
    return Caller(sub, email or None, name or None)


def require_account(view):
    """Decorator: the request must carry a valid bearer token. The account it names is created or
    updated from the token, and the caller is kept on `flask.g.caller`."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        ext = billhook()
        caller = decode_token(ext.settings, _bearer_token())
        with ext.session_factory.begin() as session:
            ensure_account(session, caller.account_id, email=caller.email, name=caller.name)
        g.caller = caller
        return view(*args, **kwargs)

    return wrapper


def current_caller() -> Caller:
    return g.caller


def _bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise _unauthorized("missing_token", "an Authorization: Bearer <token> header is required")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("invalid_token", "the Authorization header must be 'Bearer <token>'")
    return token.strip()


def require_static_token(expected: str, *, what: str) -> None:
    """The request's `Authorization: Bearer` must be `expected` (compared in constant time): the
    internal API's service token, the metrics scrape token."""
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        raise _unauthorized("missing_token", f"an Authorization: Bearer <{what}> header is required")
    if not hmac.compare_digest(presented.strip().encode(), expected.encode()):
        raise _unauthorized("invalid_token", f"the {what} is not valid")


def guard_with_service_token(bp) -> None:
    """Every view of the blueprint (the main app's internal API) asks for the service token; 401s
    carry the challenge that names the realm."""

    @bp.before_request
    def _authenticate():
        token = billhook().settings.service_token
        if not token:
            raise ApiError(503, "not_configured", "no service token is configured (BILLHOOK_SERVICE_TOKEN)")
        require_static_token(token, what="service token")

    @bp.after_request
    def _challenge(response):
        if response.status_code == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="billhook-internal"'
        return response


def _unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message)
