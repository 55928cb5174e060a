"""Structured logs: one JSON line per request and per task. Callers pass only ids, types, outcomes
and durations; payloads and secrets are never logged."""

from __future__ import annotations

import json
import logging
import sys


def log_line(logger: logging.Logger, message: str, level: int = logging.INFO, **fields) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, json.dumps({"msg": message, **fields}, default=str, separators=(",", ":")))


# Libraries whose INFO lines say nothing an operator acts on (alembic announces each of its
# plugins whenever it is imported: 7 lines per worker and beat start).
QUIET_LIBRARIES = ("alembic",)


def quiet_libraries() -> None:
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def configure_logging(level: int = logging.INFO) -> None:
    quiet_libraries()
    root = logging.getLogger()
    if not any(getattr(h, "_billhook", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        handler._billhook = True
        root.addHandler(handler)
    root.setLevel(level)
