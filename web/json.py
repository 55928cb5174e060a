"""JSON responses render datetimes as ISO 8601 (Flask's default is the RFC 822 HTTP-date form)."""

from __future__ import annotations

from datetime import date, datetime

from flask.json.provider import DefaultJSONProvider


class IsoJSONProvider(DefaultJSONProvider):
    @staticmethod
    def default(o):
        if isinstance(o, datetime | date):
            return o.isoformat()
        return DefaultJSONProvider.default(o)
