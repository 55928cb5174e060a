"""Real database errors, on SQLite and on PostgreSQL, from INSERTs holding an email address."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.db import make_engine

EMAIL = "ada.lovelace@example.com"


def violations(engine) -> dict[str, DBAPIError]:
    """A real error from `engine` for each kind of failed INSERT, an email address among its values
    (PostgreSQL's DETAIL quotes it: the duplicate key, the failing row)."""
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql(
            "CREATE TABLE child (id INTEGER PRIMARY KEY, email VARCHAR(100), name VARCHAR(100) NOT NULL,"
            " n INTEGER CONSTRAINT ck_child_n_positive CHECK (n > 0),"
            " parent_id INTEGER REFERENCES parent (id), CONSTRAINT uq_child_email UNIQUE (email))"
        )
        conn.execute(text("INSERT INTO child (id, email, name, n) VALUES (1, :email, 'Ada', 1)"), {"email": EMAIL})
    inserts = {
        "unique": "INSERT INTO child (id, email, name, n) VALUES (2, :email, 'Ada', 1)",
        "not_null": "INSERT INTO child (id, email, name, n) VALUES (3, :email || '.de', NULL, 1)",
        "check": "INSERT INTO child (id, email, name, n) VALUES (4, :email || '.uk', 'Ada', -1)",
        "foreign_key": "INSERT INTO child (id, email, name, n, parent_id) VALUES (5, :email || '.fr', 'Ada', 1, 99)",
    }
    errors = {}
    for kind, statement in inserts.items():
        with pytest.raises(DBAPIError) as raised, engine.begin() as conn:
            conn.execute(text(statement), {"email": EMAIL})
        errors[kind] = raised.value
    return errors


@pytest.fixture
def pg_database_errors(settings, pg_database) -> dict[str, DBAPIError]:
    engine = make_engine(settings.with_overrides(database_url=pg_database))
    try:
        return violations(engine)
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_errors(request, engine) -> dict[str, DBAPIError]:
    """`violations` on the test's SQLite store, and on a fresh PostgreSQL database."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_database_errors")
    return violations(engine)
