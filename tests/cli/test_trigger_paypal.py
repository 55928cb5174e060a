"""`billhook dev trigger paypal-*`: PayPal deliveries signed with billhook's development
certificate, trusted only in development mode."""

from __future__ import annotations

import json

import pytest
import requests

from cli import paypal_scenarios
from tests.cli.conftest import LiveWeb

DEV_CONFIG = '{"verification": "development"}'


@pytest.fixture
def paypal_cli(billhook):
    billhook("seed")
    billhook("providers", "set", "paypal", "--webhook-id", "WH-DEV", "--config", DEV_CONFIG, "--active")
    return billhook


@pytest.fixture
def dev_web(paypal_cli):
    paypal_cli.env["BILLHOOK_DEV_MODE"] = "1"
    web = LiveWeb(paypal_cli)
    yield web
    web.close()


def trigger(web, scenario: str, *args: str) -> list[str]:
    result = web.cli("dev", "trigger", scenario, "--account", "acct_pp", "--url", web.url, *args)
    assert all(outcome == "done" for outcome in web.work())
    return result.output.splitlines()


def account(web) -> dict:
    return json.loads(web.cli("accounts", "show", "acct_pp", "--json").output)


def test_paypal_capture_grants_the_package_credits(dev_web):
    lines = trigger(dev_web, "paypal-capture", "--package", "value")

    assert [line.split()[:2] for line in lines[:2]] == [
        ["200", "CHECKOUT.ORDER.APPROVED"],
        ["200", "PAYMENT.CAPTURE.COMPLETED"],
    ]
    assert account(dev_web)["balance"] == 2_000


def test_paypal_subscribe_then_renew_grants_one_period_each(dev_web):
    trigger(dev_web, "paypal-subscribe", "--plan", "growth")
    shown = account(dev_web)
    assert (shown["balance"], shown["subscription"]["provider"], shown["subscription"]["plan_id"]) == (
        12_000,
        "paypal",
        "growth",
    )

    trigger(dev_web, "paypal-renew")

    assert account(dev_web)["balance"] == 24_000


def test_readyz_names_the_development_mode(dev_web):
    assert requests.get(f"{dev_web.url}/readyz", timeout=5).json()["mode"] == "development"


def test_without_dev_mode_a_development_signed_delivery_is_refused(paypal_cli):
    web = LiveWeb(paypal_cli)  # BILLHOOK_DEV_MODE unset
    try:
        result = paypal_cli("dev", "trigger", "paypal-capture", "--url", web.url, ok=False)
        assert result.exit_code == 1 and result.output.startswith("503  CHECKOUT.ORDER.APPROVED")
        assert web.enqueued == []
        assert "mode" not in requests.get(f"{web.url}/readyz", timeout=5).json()
    finally:
        web.close()


def test_offline_verification_never_trusts_the_development_certificate(dev_web):
    dev_web.cli("providers", "set", "paypal", "--config", '{"verification": "offline"}')
    evt = paypal_scenarios.capture("acct_pp", "a@example.com", "pro", 5999, "usd")[0]
    body, headers = paypal_scenarios.signed(evt, webhook_id="WH-DEV", var_dir=dev_web.cli.settings.var_dir)

    answer = requests.post(f"{dev_web.url}/webhooks/paypal", data=body, headers=headers, timeout=5)

    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "untrusted_cert_url")
    assert dev_web.enqueued == []


def test_a_tampered_development_delivery_is_refused(dev_web):
    evt = paypal_scenarios.capture("acct_pp", "a@example.com", "pro", 5999, "usd")[0]
    body, headers = paypal_scenarios.signed(evt, webhook_id="WH-DEV", var_dir=dev_web.cli.settings.var_dir)

    tampered = body.replace(b"59.99", b"0.01")
    answer = requests.post(f"{dev_web.url}/webhooks/paypal", data=tampered, headers=headers, timeout=5)

    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_signature")


def test_paypal_trigger_without_development_verification_says_how_to_set_it(billhook):
    billhook("seed")

    result = billhook("dev", "trigger", "paypal-capture", ok=False)

    assert result.exit_code == 1 and '{"verification": "development"}' in result.output
    assert "BILLHOOK_DEV_MODE=1" in result.output


def test_the_logs_name_the_development_mode_at_start_and_on_each_delivery(paypal_cli, caplog):
    paypal_cli.env["BILLHOOK_DEV_MODE"] = "1"
    caplog.set_level("INFO", logger="billhook.web")
    web = LiveWeb(paypal_cli)
    try:
        assert any("DEVELOPMENT MODE (BILLHOOK_DEV_MODE=1)" in r.getMessage() for r in caplog.records)
        paypal_cli("dev", "trigger", "paypal-capture", "--url", web.url)
    finally:
        web.close()
    deliveries = [json.loads(r.getMessage()) for r in caplog.records if '"path":"/webhooks/paypal"' in r.getMessage()]
    assert len(deliveries) == 2 and all(d["verification"] == "development" for d in deliveries)
