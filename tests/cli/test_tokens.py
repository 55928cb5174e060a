from __future__ import annotations

import jwt
from click.testing import CliRunner

from cli.main import main


def test_tokens_create_mints_a_token_the_api_accepts_for_that_account(tmp_path):
    env = {"BILLHOOK_VAR_DIR": str(tmp_path), "BILLHOOK_JWT_SECRET": "cli-secret-0123456789abcdef0123456789"}
    result = CliRunner().invoke(
        main, ["tokens", "create", "--account", "acct_cli", "--email", "ada@example.com", "--ttl", "120"], env=env
    )
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.output.strip(), env["BILLHOOK_JWT_SECRET"], algorithms=["HS256"], audience="billhook")
    assert claims["sub"] == "acct_cli" and claims["email"] == "ada@example.com"
    assert claims["exp"] - claims["iat"] == 120


def test_tokens_create_needs_an_account(tmp_path):
    result = CliRunner().invoke(main, ["tokens", "create"], env={"BILLHOOK_VAR_DIR": str(tmp_path)})
    assert result.exit_code != 0
    assert "--account" in result.output
