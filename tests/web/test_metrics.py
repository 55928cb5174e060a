"""GET /metrics after some traffic, and the one JSON log line per request."""

from __future__ import annotations

import json
import logging

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TEST_WEBHOOK_SECRET
from tests.factories import stripe_events as se


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def post(client, evt: dict, secret: str = TEST_WEBHOOK_SECRET):
    body, headers = se.signed(evt, secret)
    return client.post("/webhooks/stripe", data=body, headers=headers)


def invoice_event() -> dict:
    return se.event(
        "invoice.paid",
        se.invoice(
            subscription_id=se.unique("sub"),
            customer=se.unique("cus"),
            price_id="price_x",
            amount=100,
            period_start=1_700_000_000,
            period_end=1_702_592_000,
        ),
    )


def test_webhook_counts_by_outcome_intake_latency_and_inbox_backlog(client):
    before = scrape(client)
    evt = invoice_event()
    assert post(client, evt).status_code == 200
    assert post(client, evt).status_code == 200  # a redelivery
    assert post(client, invoice_event(), secret="whsec_wrong").status_code == 400
    after = scrape(client)

    received = "billhook_webhooks_received_total"
    for labels, delta in (
        ({"provider": "stripe", "type": "invoice.paid", "outcome": "accepted"}, 1),
        ({"provider": "stripe", "type": "invoice.paid", "outcome": "duplicate"}, 1),
        ({"provider": "stripe", "type": "unknown", "outcome": "rejected"}, 1),
    ):
        assert value(after, received, **labels) - value(before, received, **labels) == delta, labels
    count = "billhook_webhook_intake_seconds_count"
    assert value(after, count, provider="stripe") - value(before, count, provider="stripe") == 3
    # Read from the store at scrape time: one event waits.
    assert value(after, "billhook_inbox_events", status="received") == 1
    assert value(after, "billhook_inbox_events", status="succeeded") == 0
    assert value(after, "billhook_inbox_oldest_unprocessed_age_seconds") >= 0
    assert value(after, "billhook_scrape_source_up", source="database") == 1
    # The unit settings' broker does not answer: said, not a failed scrape.
    assert value(after, "billhook_scrape_source_up", source="broker") == 0
    assert ("billhook_email_outbox", (("status", "pending"),)) in after


def test_every_request_logs_one_json_line_without_its_query_string(client, caplog):
    caplog.set_level(logging.INFO, logger="billhook.web.requests")
    client.get("/healthz?token=secret-token-value")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "billhook.web.requests"]
    assert len(lines) == 1
    line = lines[0]
    assert line["msg"] == "request"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/healthz", 200)
    assert isinstance(line["duration_ms"], float)
    assert "secret-token-value" not in caplog.text


def test_with_a_metrics_token_the_scrape_needs_it_as_a_bearer_token(settings, seeded, enqueued):
    from web import create_app

    client = create_app(settings.with_overrides(metrics_token="scrape-secret"), enqueue=enqueued).test_client()

    missing = client.get("/metrics")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer not-it"})
    right = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})

    assert (missing.status_code, missing.json["error"]["code"]) == (401, "missing_token")
    assert (wrong.status_code, wrong.json["error"]["code"]) == (401, "invalid_token")
    assert right.status_code == 200
    assert "billhook_inbox_events" in right.get_data(as_text=True)


def test_with_a_multiprocess_directory_only_billhooks_series_are_exposed(tmp_path):
    """Another process writing into the directory (Flower did) adds nothing to billhook's /metrics."""
    import subprocess
    import sys

    from shared.metrics import exposition

    writer = (
        "from prometheus_client import Counter\n"
        "Counter('flower_events', 'Flower own', ['worker']).labels('w1').inc()\n"
        "Counter('billhook_emails', 'billhook', ['outcome']).labels('sent').inc(3)\n"
    )
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", writer], env=env, check=True, timeout=60)

    text = exposition([], multiproc_dir=str(tmp_path)).decode()

    assert 'billhook_emails_total{outcome="sent"} 3.0' in text
    assert "flower_" not in text


def test_a_billing_api_request_logs_one_line_naming_its_account(client, settings, caplog):
    from web.auth import issue_token

    caplog.set_level(logging.INFO)
    token = issue_token(settings, "acct_one_line")

    assert client.get("/api/v1/billing/account", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name.startswith("billhook.web")]
    assert len(lines) == 1
    line = lines[0]
    assert (line["path"], line["status"], line["account"]) == ("/api/v1/billing/account", 200, "acct_one_line")
    assert token not in caplog.text
