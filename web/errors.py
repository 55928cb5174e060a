"""JSON errors: `{"error": {"code": ..., "message": ...}}`. Bad input is a 4xx; a 500 is a bug."""

from __future__ import annotations

import logging
import sqlite3

import psycopg
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


# The drivers' own "cannot connect / connection lost" class, for an error raised where nothing
# wrapped it in SQLAlchemy's (a pool checkout outside an Engine.connect()).
CANNOT_CONNECT = (psycopg.OperationalError, sqlite3.OperationalError)


def _schema_missing(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == UNDEFINED_TABLE


def store_unavailable(exc: BaseException) -> bool:
    """The store cannot take requests now (down, restarting, not migrated): a 503, which providers
    retry. Every other database error is a 500."""
    if isinstance(exc, CANNOT_CONNECT):
        return True
    return isinstance(exc, DBAPIError) and (
        isinstance(exc, OperationalError) or exc.connection_invalidated or _schema_missing(exc)
    )


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return json_error(exc.status, exc.code, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if exc.code is not None and exc.code < 400:  # routing's redirects (a missing trailing slash)
            return exc
        code = {413: "payload_too_large"}.get(exc.code, (exc.name or "error").lower().replace(" ", "_"))
        response, status = json_error(exc.code or 500, code, exc.description or exc.name)
        # The exception's own headers say more than its body (a 405's Allow); its Content-Type
        # is for the HTML page it would have rendered.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, status

    @app.errorhandler(OperationalError)
    def _database_down(exc: OperationalError):
        log.error("database unavailable: %s", type(exc.orig).__name__ if exc.orig else exc)
        return json_error(503, "store_unavailable", "the store is unavailable; retry later")

    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError):
        if store_unavailable(exc):
            log.error("database unavailable: %s", type(exc.orig).__name__ if exc.orig else exc)
            return json_error(503, "store_unavailable", "the store is unavailable; retry later")
        log.exception("database error")
        return json_error(500, "internal_error", "internal error")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if store_unavailable(exc):  # a DBAPI error no SQLAlchemy layer wrapped
            log.error("database unavailable: %s", type(exc).__name__)
            return json_error(503, "store_unavailable", "the store is unavailable; retry later")
        log.exception("unhandled error")
        return json_error(500, "internal_error", "internal error")
