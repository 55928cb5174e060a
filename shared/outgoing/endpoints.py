"""The main app's endpoints: where outgoing events go, and the secrets that sign them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.errors import PermanentError
from shared.models import OutgoingEndpoint
from shared.outgoing import network, signing
from shared.outgoing.events import TYPES

MAX_URL = 2000
DEFAULT_OVERLAP_SECONDS = 24 * 3600


class EndpointError(PermanentError):
    """An endpoint request billhook refuses (a bad URL, an unknown event type, no such endpoint)."""


class UnknownEndpoint(EndpointError):
    pass


@dataclass(frozen=True)
class Created:
    endpoint: OutgoingEndpoint
    secret: str  # shown once, to whoever registered it


def validate_event_types(event_types: list[str] | None) -> list[str]:
    types = sorted(set(event_types or []))
    unknown = [t for t in types if t not in TYPES]
    if unknown:
        raise EndpointError(f"unknown event types {', '.join(unknown)}; known: {', '.join(TYPES)}")
    return types


def add_endpoint(
    session: Session,
    url: str,
    *,
    event_types: list[str] | None = None,
    allow_private: bool = False,
    description: str | None = None,
    at: datetime,
) -> Created:
    """Register an endpoint; its URL is checked now (and again on every connection)."""
    if len(url) > MAX_URL:
        raise EndpointError(f"the URL must be at most {MAX_URL} characters")
    try:
        network.check_url(url, allow_private=allow_private)
    except network.UnsafeUrl as exc:
        raise EndpointError(str(exc)) from exc
    secret = signing.new_secret()
    endpoint = OutgoingEndpoint(
        id="ep_" + secrets.token_hex(12),
        url=url,
        description=(description or None) and description[:200],
        event_types=validate_event_types(event_types),
        allow_private=allow_private,
        enabled=True,
        secret=secret,
        created_at=at,
        updated_at=at,
    )
    session.add(endpoint)
    session.flush()
    return Created(endpoint, secret)


def list_endpoints(session: Session) -> list[OutgoingEndpoint]:
    return list(session.scalars(select(OutgoingEndpoint).order_by(OutgoingEndpoint.created_at, OutgoingEndpoint.id)))


def get_endpoint(session: Session, endpoint_id: str, *, lock: bool = False) -> OutgoingEndpoint:
    endpoint = session.get(OutgoingEndpoint, endpoint_id, with_for_update=lock or None)
    if endpoint is None:
        raise UnknownEndpoint(f"no endpoint {endpoint_id!r}")
    return endpoint


def rotate_secret(
    session: Session, endpoint_id: str, *, overlap_seconds: int = DEFAULT_OVERLAP_SECONDS, at: datetime
) -> str:
    """A new secret; the current one keeps signing too for `overlap_seconds` (0: at once replaced)."""
    if overlap_seconds < 0:
        raise EndpointError("the overlap must not be negative")
    endpoint = get_endpoint(session, endpoint_id, lock=True)
    new = signing.new_secret()
    if overlap_seconds:
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = at + timedelta(seconds=overlap_seconds)
    else:
        endpoint.previous_secret = None
        endpoint.previous_secret_expires_at = None
    endpoint.secret = new
    endpoint.updated_at = at
    return new


def set_enabled(session: Session, endpoint_id: str, enabled: bool, *, at: datetime) -> OutgoingEndpoint:
    """A disabled endpoint gets no new deliveries, and its pending ones wait (not sent, not failed)."""
    endpoint = get_endpoint(session, endpoint_id, lock=True)
    endpoint.enabled = enabled
    endpoint.updated_at = at
    return endpoint


def signing_secrets(endpoint: OutgoingEndpoint, now: datetime) -> list[str]:
    """The secrets that sign now: the current one, and the previous one through its overlap."""
    current = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_expires_at and now < endpoint.previous_secret_expires_at:
        current.append(endpoint.previous_secret)
    return current


def describe(endpoint: OutgoingEndpoint, now: datetime) -> dict:
    """What ops and the API show: never a secret."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": endpoint.event_types or [],
        "allow_private": endpoint.allow_private,
        "enabled": endpoint.enabled,
        "previous_secret_signs_until": endpoint.previous_secret_expires_at.isoformat()
        if len(signing_secrets(endpoint, now)) > 1
        else None,
        "created_at": endpoint.created_at.isoformat(),
    }
