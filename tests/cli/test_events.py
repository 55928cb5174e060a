"""`billhook events list/show/replay/send`."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug.serving import make_server

from shared import processing
from shared.errors import PermanentError
from shared.models import WebhookEvent
from tests.conftest import Enqueued
from tests.factories import stripe_events as se
from tests.factories.inbox import store_event


def store(billhook, evt: dict, at: datetime | None = None) -> int:
    at = at or datetime.now(UTC)
    return store_event(billhook.session_factory, evt, at=at, event_created_at=at)


def package_checkout(account_id: str = "acct_ev") -> dict:
    return se.event(
        "checkout.session.completed", se.checkout_session(account_id=account_id, mode="payment", package_id="pro")
    )


def failed_event(billhook) -> int:
    """A checkout that names no account: processed, refused, dead-lettered."""
    evt = package_checkout()
    evt["data"]["object"]["metadata"] = {"package_id": "pro"}
    evt["data"]["object"]["client_reference_id"] = None
    pk = store(billhook, evt)
    now = datetime.now(UTC)
    with pytest.raises(PermanentError) as raised:
        processing.process_event(billhook.session_factory, pk, clock=lambda: now)
    processing.record_failure(billhook.session_factory, pk, raised.value, at=now, retry_at=None)
    return pk


def status_of(billhook, pk: int) -> str:
    with billhook.session_factory() as session:
        return session.get(WebhookEvent, pk).status


@pytest.fixture
def seeded_cli(billhook):
    billhook("seed")
    return billhook


def test_events_list_shows_newest_first_and_filters_by_status(seeded_cli):
    done = store(seeded_cli, package_checkout())
    processing.process_event(seeded_cli.session_factory, done, clock=lambda: datetime.now(UTC))
    failed = failed_event(seeded_cli)

    everything = seeded_cli("events", "list").output.splitlines()
    only_failed = seeded_cli("events", "list", "--status", "failed").output.splitlines()

    assert [line.split()[0] for line in everything] == [str(failed), str(done)]
    assert "succeeded" in everything[1] and "acct_ev" in everything[1]
    assert [line.split()[0] for line in only_failed] == [str(failed)]


def test_events_show_prints_the_event_its_error_and_its_ledger_entries(seeded_cli):
    pk = store(seeded_cli, package_checkout())
    processing.process_event(seeded_cli.session_factory, pk, clock=lambda: datetime.now(UTC))

    shown = json.loads(seeded_cli("events", "show", str(pk)).output)

    assert (shown["id"], shown["status"], shown["attempts"], shown["account"]) == (pk, "succeeded", 1, "acct_ev")
    assert shown["ledger_entries"][0]["amount"] == 5_000
    assert shown["payload"]["type"] == "checkout.session.completed"


def test_events_show_of_a_failed_event_gives_its_last_error(seeded_cli):
    pk = failed_event(seeded_cli)

    shown = json.loads(seeded_cli("events", "show", str(pk)).output)

    assert shown["status"] == "failed"
    assert shown["last_error"].startswith("PermanentError:")


def test_events_show_of_an_unknown_event_fails_saying_so(seeded_cli):
    result = seeded_cli("events", "show", "999", ok=False)

    assert result.exit_code == 1 and "no event 999" in result.output


def test_replay_with_the_broker_down_still_requeues_the_event_in_the_store(seeded_cli):
    pk = failed_event(seeded_cli)

    result = seeded_cli("events", "replay", str(pk))

    assert f"replayed 1 event(s): {pk}" in result.stdout
    assert status_of(seeded_cli, pk) == "received"
    # The broker is down (nothing listens on REDIS_URL): the sweeper picks the event up instead.
    assert "sweeper" in result.stderr
    later = datetime.now(UTC) + timedelta(minutes=5)
    swept = Enqueued()
    processing.sweep(seeded_cli.session_factory, swept, now=later, grace_seconds=60)
    assert swept == [pk]


def test_replay_failed_requeues_every_failed_event_and_publishes_their_ids(seeded_cli, broker):
    first, second = failed_event(seeded_cli), failed_event(seeded_cli)

    result = seeded_cli("events", "replay", "--failed")

    assert "replayed 2 event(s)" in result.stdout
    assert result.stderr == ""
    assert status_of(seeded_cli, first) == status_of(seeded_cli, second) == "received"
    assert broker.queued_task_args() == [("billhook.process_event", [first]), ("billhook.process_event", [second])]


def test_replay_of_a_succeeded_event_changes_nothing(seeded_cli):
    pk = store(seeded_cli, package_checkout())
    processing.process_event(seeded_cli.session_factory, pk, clock=lambda: datetime.now(UTC))

    result = seeded_cli("events", "replay", str(pk))

    assert "replayed 0 event(s)" in result.output
    assert status_of(seeded_cli, pk) == "succeeded"


def test_replay_needs_one_event_or_failed(seeded_cli):
    assert seeded_cli("events", "replay", ok=False).exit_code == 2
    assert seeded_cli("events", "replay", "1", "--failed", ok=False).exit_code == 2


# -- events send: sign and POST to a live intake ----------------------------------------------


@pytest.fixture
def live_intake(seeded_cli):
    """The real Flask app served over HTTP on a free port, on the CLI's store."""
    from web import create_app

    enqueued = Enqueued()
    app = create_app(seeded_cli.settings.with_overrides(provider_cache_seconds=0), enqueue=enqueued)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/webhooks/stripe", enqueued
    server.shutdown()
    thread.join(timeout=5)
    app.extensions["billhook"].dispose()


def test_events_send_signs_with_the_stored_secret_and_the_intake_accepts_it(seeded_cli, live_intake, tmp_path):
    url, enqueued = live_intake
    evt = package_checkout()
    path = tmp_path / "event.json"
    path.write_text(json.dumps(evt))

    result = seeded_cli("events", "send", str(path), "--url", url)

    assert result.output.startswith("200 ")
    assert json.loads(result.output[4:]) == {"received": True, "duplicate": False, "status": "received"}
    assert len(enqueued) == 1
    with seeded_cli.session_factory() as session:
        assert session.get(WebhookEvent, enqueued[0]).event_id == evt["id"]


def test_events_send_with_a_wrong_secret_shows_the_refusal_and_fails(seeded_cli, live_intake, tmp_path):
    url, enqueued = live_intake
    path = tmp_path / "event.json"
    path.write_text(json.dumps(package_checkout()))

    result = seeded_cli("events", "send", str(path), "--url", url, "--secret", "whsec_wrong_000000000000", ok=False)

    assert result.exit_code == 1
    assert result.output.startswith("400 ") and "invalid_signature" in result.output
    assert enqueued == []


def test_events_send_without_a_stored_secret_says_to_seed(billhook, tmp_path):
    path = tmp_path / "event.json"
    path.write_text("{}")

    result = billhook("events", "send", str(path), ok=False)

    assert result.exit_code == 1 and "billhook seed" in result.output


def test_events_send_with_web_down_fails_in_one_line_naming_the_url(seeded_cli, tmp_path):
    path = tmp_path / "event.json"
    path.write_text(json.dumps(package_checkout()))

    result = seeded_cli("events", "send", str(path), "--url", "http://127.0.0.1:1/webhooks/stripe", ok=False)

    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: billhook web is not answering at http://127.0.0.1:1/webhooks/stripe:"
        " start it with `make run` (or pass --url)"
    ]
