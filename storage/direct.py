"""Plain DBAPI statements for the intake's hot path, inside the session's transaction.

The ORM costs tens of microseconds per statement; a new ticket takes about ten
statements, and the intake must keep up with a thousand messages a second on
SQLite. :class:`Direct` runs hand-written SQL on the session's own DBAPI
connection (so it stays in the same transaction) and converts values with
SQLAlchemy's own type processors (so rows read through the ORM look exactly
like rows written through it): the same storage format, a tenth of the cost.

SQL is written once with ``:name`` placeholders and rewritten for drivers that
use ``%(name)s``. Driver errors are raised as SQLAlchemy's exceptions
(``IntegrityError``, ``OperationalError``), as the ORM would raise them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import FromClause, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, InvalidRequestError
from sqlalchemy.orm import Session

Processor = Callable[[Any], Any]
_PLACEHOLDER = re.compile(r"(?<![:\w]):(\w+)")


@lru_cache(maxsize=512)
def _for_driver(sql: str, paramstyle: str) -> str:
    if paramstyle in ("named", "qmark"):  # sqlite3 takes :name whatever its dialect declares
        return sql
    if paramstyle == "pyformat":
        return _PLACEHOLDER.sub(r"%(\1)s", sql.replace("%", "%%"))
    raise NotImplementedError(f"paramstyle {paramstyle}")


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value


def _called(make: Callable[[Any], Any]) -> Callable[[], Any]:
    return lambda: make(None)  # SQLAlchemy wraps a column's callable default to take an execution context


class _TableCodec:
    """Bind and result processors of one table's columns for one dialect."""

    def __init__(self, table: Table, dialect: Dialect) -> None:
        self.table = table
        self.binds: dict[str, Processor] = {}
        self.results: dict[str, Processor] = {}
        self.defaults: dict[str, Callable[[], Any]] = {}
        for column in table.columns:
            impl = column.type.dialect_impl(dialect)
            bind = impl.bind_processor(dialect)
            if bind is not None:
                self.binds[column.name] = bind
            try:
                result = impl.result_processor(dialect, None)
            except (TypeError, InvalidRequestError):
                result = None  # wants the driver's column type: psycopg's NUMERIC, already a Decimal
            if result is not None:
                self.results[column.name] = result
            default: Any = column.default
            if default is not None and default.is_scalar:
                self.defaults[column.name] = _constant(default.arg)
            elif default is not None and default.is_callable:
                self.defaults[column.name] = _called(default.arg)
        self.names = frozenset(c.name for c in table.columns)
        self._insert_sql: dict[tuple[tuple[str, ...], bool], str] = {}

    def bind_row(self, values: Mapping[str, Any], *, defaults: bool = True) -> dict[str, Any]:
        row = dict(values)
        for name, default in self.defaults.items() if defaults else ():
            if name not in row:
                row[name] = default()
        for name, bind in self.binds.items():
            if name in row and row[name] is not None:
                row[name] = bind(row[name])
        return row

    def insert_sql(self, names: tuple[str, ...], returning: bool) -> str:
        found = self._insert_sql.get((names, returning))
        if found is None:
            found = self._insert_sql[(names, returning)] = self._make_insert_sql(names, returning)
        return found

    def _make_insert_sql(self, names: tuple[str, ...], returning: bool) -> str:
        unknown = set(names) - self.names
        if unknown:
            raise KeyError(f"{self.table.name} has no column {', '.join(sorted(unknown))}")
        sql = (f"INSERT INTO {self.table.name} ({', '.join(names)}) "
               f"VALUES ({', '.join(':' + n for n in names)})")
        return sql + " RETURNING id" if returning else sql


@lru_cache(maxsize=64)
def _codec(table: Table, dialect: Dialect) -> _TableCodec:
    return _TableCodec(table, dialect)


class Direct:
    """Statements on the DBAPI connection of ``session`` (which begins its transaction).

    Use :meth:`of` to share one per session and transaction.
    """

    @classmethod
    def of(cls, session: Session) -> Direct:
        """The ``Direct`` of ``session``'s current transaction, made on first use."""
        transaction = session.get_transaction()
        found = session.info.get("slabot.direct")
        if found is not None and found[0] is transaction and transaction is not None:
            return found[1]  # type: ignore[no-any-return]
        connection = session.connection()  # begins the session's transaction
        driver = connection.connection.driver_connection
        assert driver is not None
        direct = cls(driver, connection.dialect)
        session.info["slabot.direct"] = (session.get_transaction(), direct)
        return direct

    def __init__(self, driver_connection: Any, dialect: Dialect) -> None:
        self.dialect = dialect
        self._dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
        self._paramstyle = dialect.paramstyle
        self._cursor = driver_connection.cursor()
        self._codecs: dict[FromClause, _TableCodec] = {}

    def codec(self, table: FromClause) -> _TableCodec:
        found = self._codecs.get(table)
        if found is None:
            if not isinstance(table, Table):
                raise TypeError(f"not a table: {table!r}")
            found = self._codecs[table] = _codec(table, self.dialect)
        return found

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """Run ``sql`` (``:name`` placeholders) and return the cursor."""
        statement = _for_driver(sql, self._paramstyle)
        try:
            self._cursor.execute(statement, params or {})
        except self._dbapi_error as exc:
            raise DBAPIError.instance(statement, params, exc, self._dbapi_error) from exc
        return self._cursor

    def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        statement = _for_driver(sql, self._paramstyle)
        try:
            self._cursor.executemany(statement, rows)
        except self._dbapi_error as exc:
            raise DBAPIError.instance(statement, rows, exc, self._dbapi_error) from exc

    def one(self, sql: str, params: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
        row = self.execute(sql, params).fetchone()
        return None if row is None else tuple(row)

    def update(self, table: FromClause, row_id: int, values: Mapping[str, Any]) -> int:
        """Update the row ``row_id`` of ``table``; the number of rows changed (0 or 1)."""
        codec = self.codec(table)
        row = codec.bind_row(values, defaults=False)
        unknown = set(row) - codec.names
        if unknown:
            raise KeyError(f"{codec.table.name} has no column {', '.join(sorted(unknown))}")
        row["_id"] = row_id
        assignments = ", ".join(f"{name} = :{name}" for name in row if name != "_id")
        return int(self.execute(f"UPDATE {codec.table.name} SET {assignments} WHERE id = :_id", row).rowcount)

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        row = self.one(sql, params)
        return None if row is None else row[0]

    def insert(self, table: FromClause, values: Mapping[str, Any]) -> int:
        """Insert one row (column defaults applied, values converted) and return its id."""
        codec = self.codec(table)
        row = codec.bind_row(values)
        return int(self.scalar(codec.insert_sql(tuple(row), True), row))

    def insert_many(self, table: FromClause, rows: Iterable[Mapping[str, Any]]) -> None:
        codec = self.codec(table)
        bound = [codec.bind_row(r) for r in rows]
        if not bound:
            return
        names = tuple(bound[0])
        self.execute_many(codec.insert_sql(names, False), bound)

    def value(self, table: FromClause, column: str, value: Any) -> Any:
        """``value`` as ``table.column`` stores it (for a WHERE clause)."""
        bind = self.codec(table).binds.get(column)
        return bind(value) if bind is not None and value is not None else value

    def decode(self, table: FromClause, names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
        """A fetched row of ``table``'s columns ``names`` as Python values."""
        results = self.codec(table).results
        out: dict[str, Any] = {}
        for name, value in zip(names, row):
            process = results.get(name)
            out[name] = process(value) if process is not None and value is not None else value
        return out

    def columns(self, table: FromClause, names: Iterable[str] | None = None, alias: str = "") -> str:
        """A select list for ``table`` (all columns by default), optionally qualified by ``alias``."""
        prefix = f"{alias}." if alias else ""
        return ", ".join(prefix + n for n in (names or [c.name for c in table.columns]))


__all__ = ["Direct"]
