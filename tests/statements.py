"""The SQL statements a block of test code sends, read off the engine (`before_cursor_execute`;
an executemany counts once: one round trip)."""

from __future__ import annotations

from sqlalchemy import event


class Statements:
    """`with Statements(session_factory) as seen:` records each statement, whitespace folded and
    lower-cased, in `seen.seen`."""

    def __init__(self, session_factory):
        self.engine = session_factory.kw["bind"]
        self.seen: list[str] = []

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._note)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._note)

    def _note(self, _conn, _cursor, statement, *_args) -> None:
        self.seen.append(" ".join(statement.split()).lower())

    def starting(self, prefix: str) -> list[str]:
        """The statements that begin with `prefix` (lower case, e.g. "update webhook_events")."""
        return [s for s in self.seen if s.startswith(prefix)]

    def reading(self, table: str) -> list[str]:
        """The statements that read `table` (a FROM clause naming it)."""
        return [s for s in self.seen if f"from {table}" in s]
