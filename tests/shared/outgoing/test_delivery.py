"""Delivering outgoing events: Standard Webhooks signatures a third-party verifier accepts,
retries with backoff until a 2xx or the window's end, rotation overlap, and SSRF refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from shared.billing.accounts import ensure_account
from shared.models import OutgoingDelivery, OutgoingEndpoint
from shared.models.outgoing import DeliveryStatus
from shared.outcome import Outcome
from shared.outgoing import delivery, endpoints, network
from shared.outgoing import events as outgoing
from tests.fakes.http import FakeServer
from tests.fakes.receiver import Receiver

ACCOUNT = "acct_out"


@pytest.fixture
def now() -> datetime:
    """The real time: the verifier refuses a signature timestamp more than 5 minutes off its clock."""
    return datetime.now(UTC)


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def register(session_factory, url: str, now, **kwargs) -> endpoints.Created:
    with session_factory.begin() as session:
        return endpoints.add_endpoint(session, url, allow_private=True, at=now, **kwargs)


def emit(session_factory, now, key: str = "k1", type_: str = "credits.granted") -> list[int]:
    outcome = Outcome()
    with session_factory.begin() as session:
        ensure_account(session, ACCOUNT)
        outgoing.emit(session, outcome, account_id=ACCOUNT, type=type_, key=key, data={"credits": {}}, at=now)
    return outcome.deliveries


def attempt(session_factory, settings, delivery_id: int, at) -> delivery.Attempt:
    return delivery.deliver(session_factory, delivery_id, settings=settings, clock=lambda: at)


def row(session_factory, delivery_id: int) -> OutgoingDelivery:
    with session_factory() as session:
        return session.get(OutgoingDelivery, delivery_id)


def test_a_delivery_is_signed_so_standardwebhooks_verifies_it(seeded, settings, receiver, now):
    created = register(seeded, receiver.url, now)
    receiver.secrets = [created.secret]
    (delivery_id,) = emit(seeded, now)

    result = attempt(seeded, settings, delivery_id, now)

    assert result.outcome == delivery.DELIVERED
    assert receiver.refused_signatures == 0
    (event,) = receiver.events.values()
    assert event["type"] == "credits.granted" and event["account_id"] == ACCOUNT and event["sequence"] == 1
    assert event["data"]["billing"]["account_id"] == ACCOUNT
    assert row(seeded, delivery_id).status == DeliveryStatus.DELIVERED
    # a second task for the same row finds it done and sends nothing
    assert attempt(seeded, settings, delivery_id, now).outcome == delivery.ALREADY_DONE
    assert sum(receiver.accepted.values()) == 1


def test_a_wrong_secret_fails_verification(seeded, settings, receiver, now):
    register(seeded, receiver.url, now)
    receiver.secrets = [endpoints.signing.new_secret()]
    (delivery_id,) = emit(seeded, now)

    assert attempt(seeded, settings, delivery_id, now).outcome == delivery.RETRY
    assert receiver.refused_signatures == 1


def test_a_500_is_retried_with_backoff_until_a_2xx(seeded, settings, receiver, now):
    receiver.secrets = [register(seeded, receiver.url, now).secret]
    (delivery_id,) = emit(seeded, now)
    receiver.fail_next(2)

    first = attempt(seeded, settings, delivery_id, now)
    assert first.outcome == delivery.RETRY and first.status_code == 500
    waiting = row(seeded, delivery_id)
    assert waiting.status == DeliveryStatus.PENDING and waiting.last_error == "HTTP 500"
    assert waiting.next_attempt_at > now
    # a duplicate message before the retry is due sends nothing
    assert attempt(seeded, settings, delivery_id, now).outcome == delivery.NOT_DUE

    second = attempt(seeded, settings, delivery_id, waiting.next_attempt_at)
    third = attempt(seeded, settings, delivery_id, row(seeded, delivery_id).next_attempt_at)

    assert (second.outcome, third.outcome) == (delivery.RETRY, delivery.DELIVERED)
    assert row(seeded, delivery_id).attempts == 3
    assert list(receiver.accepted.values()) == [1]


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap(settings):
    delays = [delivery.backoff_seconds(n, settings) for n in range(1, 30)]

    assert settings.outgoing_retry_base_seconds / 2 <= delays[0] <= settings.outgoing_retry_base_seconds
    assert max(delays) <= settings.outgoing_retry_max_seconds
    assert delays[-1] >= settings.outgoing_retry_max_seconds / 2


def test_the_window_ends_in_failed_with_the_last_error(seeded, settings, receiver, now):
    receiver.secrets = [register(seeded, receiver.url, now).secret]
    (delivery_id,) = emit(seeded, now)
    receiver.fail_next(100)

    assert attempt(seeded, settings, delivery_id, now).outcome == delivery.RETRY
    later = now + timedelta(seconds=settings.outgoing_retry_window_seconds)
    result = attempt(seeded, settings, delivery_id, later)

    assert result.outcome == delivery.FAILED
    failed = row(seeded, delivery_id)
    assert failed.status == DeliveryStatus.FAILED and failed.last_error == "HTTP 500"
    with seeded.begin() as session:
        assert delivery.list_deliveries(session, status="failed")[0]["id"] == delivery_id
        assert delivery.retry(session, delivery_id, at=now)  # an operator's retry: a new window
    receiver.fail_next(0)
    assert attempt(seeded, settings, delivery_id, now).outcome == delivery.DELIVERED


def test_after_a_rotation_both_secrets_sign_through_the_overlap(seeded, settings, receiver, now):
    old = register(seeded, receiver.url, now)
    with seeded.begin() as session:  # rotated 59 minutes ago with an hour's overlap
        new = endpoints.rotate_secret(session, old.endpoint.id, overlap_seconds=3600, at=now - timedelta(minutes=59))
    receiver.secrets = [old.secret, new]  # each must verify the delivery on its own
    (during,) = emit(seeded, now, key="during")
    (after,) = emit(seeded, now, key="after")

    assert attempt(seeded, settings, during, now).outcome == delivery.DELIVERED
    with seeded.begin() as session:  # the overlap is over
        session.get(OutgoingEndpoint, old.endpoint.id).previous_secret_expires_at = now - timedelta(seconds=1)
    assert attempt(seeded, settings, after, now).outcome == delivery.RETRY
    assert receiver.refused_signatures == 1
    receiver.secrets = [new]
    retry_at = row(seeded, after).next_attempt_at
    assert attempt(seeded, settings, after, retry_at).outcome == delivery.DELIVERED


def test_redirects_are_not_followed(seeded, settings, now):
    elsewhere = FakeServer().start()
    redirecting = FakeServer()
    redirecting.route("POST", "/hook")(lambda _r, _m: (302, {}))
    redirecting.start()
    try:
        register(seeded, redirecting.url + "/hook", now)
        (delivery_id,) = emit(seeded, now)

        result = attempt(seeded, settings, delivery_id, now)

        assert (result.outcome, result.status_code) == (delivery.RETRY, 302)
        assert elsewhere.requests == []
    finally:
        redirecting.stop()
        elsewhere.stop()


def test_a_private_address_is_refused_at_registration_unless_allowed(seeded, now):
    with seeded.begin() as session, pytest.raises(endpoints.EndpointError, match="private"):
        endpoints.add_endpoint(session, "http://127.0.0.1:9/hook", at=now)
    with seeded.begin() as session, pytest.raises(endpoints.EndpointError, match="http or https"):
        endpoints.add_endpoint(session, "file:///etc/passwd", allow_private=True, at=now)


def test_the_address_is_checked_again_on_every_connection(seeded, settings, receiver, now):
    receiver.secrets = [register(seeded, receiver.url, now).secret]
    (delivery_id,) = emit(seeded, now)
    with seeded.begin() as session:  # what a DNS answer changing after registration amounts to
        session.scalars(select(OutgoingEndpoint)).one().allow_private = False

    result = attempt(seeded, settings, delivery_id, now)

    assert result.outcome == delivery.RETRY and result.error.startswith("refused:")
    assert receiver.server.requests == []


def test_ipv4_mapped_and_reserved_addresses_are_not_public():
    assert not network.is_public("::ffff:10.0.0.1")
    assert not network.is_public("169.254.169.254")
    assert not network.is_public("100.64.0.1")
    assert network.is_public("93.184.215.14")


def test_a_disabled_endpoint_gets_no_new_deliveries_and_its_pending_ones_wait(seeded, settings, receiver, now):
    created = register(seeded, receiver.url, now)
    receiver.secrets = [created.secret]
    (waiting,) = emit(seeded, now, key="before")
    with seeded.begin() as session:
        endpoints.set_enabled(session, created.endpoint.id, False, at=now)

    assert emit(seeded, now, key="while-disabled") == []
    assert attempt(seeded, settings, waiting, now).outcome == delivery.PAUSED
    with seeded.begin() as session:
        assert delivery.due_for_sweep(session, now=now + timedelta(hours=1), grace_seconds=60) == []
        endpoints.set_enabled(session, created.endpoint.id, True, at=now)
        assert delivery.due_for_sweep(session, now=now + timedelta(hours=1), grace_seconds=60) == [waiting]
    assert attempt(seeded, settings, waiting, now).outcome == delivery.DELIVERED


def test_an_endpoint_gets_only_the_types_it_asked_for(seeded, now):
    register(seeded, "http://127.0.0.1:9/only-low", now, event_types=["credits.low"])

    assert emit(seeded, now, key="g", type_="credits.granted") == []
    assert len(emit(seeded, now, key="l", type_="credits.low")) == 1
