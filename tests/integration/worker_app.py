"""The Celery app a test worker subprocess runs: `celery -A tests.integration.worker_app worker`.

The same app as production (`worker.main`), plus one signal that tells the test the worker is
consuming, by writing the file named in BILLHOOK_TEST_READY_FILE, and one handler for an event type
no provider sends, whose run kills its process (a poison event).
"""

import ctypes
import os
import signal
import sys
from pathlib import Path

from celery.signals import worker_ready
from sqlalchemy import insert

from shared.config import Settings
from shared.inbox.registry import handles
from shared.logs import configure_logging
from shared.models import Account
from worker.celery_app import make_celery

PROCESS_KILLER = "billhook_test.process_killer"
# Its handler writes the event's `email` in an INSERT that fails a NOT NULL constraint (a bug in a
# handler, as the store reports it: PostgreSQL's DETAIL quotes the failing row).
FAILING_INSERT = "billhook_test.failing_insert"


def _die_with_the_test_run() -> None:
    """A test worker lives in a session of its own (so it can be SIGKILLed as a group): have the
    kernel kill it if the pytest process that started it dies without its teardown."""
    if sys.platform.startswith("linux") and os.environ.get("BILLHOOK_TEST_READY_FILE"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


_die_with_the_test_run()
configure_logging()
celery = make_celery(Settings.from_env())


@handles("stripe", PROCESS_KILLER)
def _kill_the_process(session, event, now, outcome) -> None:
    """Stands in for an event whose handling takes its process down (out of memory, a crash in C)."""
    os._exit(1)


@handles("stripe", FAILING_INSERT)
def _insert_a_row_the_store_refuses(session, event, now, outcome) -> None:
    session.execute(insert(Account).values(id=None, email=event.payload["data"]["object"]["email"]))


@worker_ready.connect
def _announce_ready(**_kwargs) -> None:
    path = os.environ.get("BILLHOOK_TEST_READY_FILE")
    if path:
        Path(path).write_text(str(os.getpid()))
