"""The documented body (docs/schemas/outgoing-event.v1.json) is the body billhook writes: every
event of a scenario touching each type family is checked against the schema."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from shared.billing import lapses, ledger
from shared.config import PROJECT_ROOT
from shared.outcome import Outcome
from shared.outgoing.events import TYPES
from tests.factories import stripe_events as se
from tests.shared.outgoing.test_events import outgoing_events
from tests.shared.stripe.handlers.support import ACCOUNT, DAY, StripeSubscription, run

SCHEMA = json.loads((PROJECT_ROOT / "docs" / "schemas" / "outgoing-event.v1.json").read_text())
_JSON_TYPES = {
    "object": dict,
    "string": str,
    "integer": int,
    "boolean": bool,
    "null": type(None),
}


def violations(value, schema: dict, path: str = "$") -> list[str]:
    """The subset of JSON Schema the document uses: type, required, properties,
    additionalProperties, enum, const, pattern, minimum, local $ref."""
    if "$ref" in schema:
        schema = SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    found = []
    types = schema.get("type")
    if types is not None:
        allowed = tuple(_JSON_TYPES[t] for t in ([types] if isinstance(types, str) else types))
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            return [f"{path}: {value!r} is not {types}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{path}: {value!r} not in enum")
    if "const" in schema and value != schema["const"]:
        found.append(f"{path}: {value!r} != {schema['const']!r}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        found.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if "minimum" in schema and value < schema["minimum"]:
        found.append(f"{path}: {value} < {schema['minimum']}")
    if isinstance(value, dict):
        found += [f"{path}: {name} missing" for name in schema.get("required", []) if name not in value]
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            found += [f"{path}: {name} not documented" for name in value if name not in properties]
        for name, sub in properties.items():
            if name in value:
                found += violations(value[name], sub, f"{path}.{name}")
    return found


def test_the_schema_lists_every_event_type():
    assert SCHEMA["properties"]["type"]["enum"] == list(TYPES)


def test_every_body_of_a_scenario_matches_the_schema(seeded, now):
    t0 = int(now.timestamp())
    sub = StripeSubscription(t0)
    intent = se.unique("pi")
    run(seeded, sub.checkout_completed(), now)
    run(seeded, sub.invoice(reason="subscription_create", payment_intent=intent), now)
    failed = sub.invoice("invoice.payment_failed", reason="subscription_cycle", period=1, status="open")
    run(seeded, failed, now)
    with seeded.begin() as session:
        ledger.debit_credits(
            session, Outcome(), account_id=ACCOUNT, amount=10, description="usage", idempotency_key="d", at=now
        )
    charge = se.charge(payment_intent=intent, amount=19900, amount_refunded=19900)
    run(seeded, se.event("charge.refunded", charge, created=t0 + 40 * DAY), now)
    lapses.lapse_past_due(seeded, now=now + timedelta(days=40))

    bodies = [e.body for e in outgoing_events(seeded)]

    assert {b["type"].split(".")[0] for b in bodies} == {"subscription", "payment", "credits"}
    assert "subscription.lapsed" in {b["type"] for b in bodies}
    assert [v for body in bodies for v in violations(json.loads(json.dumps(body)), SCHEMA)] == []


def test_the_checker_notices_an_undocumented_field():
    body = {"id": "evt_" + "0" * 32, "type": "credits.low", "version": 1, "created": "x", "account_id": "a"}
    assert violations({**body, "sequence": 1, "data": {}, "name": "Ada"}, SCHEMA) == [
        "$: name not documented",
        "$.data: billing missing",
    ]
