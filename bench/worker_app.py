"""The Celery app the harnesses' workers run: `celery -A bench.worker_app worker`.

The production app (`worker.celery_app.make_celery` on `Settings.from_env()`), plus:
- `bench.noop`, the baseline task the processing benchmark compares billhook's task with;
- the short timeouts a bounded chaos run needs, from HARNESS_* variables (the production defaults
  of an hour's visibility timeout and backoff would outlast the run);
- a file written when the worker consumes, so the harness waits on that instead of sleeping.
"""

import os
from pathlib import Path

from celery.signals import worker_ready

from shared.config import Settings
from shared.logs import configure_logging
from worker.celery_app import make_celery

NOOP = "bench.noop"
_OVERRIDES = {
    "HARNESS_VISIBILITY_TIMEOUT": "broker_visibility_timeout_seconds",
    "HARNESS_BACKOFF_MAX": "retry_backoff_max_seconds",
    "HARNESS_GRACE": "sweep_grace_seconds",
}


def _settings() -> Settings:
    changes = {field: int(os.environ[var]) for var, field in _OVERRIDES.items() if os.environ.get(var)}
    return Settings.from_env().with_overrides(**changes)


configure_logging()
celery = make_celery(_settings())


@celery.task(name=NOOP, acks_late=True, ignore_result=True)
def noop(event_pk: int) -> None:
    """Takes an id like billhook.process_event and does nothing with it."""


@worker_ready.connect
def _announce_ready(**_kwargs) -> None:
    path = os.environ.get("HARNESS_READY_FILE")
    if path:
        Path(path).write_text(str(os.getpid()))
