"""The worker, beat and Flower entry point: `celery -A worker.main worker`."""

import gc

from celery.signals import worker_process_init

from shared.config import Settings
from shared.logs import configure_logging
from worker.celery_app import make_celery

configure_logging()
celery = make_celery(Settings.from_env())


@worker_process_init.connect
def _freeze_what_is_loaded(**_kwargs) -> None:
    """A pool process starts with the app, the tasks and their libraries loaded, for good: keep
    them out of the collector's full passes, which would walk every one of those objects."""
    gc.freeze()
