"""Settings from the environment, with embedded defaults that work on a fresh machine."""

from __future__ import annotations

import stat

from shared.config import EMBEDDED_REDIS_PORT, Settings


def test_with_no_env_vars_the_store_is_sqlite_under_var_and_the_broker_embedded(tmp_path):
    settings = Settings.from_env({"BILLHOOK_VAR_DIR": str(tmp_path)})

    assert settings.database_url == f"sqlite:///{tmp_path / 'billhook.db'}"
    assert settings.is_sqlite
    assert settings.redis_url == f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"
    assert settings.redis_embedded is True
    assert settings.queue_name == "billhook"
    assert settings.webhook_tolerance_seconds == 300
    assert settings.max_webhook_bytes == 1024 * 1024
    assert settings.retry_backoff_max_seconds < settings.broker_visibility_timeout_seconds


def test_dev_secrets_are_generated_once_and_kept_private_under_var(tmp_path):
    first = Settings.from_env({"BILLHOOK_VAR_DIR": str(tmp_path)})
    second = Settings.from_env({"BILLHOOK_VAR_DIR": str(tmp_path)})

    assert first.jwt_secret and first.service_token
    assert (second.jwt_secret, second.service_token) == (first.jwt_secret, first.service_token)
    assert first.jwt_secret != first.service_token
    assert stat.S_IMODE((tmp_path / ".jwt_secret").stat().st_mode) == 0o600


def test_env_vars_point_at_real_services(tmp_path):
    settings = Settings.from_env(
        {
            "BILLHOOK_VAR_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://u:p@db.internal:5432/billing",
            "REDIS_URL": "redis://cache.internal:6379/3",
            "BILLHOOK_JWT_SECRET": "from-env",
            "BILLHOOK_QUEUE": "billhook-blue",
        }
    )

    assert settings.database_url == "postgresql+psycopg://u:p@db.internal:5432/billing"
    assert not settings.is_sqlite
    assert (settings.redis_url, settings.redis_embedded) == ("redis://cache.internal:6379/3", False)
    assert (settings.jwt_secret, settings.queue_name) == ("from-env", "billhook-blue")
    assert not (tmp_path / ".jwt_secret").exists()


def test_postgresql_urls_use_psycopg_3(tmp_path):
    env = {"BILLHOOK_VAR_DIR": str(tmp_path), "DATABASE_URL": "postgresql://postgres@127.0.0.1/test"}

    assert Settings.from_env(env).database_url == "postgresql+psycopg://postgres@127.0.0.1/test"


def test_with_overrides_returns_changed_settings_and_leaves_the_original(settings):
    changed = settings.with_overrides(queue_name="other")

    assert (changed.queue_name, settings.queue_name) == ("other", "billhook")
