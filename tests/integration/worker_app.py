"""The Celery app a test worker subprocess runs: `celery -A tests.integration.worker_app worker`.

The same app as production (`worker.main`), plus one signal that tells the test the worker is
consuming, by writing the file named in BILLHOOK_TEST_READY_FILE.
"""

import os
from pathlib import Path

from celery.signals import worker_ready

from shared.config import Settings
from shared.logs import configure_logging
from worker.celery_app import make_celery

configure_logging()
celery = make_celery(Settings.from_env())


@worker_ready.connect
def _announce_ready(**_kwargs) -> None:
    path = os.environ.get("BILLHOOK_TEST_READY_FILE")
    if path:
        Path(path).write_text(str(os.getpid()))
