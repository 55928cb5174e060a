"""JSON errors: `{"error": {"code": ..., "message": ...}}`. Bad input is a 4xx; a 500 is a bug."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger("billhook.web")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def json_error(status: int, code: str, message: str):
    return jsonify({"error": {"code": code, "message": message}}), status


# PostgreSQL's undefined_table: the store is up but not migrated (or being restored). SQLite
# reports the same as an OperationalError; both answer 503, so the provider retries.
UNDEFINED_TABLE = "42P01"


def _schema_missing(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == UNDEFINED_TABLE


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return json_error(exc.status, exc.code, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = {413: "payload_too_large"}.get(exc.code, (exc.name or "error").lower().replace(" ", "_"))
        return json_error(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(OperationalError)
    def _database_down(exc: OperationalError):
        log.error("database unavailable: %s", type(exc.orig).__name__ if exc.orig else exc)
        return json_error(503, "store_unavailable", "the store is unavailable; retry later")

    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError):
        if exc.connection_invalidated or _schema_missing(exc):
            log.error("database unavailable: %s", type(exc.orig).__name__ if exc.orig else exc)
            return json_error(503, "store_unavailable", "the store is unavailable; retry later")
        log.exception("database error")
        return json_error(500, "internal_error", "internal error")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return json_error(500, "internal_error", "internal error")
