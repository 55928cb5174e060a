"""The engine and the one sessionmaker beside it.

Callers own the session's lifecycle (`with Session.begin() as session:` at the request or task
boundary); data-access code only takes the session as its first argument.

Statements on the per-event and per-request paths are built once at import, with bound
parameters (`bindparam`), and executed with the values: building an ORM statement costs about as
much CPU as running it, and a statement object that is the same every time also keeps
SQLAlchemy's compiled cache warm.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Select, Table, bindparam, create_engine, event, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session, make_transient_to_detached, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from shared.config import Settings


class JsonText(str):
    """A JSON document that is already text (a webhook body as received): a JSON column stores it
    as it is, without parsing and serializing it again."""


def serialize_json(value: Any) -> str:
    return str(value) if isinstance(value, JsonText) else json.dumps(value)


def make_engine(settings: Settings, **kwargs: Any) -> Engine:
    url = settings.database_url
    kwargs.setdefault("json_serializer", serialize_json)
    # A statement's parameters are webhook bodies, addresses and names: SQLAlchemy's errors and
    # logs show the statement without them.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 10)
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    """WAL for concurrent readers, and real transactions for SAVEPOINT (pysqlite's own are off)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        # IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout instead of
        # failing when a read lock is upgraded.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


_HELD = "billhook.held_rows"


def held_in_transaction(session: Session) -> dict:
    """Rows this session's current transaction has locked (SELECT ... FOR UPDATE) or created, by
    key. Both stay as they are until the transaction ends (nobody else may change them), so a
    second lookup in the same transaction can skip the round trip; a new transaction starts with
    an empty record. (No handler uses savepoints, whose rollback would release what they took.)
    Outside a transaction nothing is remembered."""
    return _per_transaction(session, _HELD)


_READ = "billhook.read_rows"


def read_once(session: Session, key: tuple, read: Callable[[], Any]) -> Any:
    """What `read()` returns, read once a transaction: for the catalog (a plan by its Price), which
    most events of a batch look up and only an operator's edit changes. A transaction that began
    before an edit may act on the row it read first, as it would have had it run a moment earlier.
    Outside a transaction, `read()` every time."""
    memo = _per_transaction(session, _READ)
    if key not in memo:
        memo[key] = read()
    return memo[key]


def forget_reads(session: Session) -> None:
    """Drop what `read_once` remembered in this transaction (after an edit of what it read)."""
    _per_transaction(session, _READ).clear()


def _per_transaction(session: Session, name: str) -> dict:
    """A dict in `session.info` under `name` that lives as long as the current transaction."""
    transaction = session.get_transaction()
    if transaction is None:
        return {}
    record = session.info.get(name)
    if record is None or record[0] is not transaction:
        record = (transaction, {})
        session.info[name] = record
    return record[1]


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def flushed_connection(session: Session) -> Connection:
    """The transaction's connection, with the session's pending ORM changes flushed first: a Core
    statement run on it does not autoflush, as the ORM statement it stands for would."""
    if session.autoflush:
        session.flush()
    return session.connection()


def insert_ignore(
    session: Session | Connection, model: type, values: dict[str, Any], conflict: list[str], returning: Any = None
) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING. The unique constraint decides, so two concurrent
    callers cannot both insert.

    Returns True/False (inserted or not), or with `returning` the column's value for a new row
    and None when the row already existed. Runs on a session or, on a hot path that needs no ORM
    (webhook intake), straight on a Core connection.
    """
    # The values go in as execution parameters, not into the statement: the statement is then the
    # same object every time, so SQLAlchemy neither rebuilds nor re-keys it (a payload-sized cache
    # key per insert was a visible share of the intake hot path). A Core statement does not
    # autoflush, so flush pending ORM changes first, as the ORM statement did.
    connection = flushed_connection(session) if isinstance(session, Session) else session
    stmt = _insert_ignore_stmt(connection.dialect.name, model, tuple(conflict), returning)
    result = connection.execute(stmt, values)
    if returning is not None:
        return result.scalar_one_or_none()
    return result.rowcount == 1


def insert_ignore_many(
    session: Session, model: type, rows: list[dict[str, Any]], conflict: list[str], returning: tuple
) -> list[Any]:
    """`insert_ignore` of several rows in one statement (SQLAlchemy's "insertmanyvalues": a
    multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING): the `returning` columns of the rows
    inserted, in no promised order; a row whose key was taken is not among them."""
    if not rows:
        return []
    connection = flushed_connection(session)
    stmt = _insert_ignore_stmt(connection.dialect.name, model, tuple(conflict), returning)
    return connection.execute(stmt, rows).all()


def insert_ignore_sql(dialect: Dialect, model: type, columns: list[str], conflict: list[str], returning: Any) -> str:
    """`insert_ignore`'s statement as the dialect's SQL text, with a named parameter for each of
    `columns`: for a hot path that runs it on a DBAPI cursor. Every column the INSERT writes must
    be among `columns` (a column with a Python-side default would need a value the cursor never
    gets)."""
    compiled = _insert_ignore_stmt(dialect.name, model, tuple(conflict), returning).compile(
        dialect=dialect, column_keys=columns
    )
    missing = set(compiled.binds) - set(columns)
    if missing:
        raise ValueError(f"the INSERT also writes {sorted(missing)}: give them values")
    return str(compiled)


def update_loaded(session: Session, obj: Any, **values: Any) -> None:
    """Write `values` (attribute names, which are the column names) to the row of `obj`, a loaded
    object whose row this transaction holds locked: one Core UPDATE by primary key on the
    transaction's connection (an ORM flush of the same change costs about twice as much CPU), and
    the object given the same values as committed ones, so it reads as the row does and has
    nothing of them left to flush."""
    update_loaded_many(session, [(obj, values)])


def update_loaded_many(session: Session, changes: list[tuple[Any, dict[str, Any]]]) -> None:
    """`update_loaded` for several objects of one table, each with values for the same columns:
    one statement, executed for each row (psycopg pipelines an executemany)."""
    if not changes:
        return
    table = changes[0][0].__table__
    names = tuple(changes[0][1])
    (key,) = table.primary_key.columns
    params = [
        {"row_key": getattr(obj, key.key), **{f"new_{name}": value for name, value in values.items()}}
        for obj, values in changes
    ]
    session.connection().execute(_update_by_key(table, names), params if len(params) > 1 else params[0])
    for obj, values in changes:
        for name, value in values.items():
            set_committed_value(obj, name, value)


@functools.cache
def _update_by_key(table: Table, names: tuple[str, ...]):
    """`update_loaded`'s statement for these columns, built once: the same object every time."""
    (key,) = table.primary_key.columns
    return (
        update(table)
        .where(key == bindparam("row_key"))
        .values({name: bindparam(f"new_{name}", type_=table.c[name].type) for name in names})
    )


def insert_ignore_row(session: Session, model: type, values: dict[str, Any], conflict: list[str]) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING the new row as an ORM object (in the session,
    one round trip), or None when the row already existed."""
    row = _insert_returning(session, model, tuple(conflict), values)
    return None if row is None else _attached(session, model, row)


def insert_row(session: Session, model: type, values: dict[str, Any]) -> Any:
    """INSERT ... RETURNING the new row as an ORM object in the session, one round trip: what
    `session.add` and a flush do, for a row the caller writes whole at once."""
    return _attached(session, model, _insert_returning(session, model, None, values))


def _insert_returning(session: Session, model: type, conflict: tuple | None, values: dict[str, Any]) -> Any:
    """The row an INSERT (... ON CONFLICT DO NOTHING, with `conflict`) returns, every column of
    it; None when the conflict left it out. A Core statement on the transaction's connection."""
    connection = flushed_connection(session)
    stmt = _insert_returning_stmt(connection.dialect.name, model.__table__, conflict)
    return connection.execute(stmt, values).one_or_none()


def _attached(session: Session, model: type, row: Any) -> Any:
    """The row as a persistent object of the session, as a query would have loaded it (every
    column set, no history, in the identity map), built without the ORM's unit of work: the ORM's
    INSERT ... RETURNING of an entity, or an add and a flush, cost about twice the CPU of the Core
    statement (~520 against ~285 µs a row in process). Attribute names are column names here."""
    obj = model.__mapper__.class_manager.new_instance()
    obj.__dict__.update(row._mapping)
    make_transient_to_detached(obj)
    session.add(obj)
    return obj


def for_update(stmt: Select) -> Select:
    """The SELECT locking its rows for the transaction (FOR UPDATE) and loading them afresh: an
    object the session loaded before the lock may be stale, the locked row is not."""
    return stmt.with_for_update().execution_options(populate_existing=True)


def lock_by_ids(session: Session, model: type, ids: list[int]) -> dict[int, Any]:
    """Rows of `model` by their `id`, locked for the transaction in one statement, in id order: two
    transactions locking overlapping sets wait for each other instead of deadlocking. An id with
    no row is left out."""
    return {row.id: row for row in session.scalars(locking_by_ids(model), {"ids": sorted(set(ids))})}


@functools.cache
def locking_by_ids(model: type) -> Select:
    """`lock_by_ids`'s statement for `model`, built once (its list parameter is `ids`)."""
    return for_update(select(model).where(model.id.in_(bindparam("ids", expanding=True))).order_by(model.id))


def lock_once(session: Session, key: tuple, lock: Select, params: dict[str, Any]) -> Any:
    """The row the `for_update` statement finds, locked; a row this transaction already locked or
    created under `key` (see held_in_transaction) comes back without a round trip."""
    held = held_in_transaction(session)
    row = held.get(key)
    if row is None:
        row = session.scalars(lock, params).one_or_none()
        if row is not None:
            held[key] = row
    return row


def lock_or_insert(
    session: Session,
    key: tuple,
    lock: Select,
    params: dict[str, Any],
    model: type,
    values: dict[str, Any],
    conflict: list[str],
) -> Any:
    """The row `lock_once` finds; on a miss, the row inserted now (this transaction's alone until
    it commits, remembered under `key`); when a concurrent first caller inserted it meanwhile,
    that row, locked. A known row costs one statement, and the unique key still decides between
    two first callers."""
    row = lock_once(session, key, lock, params)
    if row is None:
        row = insert_ignore_row(session, model, values, conflict)
        if row is None:
            row = lock_once(session, key, lock, params)
        else:
            held_in_transaction(session)[key] = row
    return row


@functools.lru_cache(maxsize=64)
def _insert_returning_stmt(dialect: str, table: Table, conflict: tuple | None):
    stmt = _dialect_insert(dialect, table)
    if conflict is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(conflict))
    return stmt.returning(*table.columns)


@functools.lru_cache(maxsize=256)
def _insert_ignore_stmt(dialect: str, model: type, conflict: tuple, returning: Any):
    stmt = _dialect_insert(dialect, model.__table__).on_conflict_do_nothing(index_elements=list(conflict))
    if isinstance(returning, tuple):
        return stmt.returning(*returning)
    if returning is not None:
        return stmt.returning(returning)
    # SQLAlchemy 2.1 reports an INSERT's rowcount only when asked to (psycopg closes the cursor
    # first): without this, PostgreSQL answers -1 and every new row reads as "already there".
    return stmt.execution_options(preserve_rowcount=True)


def _dialect_insert(dialect: str, target: Any):
    """An INSERT with the dialect's ON CONFLICT support (an ORM entity or a table)."""
    if dialect == "postgresql":
        return postgresql.insert(target)
    if dialect == "sqlite":
        return sqlite.insert(target)
    raise NotImplementedError(dialect)  # pragma: no cover - only PostgreSQL and SQLite are supported
