from __future__ import annotations

import json

from shared.billing.accounts import ensure_account
from shared.email import outbox
from shared.outcome import Outcome


def test_preview_writes_the_html_with_sample_data(billhook, tmp_path):
    out = tmp_path / "reset.html"
    result = billhook("emails", "preview", "password_reset", "--out", str(out))
    assert "Subject: Reset your billhook password" in result.output
    html = out.read_text()
    assert html.startswith("<!doctype html>") and "https://app.example.com/reset?token=sample" in html


def test_preview_text_defaults_to_var_and_takes_context(billhook):
    result = billhook("emails", "preview", "low_credits", "--text", "--context", '{"balance": 7}')
    path = billhook.settings.var_dir / "email-previews" / "low_credits.txt"
    assert str(path) in result.output
    assert "7 credits left" in path.read_text()


def test_preview_of_an_unknown_template_is_refused(billhook):
    result = billhook("emails", "preview", "nope", ok=False)
    assert result.exit_code == 2 and "Invalid value" in result.output


def test_preview_with_bad_context_json_is_refused(billhook):
    result = billhook("emails", "preview", "welcome", "--context", "{nope", ok=False)
    assert result.exit_code == 2 and "not JSON" in result.output


def _queue_failed(billhook) -> int:
    with billhook.session_factory.begin() as session:
        ensure_account(session, "acct_1", email="ada@example.com")
        outcome = Outcome()
        outbox.queue_email(
            session,
            outcome,
            account_id="acct_1",
            recipient="ada@example.com",
            template="welcome",
            context={},
            idempotency_key="w-1",
        )
        [row_id] = outcome.emails
        row = outbox.lock_row(session, row_id)
        row.status, row.last_error = outbox.FAILED, "resend: 422 validation_error: bad"
    return row_id


def test_list_shows_failed_rows_without_their_contents(billhook):
    row_id = _queue_failed(billhook)
    [shown] = json.loads(billhook("emails", "list").output)
    assert (shown["id"], shown["status"], shown["template"]) == (row_id, "failed", "welcome")
    assert "ada@example.com" not in json.dumps(shown)


def test_retry_makes_a_failed_row_pending_for_the_sweep_when_the_broker_is_down(billhook):
    row_id = _queue_failed(billhook)
    result = billhook("emails", "retry", str(row_id))
    assert "the sweep will send it" in result.output
    with billhook.session_factory() as session:
        assert outbox.lock_row(session, row_id).status == outbox.PENDING


def test_retry_publishes_the_send_task(billhook, broker):
    row_id = _queue_failed(billhook)
    assert "send task published" in billhook("emails", "retry", str(row_id)).output
    assert broker.queued_task_args() == [("billhook.send_email", [row_id])]
