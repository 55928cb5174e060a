"""`billhook endpoints add/list/rotate-secret/disable/enable` and `billhook deliveries list/show/retry`."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from shared.billing.accounts import ensure_account
from shared.models import OutgoingDelivery
from shared.models.outgoing import DeliveryStatus
from shared.outcome import Outcome
from shared.outgoing import events as outgoing


def _added(billhook, *args: str) -> tuple[dict, str]:
    result = billhook("endpoints", "add", *args)
    shown, _, secret_line = result.output.rpartition("secret: ")
    return json.loads(shown), secret_line.strip()


def test_add_prints_the_secret_once_and_list_never_shows_it(billhook):
    endpoint, secret = _added(billhook, "http://127.0.0.1:9/hook", "--allow-private", "--events", "credits.low")

    listed = json.loads(billhook("endpoints", "list").output)

    assert secret.startswith("whsec_")
    assert [e["id"] for e in listed] == [endpoint["id"]] and listed[0]["event_types"] == ["credits.low"]
    assert secret not in billhook("endpoints", "list").output


def test_add_refuses_a_private_address_without_allow_private(billhook):
    result = billhook("endpoints", "add", "http://127.0.0.1:9/hook", ok=False)

    assert result.exit_code != 0
    assert "private" in result.output
    assert json.loads(billhook("endpoints", "list").output) == []


def test_rotate_disable_enable(billhook):
    endpoint, secret = _added(billhook, "http://127.0.0.1:9/hook", "--allow-private")

    rotated = billhook("endpoints", "rotate-secret", endpoint["id"], "--overlap-seconds", "600").output
    billhook("endpoints", "disable", endpoint["id"])
    (disabled,) = json.loads(billhook("endpoints", "list").output)
    billhook("endpoints", "enable", endpoint["id"])
    (enabled,) = json.loads(billhook("endpoints", "list").output)

    assert "whsec_" in rotated and secret not in rotated and "600 seconds" in rotated
    assert (disabled["enabled"], enabled["enabled"]) == (False, True)
    assert enabled["previous_secret_signs_until"] is not None
    assert billhook("endpoints", "disable", "ep_nope", ok=False).exit_code != 0


def test_deliveries_list_show_and_retry_of_a_failed_one(billhook):
    endpoint, _ = _added(billhook, "http://127.0.0.1:9/hook", "--allow-private")
    now = datetime.now(UTC)
    outcome = Outcome()
    with billhook.session_factory.begin() as session:
        ensure_account(session, "acct_cli")
        outgoing.emit(session, outcome, account_id="acct_cli", type="credits.low", key="k", data={}, at=now)
    (delivery_id,) = outcome.deliveries  # written at the commit
    with billhook.session_factory.begin() as session:
        row = session.get(OutgoingDelivery, delivery_id)
        row.status, row.last_error = DeliveryStatus.FAILED, "HTTP 500"

    (failed,) = json.loads(billhook("deliveries", "list", "--failed").output)
    shown = json.loads(billhook("deliveries", "show", str(delivery_id)).output)
    retried = billhook("deliveries", "retry", str(delivery_id)).output

    assert (failed["id"], failed["last_error"], failed["endpoint_id"]) == (delivery_id, "HTTP 500", endpoint["id"])
    assert shown["body"]["type"] == "credits.low" and shown["body"]["sequence"] == 1
    assert "pending" in retried
    assert json.loads(billhook("deliveries", "list", "--failed").output) == []
    assert billhook("deliveries", "show", "999", ok=False).exit_code != 0
