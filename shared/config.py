"""One settings object, built from environment variables with embedded defaults.

Environment variables say only where the database and broker are and hold billhook's own
secrets; provider credentials live in the integration providers table.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_REDIS_PORT = 6390


def _default_var_dir() -> Path:
    return Path(os.environ.get("BILLHOOK_VAR_DIR", PROJECT_ROOT / "var"))


def _dev_secret(var_dir: Path, name: str) -> str:
    """A random secret kept under var/ so a fresh machine works without configuration."""
    path = var_dir / f".{name}"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    path.write_text(value)
    path.chmod(0o600)
    return value


WEB_THREADS_ENV = "BILLHOOK_WEB_THREADS"


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    var_dir: Path
    redis_embedded: bool = False
    # billhook's own auth
    jwt_secret: str = ""
    jwt_audience: str = "billhook"
    service_token: str = ""
    # frontend, for checkout success/cancel URLs
    frontend_url: str = "http://localhost:3000"
    # intake
    webhook_tolerance_seconds: int = 300
    # How far ahead of this clock a signature's timestamp may be (the sender's clock runs fast).
    webhook_future_tolerance_seconds: int = 300
    max_webhook_bytes: int = 1024 * 1024
    provider_cache_seconds: float = 30.0
    # Request threads of a web process (gunicorn's `threads`, web/gunicorn_conf.py): the intake's
    # connection pool holds as many, so no webhook opens a database connection of its own.
    web_threads: int = 16
    # worker
    task_max_retries: int = 8
    # An event whose dependency billhook has not seen yet (a refund before its payment) keeps
    # retrying past task_max_retries while that dependency may still come: Stripe retries a
    # failed delivery for up to 3 days.
    dependency_wait_seconds: int = 3 * 24 * 3600
    # Runs of one task message that may die with their worker process before it is given up.
    task_max_interrupted_runs: int = 3
    retry_backoff_max_seconds: int = 600
    broker_visibility_timeout_seconds: int = 3600
    sweep_interval_seconds: float = 30.0
    sweep_grace_seconds: int = 60
    # reconciliation with Stripe's Events API (beat): how often, and how far back each run looks
    reconcile_interval_seconds: float = 3600.0
    reconcile_lookback_seconds: int = 24 * 3600
    queue_name: str = "billhook"
    # outgoing webhooks: deliveries run on a queue of their own (a slow endpoint delays only them)
    outgoing_queue_name: str = ""  # empty: `<queue_name>.outgoing` (see outgoing_queue)
    outgoing_timeout_seconds: float = 10.0
    # Exponential backoff with jitter from the first delay up to the cap, for the whole window.
    outgoing_retry_base_seconds: float = 5.0
    outgoing_retry_max_seconds: float = 6 * 3600.0
    outgoing_retry_window_seconds: int = 3 * 24 * 3600
    # How long the old secret keeps signing after a rotation, unless the rotation says otherwise.
    outgoing_secret_overlap_seconds: int = 24 * 3600
    # provider API base URLs: overridden in tests by local stand-ins
    stripe_api_base: str | None = None
    paypal_api_base: str | None = None
    resend_api_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    flower_basic_auth: str | None = None
    # When set, GET /metrics asks for `Authorization: Bearer <token>` (Prometheus' `authorization`).
    metrics_token: str = ""
    # Development mode: trusts billhook's own PayPal development certificate where the provider's
    # config asks for it (`billhook dev trigger paypal-*`). Never on in production.
    dev_mode: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def outgoing_queue(self) -> str:
        return self.outgoing_queue_name or f"{self.queue_name}.outgoing"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def with_overrides(self, **changes) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        var_dir = Path(env.get("BILLHOOK_VAR_DIR", _default_var_dir()))
        database_url = env.get("DATABASE_URL") or f"sqlite:///{var_dir / 'billhook.db'}"
        redis_url = env.get("REDIS_URL") or f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"
        return cls(
            database_url=_normalise_database_url(database_url),
            redis_url=redis_url,
            var_dir=var_dir,
            redis_embedded=not env.get("REDIS_URL"),
            jwt_secret=env.get("BILLHOOK_JWT_SECRET") or _dev_secret(var_dir, "jwt_secret"),
            jwt_audience=env.get("BILLHOOK_JWT_AUDIENCE", "billhook"),
            service_token=env.get("BILLHOOK_SERVICE_TOKEN") or _dev_secret(var_dir, "service_token"),
            frontend_url=env.get("BILLHOOK_FRONTEND_URL", "http://localhost:3000"),
            queue_name=env.get("BILLHOOK_QUEUE", "billhook"),
            outgoing_queue_name=env.get("BILLHOOK_OUTGOING_QUEUE", ""),
            outgoing_timeout_seconds=float(env.get("BILLHOOK_OUTGOING_TIMEOUT_SECONDS", "10")),
            outgoing_retry_base_seconds=float(env.get("BILLHOOK_OUTGOING_RETRY_BASE_SECONDS", "5")),
            outgoing_retry_max_seconds=float(env.get("BILLHOOK_OUTGOING_RETRY_MAX_SECONDS", str(6 * 3600))),
            outgoing_retry_window_seconds=int(env.get("BILLHOOK_OUTGOING_RETRY_WINDOW_SECONDS", str(3 * 24 * 3600))),
            outgoing_secret_overlap_seconds=int(env.get("BILLHOOK_OUTGOING_SECRET_OVERLAP_SECONDS", str(24 * 3600))),
            web_threads=int(env.get(WEB_THREADS_ENV, "16")),
            webhook_tolerance_seconds=int(env.get("BILLHOOK_WEBHOOK_TOLERANCE_SECONDS", "300")),
            webhook_future_tolerance_seconds=int(env.get("BILLHOOK_WEBHOOK_FUTURE_TOLERANCE_SECONDS", "300")),
            stripe_api_base=env.get("STRIPE_API_BASE") or None,
            paypal_api_base=env.get("PAYPAL_API_BASE") or None,
            resend_api_url=env.get("RESEND_API_URL") or None,
            smtp_host=env.get("SMTP_HOST") or None,
            smtp_port=int(env.get("SMTP_PORT", "25")),
            flower_basic_auth=env.get("FLOWER_BASIC_AUTH") or None,
            metrics_token=env.get("BILLHOOK_METRICS_TOKEN", ""),
            dev_mode=env.get("BILLHOOK_DEV_MODE") == "1",
            # Retry and sweep timings: the defaults suit production; tests and chaos runs shorten them.
            task_max_retries=int(env.get("BILLHOOK_TASK_MAX_RETRIES", "8")),
            dependency_wait_seconds=int(env.get("BILLHOOK_DEPENDENCY_WAIT_SECONDS", str(3 * 24 * 3600))),
            task_max_interrupted_runs=int(env.get("BILLHOOK_TASK_MAX_INTERRUPTED_RUNS", "3")),
            retry_backoff_max_seconds=int(env.get("BILLHOOK_RETRY_BACKOFF_MAX_SECONDS", "600")),
            sweep_interval_seconds=float(env.get("BILLHOOK_SWEEP_INTERVAL_SECONDS", "30")),
            sweep_grace_seconds=int(env.get("BILLHOOK_SWEEP_GRACE_SECONDS", "60")),
            reconcile_interval_seconds=float(env.get("BILLHOOK_RECONCILE_INTERVAL_SECONDS", "3600")),
            reconcile_lookback_seconds=int(env.get("BILLHOOK_RECONCILE_LOOKBACK_SECONDS", str(24 * 3600))),
        )


def _normalise_database_url(url: str) -> str:
    """Accept the plain postgres:// and postgresql:// forms and use psycopg 3 for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
