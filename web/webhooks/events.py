"""The one parser for provider event bodies, both intakes alike: strict JSON (web/json.py), an
object with an id and a type of bounded length and printable characters (PostgreSQL's text
refuses NUL; ops and logs show them), and the provider's creation time when it gives one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from web.errors import ApiError
from web.json import MalformedJson, loads_strict

MAX_ID_LENGTH = 128
MAX_TYPE_LENGTH = 100


def parse_event(raw: bytes, *, type_field: str) -> dict:
    """The event object, once its body passes the checks above; a 400 otherwise."""
    try:
        event = loads_strict(raw)
    except MalformedJson as exc:
        raise ApiError(400, "malformed_json", str(exc)) from exc
    if not isinstance(event, dict):
        raise ApiError(400, "malformed_event", f"the body is not an event (id and {type_field} are required)")
    event_id, event_type = event.get("id"), event.get(type_field)
    if not isinstance(event_id, str) or not isinstance(event_type, str):
        raise ApiError(400, "malformed_event", f"the body is not an event (id and {type_field} are required)")
    if not _printable(event_id, MAX_ID_LENGTH) or not _printable(event_type, MAX_TYPE_LENGTH):
        raise ApiError(400, "malformed_event", "the event id or type is out of range")
    return event


@dataclass(frozen=True)
class Delivery:
    """What the store keeps of a verified delivery, read from its body."""

    provider: str
    event_id: str
    type: str
    created_at: datetime | None


def read_delivery(provider: str, raw: bytes) -> Delivery:
    """The event a provider's body carries: Stripe's `type` and `created` (epoch seconds), PayPal's
    `event_type` and `create_time` (ISO 8601). A 400 when it is not an event."""
    if provider == "stripe":
        event = parse_event(raw, type_field="type")
        return Delivery(provider, event["id"], event["type"], unix_time(event.get("created")))
    event = parse_event(raw, type_field="event_type")
    return Delivery(provider, event["id"], event["event_type"], iso_time(event.get("create_time")))


def _printable(value: str, limit: int) -> bool:
    return 0 < len(value) <= limit and value.isprintable()


def unix_time(value: object) -> datetime | None:
    """Stripe's `created`: seconds since the epoch; absent is allowed."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, "malformed_event", "the event's created timestamp is not a number")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ApiError(400, "malformed_event", "the event's created timestamp is out of range") from exc


def iso_time(value: object) -> datetime | None:
    """PayPal's `create_time`: ISO 8601; absent or unreadable leaves the order to receipt time."""
    if not isinstance(value, str):
        return None
    try:
        created = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # In UTC here, as the store keeps it: a time at the calendar's edge with an offset past
        # it (9999-12-31T23:59-23:59) cannot be, and is as unreadable as a malformed one.
        return created.astimezone(UTC) if created.tzinfo else created.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None
