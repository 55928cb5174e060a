"""Structured logs: one JSON line per request and per task. Callers pass only ids, types, outcomes
and durations; payloads and secrets are never logged."""

from __future__ import annotations

import json
import logging
import sys


def log_line(logger: logging.Logger, message: str, level: int = logging.INFO, **fields) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, json.dumps({"msg": message, **fields}, default=str, separators=(",", ":")))


def configure_logging(level: int = logging.INFO) -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_billhook", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        handler._billhook = True
        root.addHandler(handler)
    root.setLevel(level)
