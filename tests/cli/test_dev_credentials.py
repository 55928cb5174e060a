"""`billhook dev credentials`: the development credentials, found and usable."""

from __future__ import annotations

import requests


def test_the_printed_service_token_opens_the_internal_api(live_web):
    output = live_web.cli("dev", "credentials").output
    token = live_web.cli("dev", "credentials", "--token").output.strip()

    assert f"service token  {token}" in output
    url = f"{live_web.url}/api/v1/internal/credits/debit"
    body = {"account_id": "acct_nobody", "amount": 1, "idempotency_key": "k1"}
    assert requests.post(url, json=body, headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
    answer = requests.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "account_not_found")


def test_credentials_say_where_the_jwt_secret_is_and_that_the_ops_login_is_unset(billhook):
    output = billhook("dev", "credentials").output

    assert f"JWT secret     in {billhook.settings.var_dir / '.jwt_secret'}" in output
    assert (billhook.settings.var_dir / ".jwt_secret").read_text().strip() not in output
    assert "ops login      not set: export FLOWER_BASIC_AUTH=ops:<password>" in output


def test_credentials_from_the_environment_are_not_printed(billhook):
    billhook.env.update(
        BILLHOOK_SERVICE_TOKEN="svc-from-env-0123456789", BILLHOOK_JWT_SECRET="jwt-from-env-0123456789abcdef0123"
    )
    billhook.env["FLOWER_BASIC_AUTH"] = "ops:s3cret-password"

    output = billhook("dev", "credentials").output

    assert "from BILLHOOK_SERVICE_TOKEN (not shown)" in output and "svc-from-env" not in output
    assert "from BILLHOOK_JWT_SECRET (not shown)" in output and "jwt-from-env" not in output
    assert "users: ops" in output and "s3cret" not in output
