"""What ops do with the inbox: replay."""

from __future__ import annotations

from datetime import timedelta

from shared import event_ops, inbox
from shared.models import WebhookEvent
from tests.factories.inbox import record

GRACE = 60


def test_replay_makes_a_failed_event_received_again(session, now):
    pk = record(session, now).id
    inbox.record_failure(session, pk, "PermanentError: nope", at=now, retry_at=None)

    assert event_ops.reset_for_replay(session, pk, at=now + timedelta(hours=1)) is True

    event = session.get(WebhookEvent, pk)
    assert (event.status, event.next_attempt_at, event.attempts) == ("received", None, 1)


def test_replay_refuses_done_and_missing_events(session, now):
    pk = record(session, now).id
    inbox.mark_succeeded(session, session.get(WebhookEvent, pk), at=now)
    ignored_pk = record(session, now, handled=False).id

    assert event_ops.reset_for_replay(session, pk, at=now) is False
    assert event_ops.reset_for_replay(session, ignored_pk, at=now) is False
    assert event_ops.reset_for_replay(session, 999_999, at=now) is False
    assert session.get(WebhookEvent, pk).status == "succeeded"
