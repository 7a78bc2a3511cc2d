"""Plain DBAPI statements for the intake's hot path, inside the session's transaction.

The ORM costs tens of microseconds per statement; a new ticket takes about ten
statements, and the intake must keep up with a thousand messages a second on
SQLite. :class:`Direct` runs hand-written SQL on the session's own DBAPI
connection (so it stays in the same transaction) and converts values with
SQLAlchemy's own type processors (so rows read through the ORM look exactly
like rows written through it): the same storage format, a tenth of the cost.

SQL is written once with ``:name`` placeholders and rewritten for drivers that
use ``%(name)s``; the inserts it builds itself bind by position, which drivers
do faster than by name. Driver errors are raised as SQLAlchemy's exceptions
(``IntegrityError``, ``OperationalError``), as the ORM would raise them.

Round trips (PostgreSQL)
------------------------
On SQLite a statement costs no round trip; on PostgreSQL each one waits for the
server. A :class:`Direct` made with ``pipelined=True`` (psycopg 3, which
:class:`storage.database.Database` uses for its own connections) keeps its
connection in libpq's pipeline mode (:class:`storage.wire.Wire`: below psycopg's
cursors, each statement prepared on its first use, handed to the socket without
waiting): a statement whose answer nobody waits for
(:meth:`Direct.send`, :meth:`Direct.insert_many`, an insert whose id a read
took from the sequence before (:meth:`Direct.take_reserved`), an insert with
``returning=False``) is
sent and not waited for, and goes to the server with the next statement that
is waited for, or with the ``COMMIT``. Reads that do not depend on each other
are asked together (:meth:`Direct.ask`) and answered in one round trip. An
error of a statement that was sent is raised where the next answer is waited
for (at the latest by :meth:`Direct.commit`), as SQLAlchemy's exception, and
the whole transaction is rolled back as before. A message's intake takes two
round trips this way (its reads, its commit), where it took one per statement
(11 to 14). Sequence values a transaction may need are taken along with its
reads; one it did not use is kept for a later one (:class:`Spare`).

The hottest conversions (aware datetimes, JSON) have exact shortcuts of
SQLAlchemy's processors, each checked against the processor it replaces when a
table's codec is made, and used only where they agree; a value that many rows
share can be converted once (:meth:`Direct.bound`).
"""

from __future__ import annotations

import heapq
import json
import json.encoder
import operator
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Literal, overload

from sqlalchemy import JSON, FromClause, Integer, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, InvalidRequestError
from sqlalchemy.orm import Session

from storage.models import UtcDateTime
from storage.wire import Pending, Rows, Wire

Processor = Callable[[Any], Any]
_PLACEHOLDER = re.compile(r"(?<![:\w]):(\w+)")
_POSITIONAL = {"named": "?", "qmark": "?", "pyformat": "%s", "format": "%s"}  # sqlite3 takes ? whatever it declares
UTC = timezone.utc


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


class Bound:
    """A value already in its column's stored form (from :meth:`Direct.bound`): handed to the driver as it is."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


# -- exact shortcuts of SQLAlchemy's bind processors ---------------------------------------------------------

_SQLITE_DATETIME = "%04d-%02d-%02d %02d:%02d:%02d.%06d"  # SQLAlchemy's default storage format for SQLite
_TWO = tuple(f"{i:02d}" for i in range(100))


_last_utc: tuple[datetime | None, str] = (None, "")  # the last instant written and its text (one at a time)


def _sqlite_utc(value: datetime) -> str:
    """``UtcDateTime`` on SQLite: the instant in UTC, written as SQLAlchemy writes a naive DATETIME.

    A row often holds the same instant twice (created and updated at ``now``), and the next row again:
    the last one is remembered (held, so that ``is`` cannot match another object at its address).
    """
    global _last_utc
    last = _last_utc
    if last[0] is value:
        return last[1]
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} cannot be stored")
    v = value.astimezone(UTC)
    year = v.year  # _SQLITE_DATETIME, written out: %-formatting of seven numbers costs more than the rest
    text = (f"{year if year >= 1000 else f'{year:04d}'}-{_TWO[v.month]}-{_TWO[v.day]} {_TWO[v.hour]}:"
            f"{_TWO[v.minute]}:{_TWO[v.second]}.{str(1_000_000 + v.microsecond)[1:]}")
    _last_utc = (value, text)
    return text


def _aware_utc(value: datetime) -> datetime:
    """``UtcDateTime`` where the driver takes aware datetimes (PostgreSQL)."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} cannot be stored")
    return value.astimezone(UTC)


def _json_dumps() -> Callable[[Any], str]:
    """``json.dumps`` with its default settings, its C encoder made once instead of on every call.

    Without the check for circular references (a stored value has none): the same text for every other value.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return json.dumps
    base = json.JSONEncoder()
    try:
        encode = make(None, base.default, json.encoder.encode_basestring_ascii, None, base.key_separator,
                      base.item_separator, base.sort_keys, base.skipkeys, base.allow_nan)
    except TypeError:  # another Python's C encoder
        return json.dumps
    join = "".join
    return lambda value: join(encode(value, 0))


def _json_text(slow: Processor) -> Processor:
    """SQLAlchemy's JSON processor without its wrapper, for plain dicts and lists (the rest goes to ``slow``)."""
    dumps = _json_dumps()

    def process(value: Any) -> Any:
        kind = value.__class__
        if kind is list:
            return dumps(value) if value else "[]"
        if kind is dict:
            return dumps(value) if value else "{}"
        return slow(value)

    return process


def _json_wrapped(slow: Processor) -> Processor:
    """PostgreSQL (psycopg): SQLAlchemy's JSON processor hands the value to the driver in psycopg's wrapper, whose
    dumper then calls ``json.dumps`` on it at every send. The same wrapper, with the C encoder made once (plain
    dicts and lists; the rest goes to ``slow``)."""
    dumps = _json_dumps()
    wrapper = slow({}).__class__

    def process(value: Any) -> Any:
        kind = value.__class__
        if kind is list or kind is dict:
            return wrapper(value, dumps)
        return slow(value)

    return process


def _json_wrapper_text(wrapped: Any) -> str:
    """The text psycopg sends for a JSON wrapper (its own ``dumps``, else ``json.dumps``, psycopg's default)."""
    return str((wrapped.dumps or json.dumps)(wrapped.obj))


def _frozen_json(wrapped: Any) -> Any:
    """A JSON wrapper whose text is made now, once: for a value many rows share (:meth:`Direct.bound`)."""
    text = _json_wrapper_text(wrapped)
    return wrapped.__class__(wrapped.obj, lambda _value: text)


_SAMPLE_INSTANTS = (
    datetime(2026, 11, 22, 9, 30, 15, 123456, tzinfo=UTC),
    datetime(2026, 3, 29, 3, 0, tzinfo=timezone(timedelta(hours=2))),  # no microseconds, not UTC
    datetime(999, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
)
_SAMPLE_JSON: tuple[Any, ...] = ({"plan": {"name": "licentie", "hours": [9, 17.5]}, "none": None, "é": "één ✓"}, [], ["<a@b>"], {})


def _shortcut(impl: Any, dialect: Dialect, slow: Processor) -> Processor:
    """A faster processor that gives exactly what ``slow`` gives (checked here on samples), else ``slow``."""
    fast: Processor | None = None
    samples: tuple[Any, ...] = ()
    same: Callable[[Any, Any], bool] = operator.eq
    if isinstance(impl, UtcDateTime):
        fast = _sqlite_utc if dialect.name == "sqlite" else _aware_utc
        samples = _SAMPLE_INSTANTS
    elif isinstance(impl, JSON) and getattr(dialect, "_json_serializer", None) is None:
        if _is_json_wrapper(slow({})):
            fast, samples = _json_wrapped(slow), _SAMPLE_JSON
            same = _same_json
        else:
            fast, samples = _json_text(slow), _SAMPLE_JSON
    if fast is None:
        return slow
    try:
        agrees = all(type(a := fast(v)) is type(b := slow(v)) and same(a, b) for v in samples)
    except Exception:  # noqa: BLE001 - a shortcut that cannot even run its samples is not taken
        agrees = False
    return fast if agrees else slow


def _is_json_wrapper(value: Any) -> bool:
    return hasattr(value, "obj") and hasattr(value, "dumps")


def _same_json(a: Any, b: Any) -> bool:
    """Two JSON wrappers that send the same text."""
    return bool(a.obj == b.obj and _json_wrapper_text(a) == _json_wrapper_text(b))


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
                self.binds[column.name] = _shortcut(impl, dialect, bind)
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
        # the driver's positional placeholder, for the inserts built here (None: bind those by name too)
        self.positional = _POSITIONAL.get(dialect.paramstyle)
        # SQLite: an INTEGER PRIMARY KEY named id is the rowid, which the driver reports after an insert
        # (cheaper than RETURNING id)
        key = list(table.primary_key.columns)
        self.id_is_rowid = (dialect.name == "sqlite" and len(key) == 1 and key[0].name == "id"
                            and type(key[0].type) is Integer)
        self._insert_sql: dict[tuple[tuple[str, ...], bool, bool], str] = {}
        self._inserts: dict[tuple[str, ...], _Insert] = {}

    def bind_row(self, values: Mapping[str, Any], *, defaults: bool = True) -> dict[str, Any]:
        row = dict(values)
        if defaults:
            for name, default in self.defaults.items():
                if name not in row:
                    row[name] = default()
        binds = self.binds
        for name, value in row.items():
            if value is not None:
                bind = binds.get(name)
                if bind is not None:
                    row[name] = value.value if value.__class__ is Bound else bind(value)
        return row

    def insert(self, keys: tuple[str, ...]) -> _Insert:
        """How rows naming the columns ``keys`` (in this order) are inserted."""
        found = self._inserts.get(keys)
        if found is None:
            found = self._inserts[keys] = _Insert(self, keys)
        return found

    def insert_sql(self, names: tuple[str, ...], returning: bool, *, positional: bool = False) -> str:
        """``INSERT`` of ``names``: with ``:name`` placeholders, or ready for the driver with positional ones."""
        key = (names, returning, positional)
        found = self._insert_sql.get(key)
        if found is None:
            unknown = set(names) - self.names
            if unknown:
                raise KeyError(f"{self.table.name} has no column {', '.join(sorted(unknown))}")
            if positional and self.positional is None:
                raise ValueError(f"no positional placeholder for {self.table.name}'s dialect")
            marks = [self.positional] * len(names) if positional else [":" + n for n in names]
            found = f"INSERT INTO {self.table.name} ({', '.join(names)}) VALUES ({', '.join(marks)})"  # type: ignore[arg-type]
            if returning:
                found += " RETURNING id"
            self._insert_sql[key] = found
        return found


MANY_IN_ONE = 16  # rows insert_many puts in one statement on a pipelined connection


class _Insert:
    """One shape of inserted row, worked out once: the columns a caller names in its order, then the column
    defaults it leaves out; each one's conversion; the statements."""

    __slots__ = ("_rows", "binds", "defaults", "many", "names", "one", "positional", "rowid")

    def __init__(self, codec: _TableCodec, keys: tuple[str, ...]) -> None:
        missing = [name for name in codec.defaults if name not in keys]
        self.names = keys + tuple(missing)
        self.binds = tuple(codec.binds.get(name) for name in keys)
        self.defaults = tuple((codec.defaults[name], codec.binds.get(name)) for name in missing)
        self.positional = codec.positional is not None
        self.rowid = codec.id_is_rowid
        self.one = codec.insert_sql(self.names, not self.rowid, positional=self.positional)
        self.many = codec.insert_sql(self.names, False, positional=self.positional)
        self._rows: dict[int, str] = {}

    def rows(self, count: int) -> str:
        """The ``INSERT`` of ``count`` rows in one ``VALUES`` list (positional placeholders only)."""
        found = self._rows.get(count)
        if found is None:
            head, _, marks = self.many.partition(" VALUES ")
            found = self._rows[count] = f"{head} VALUES {', '.join([marks] * count)}"
        return found

    def bind(self, values: Mapping[str, Any]) -> list[Any] | dict[str, Any]:
        """The row's values as the driver takes them: by position where it can, else by name."""
        out = [value if value is None or bind is None else (value.value if value.__class__ is Bound else bind(value))
               for value, bind in zip(values.values(), self.binds)]
        for make, bind in self.defaults:
            value = make()
            out.append(value if value is None or bind is None else bind(value))
        return out if self.positional else dict(zip(self.names, out))


@lru_cache(maxsize=64)
def _codec(table: Table, dialect: Dialect) -> _TableCodec:
    return _TableCodec(table, dialect)


class Answer:
    """The rows of a statement asked with :meth:`Direct.ask`, fetched when first wanted.

    On a pipelined connection the statement is on its way already, and the first answer wanted fetches every
    answer asked before it in the same round trip; elsewhere the statement runs when its answer is first wanted.
    """

    __slots__ = ("_direct", "_params", "_pending", "_rows", "_sql")

    def __init__(self, direct: Direct, sql: str, params: Mapping[str, Any], pending: Pending | None = None) -> None:
        self._direct, self._sql, self._params, self._pending = direct, sql, params, pending
        self._rows: list[tuple[Any, ...]] | None = None

    def all(self) -> list[tuple[Any, ...]]:
        if self._rows is None:
            if self._pending is None:
                self._rows = [tuple(r) for r in self._direct.execute(self._sql, self._params).fetchall()]
            else:
                self._rows = self._direct._fetch_all(self._pending, self._sql, self._params)
                self._pending = None
        return self._rows

    def pending_done(self) -> bool:
        """Pipelined: whether the answer is here (or failed)."""
        return self._pending is None or self._pending.done

    def pending_ok(self) -> bool:
        """Pipelined: whether the answer came without an error."""
        return self._pending is None or self._pending.error is None

    def one(self) -> tuple[Any, ...] | None:
        rows = self.all()
        return rows[0] if rows else None

    def scalar(self) -> Any:
        row = self.one()
        return None if row is None else row[0]


class EarlierWritesFailed(Exception):
    """A statement of an earlier call in the same transaction, whose answer that call did not wait for, failed
    (:attr:`Direct.earlier_than`): the transaction cannot go on as its callers think it stands."""


class Spare:
    """Values taken from PostgreSQL sequences ahead of need and not used yet, kept for a later transaction on any of
    a database's connections: a sequence's value stays taken whether the transaction that took it commits or not.
    The lowest is used first. A value a transaction used goes back here when the transaction is known not to have
    committed (:meth:`Direct.use_value`). What a process still keeps when it ends is never used (a gap, as a
    ``COMMIT`` whose answer was lost leaves one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[str, list[int]] = {}

    def wanted(self, sequence: str) -> bool:
        """Whether none of ``sequence`` is kept (then a statement on its way may take one along)."""
        return not self._kept.get(sequence)

    def keep(self, sequence: str, value: int) -> None:
        with self._lock:
            heapq.heappush(self._kept.setdefault(sequence, []), value)

    def take(self, sequence: str) -> int | None:
        """The lowest value of ``sequence`` kept, no longer kept; None if none is."""
        with self._lock:
            kept = self._kept.get(sequence)
            return heapq.heappop(kept) if kept else None


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

    def __init__(self, driver_connection: Any, dialect: Dialect, *, pipelined: bool = False,
                 spare: Spare | None = None) -> None:
        self.dialect = dialect
        # sequence values taken ahead (storage.repositories: the next ticket number with a message's first reads),
        # shared by the connections of one database
        self.spare = spare if spare is not None else Spare()
        self._dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
        self._paramstyle = dialect.paramstyle
        self._as_written = _for_driver("SELECT :x", dialect.paramstyle) == "SELECT :x"  # sqlite3 takes :name
        self._driver = driver_connection
        self._cursor = driver_connection.cursor()
        self._codecs: dict[FromClause, _TableCodec] = {}
        # inside Database.group(): the transaction holds the locks of the calls before until the group commits, so
        # a call does not wait for a lock another worker holds (it could be waiting for this group in turn)
        self.grouped = False
        # pipelined, inside a group: the statements numbered below this (Wire.sent) are an earlier call's, which
        # did not wait for their answers; an error among them is raised as EarlierWritesFailed (and kept here)
        self.earlier_than = 0
        self.earlier_failed: Exception | None = None
        # libpq's pipeline mode (psycopg 3 on PostgreSQL): see the module's docstring
        self._wire: Wire | None = None
        self._begun = False  # pipelined: whether this transaction's BEGIN was sent
        if pipelined and dialect.name == "postgresql" and hasattr(driver_connection, "pgconn"):
            # the BEGIN is sent with the first statement, not waited for on its own: the connection is in
            # autocommit mode and Direct begins
            driver_connection.autocommit = True
            self._wire = Wire(driver_connection)
        self._reserved: dict[str, list[int]] = {}  # ids taken from a table's sequence, not yet used
        # sequence values this transaction used (use_value): back to the spare where it is known not to commit
        self._used: list[tuple[str, int, str | None]] = []
        self._answered: list[tuple[Answer, Callable[[Answer], None]]] = []  # ask(answered=...) not yet told
        self.released_at = 0.0  # when its connection was last given back (storage.database)
        self.round_trips = 0  # pipelined: how many times it waited for the server (the benchmarks and tests read it)

    @property
    def pipelined(self) -> bool:
        return self._wire is not None

    @property
    def broken(self) -> bool:
        """Whether the server ended the connection (PostgreSQL restarted, or ended it on purpose)."""
        return bool(getattr(self._driver, "broken", False))

    def sync(self) -> None:
        """Wait until the server has run every statement sent so far; an error of one of them is raised here."""
        if self._wire is not None:
            self._synced(self._wire, "(statements sent before this point)", {})

    def _synced(self, wire: Wire, statement: str, params: Any) -> None:
        """One round trip: what was sent runs; the first error among it is raised, as SQLAlchemy's (an earlier
        call's as :class:`EarlierWritesFailed`)."""
        self.round_trips += 1
        try:
            error = wire.sync()
        except self._dbapi_error as exc:  # the connection, not a statement
            raise DBAPIError.instance(statement, params, exc, self._dbapi_error) from exc
        if self._answered:
            self._tell_answered()
        if error is not None:
            raise self._failed(wire, error, statement, params)

    def _failed(self, wire: Wire, error: Exception, statement: str, params: Any) -> Exception:
        """The exception for the error a sync returned: SQLAlchemy's, or :class:`EarlierWritesFailed` (kept in
        :attr:`earlier_failed`) where an earlier call's statement failed. A value it uses up is not given back."""
        constraint = getattr(getattr(error, "diag", None), "constraint_name", None)
        if constraint is not None:  # (use_value's unique)
            self._used = [used for used in self._used if used[2] != constraint]
        failed = DBAPIError.instance(statement, params, error, self._dbapi_error)
        failed.__cause__ = error
        if wire.failed_at is None or wire.failed_at >= self.earlier_than:
            return failed
        self.earlier_failed = failed
        earlier = EarlierWritesFailed(f"a statement sent by an earlier call failed: {failed}")
        earlier.__cause__ = failed
        return earlier

    def start_call(self) -> int:
        """Pipelined, inside a group: what was sent so far is an earlier call's (:attr:`earlier_than`). Where the
        call's values used begin (for :meth:`give_back`)."""
        if self._wire is not None:
            self.earlier_than = self._wire.sent + 1
        return len(self._used)

    def use_value(self, sequence: str, value: int, *, unique: str | None = None) -> None:
        """``value`` of ``sequence`` (from :attr:`spare`, or taken now) is used by this transaction: should the
        transaction be rolled back, it goes back to the spare for the next one (a rolled-back ticket leaves its
        number to the next, no gap); once the ``COMMIT`` was sent it never goes back (committed or not: not
        known where the answer did not come). ``unique``: the unique constraint a row with the value must meet; a
        violation of it (a sequence behind the rows, after a restore) uses the value up instead: given back, it
        would fail every transaction after."""
        self._used.append((sequence, value, unique))

    def give_back(self, since: int = 0) -> None:
        """The values used since ``since`` (:meth:`start_call`) back to the spare: their writes were undone."""
        for sequence, value, _ in self._used[since:]:
            self.spare.keep(sequence, value)
        del self._used[since:]

    def settle(self) -> None:
        """After an error: the pipeline out of its aborted state (what failed is already raised), so that the
        transaction can be rolled back, or rolled back to a savepoint."""
        if self._wire is None:
            return
        try:
            error = self._wire.sync()
        except self._dbapi_error:
            return
        if self._answered:
            self._tell_answered()
        if error is not None:  # (already raised, or an earlier call's: kept in earlier_failed)
            self._failed(self._wire, error, "(statements sent before this point)", {})

    def commit(self) -> None:
        """Commit the transaction: the statements still on their way go with the ``COMMIT``, in one round trip."""
        self._forget()
        try:
            if self._wire is None:
                try:
                    self._driver.commit()
                except self._dbapi_error as exc:
                    raise DBAPIError.instance("COMMIT", {}, exc, self._dbapi_error) from exc
            elif self._begun:
                self._begun = False
                wire = self._wire
                at = wire.sent + 1  # the COMMIT's number
                self._send("COMMIT", ())
                try:
                    self._synced(wire, "COMMIT", {})
                except BaseException:
                    if wire.failed_at is not None and wire.failed_at < at:
                        self.give_back()  # a statement before it failed: the COMMIT was skipped, nothing committed
                    raise
        finally:
            self._used.clear()  # committed, or not known whether: never given again

    def rollback(self) -> None:
        self._forget()
        self.give_back()
        if self._wire is None:
            self._driver.rollback()
        elif self._begun:
            self._begun = False
            self.settle()
            self._send("ROLLBACK", ())
            self._synced(self._wire, "ROLLBACK", {})

    def leave_pipeline(self) -> None:
        """Back to ordinary statements (before the connection goes back to a pool others use)."""
        wire, self._wire = self._wire, None
        if wire is not None:
            try:
                wire.close()
            finally:
                self._driver.autocommit = False

    def _begin(self) -> None:
        """Pipelined: the transaction's BEGIN, sent before its first statement."""
        self._begun = True
        self._send("BEGIN", ())  # goes to the server with the transaction's first statements

    def _send(self, statement: str, params: Mapping[str, Any] | Sequence[Any]) -> Pending:
        assert self._wire is not None
        try:
            return self._wire.send(statement, params)
        except self._dbapi_error as exc:  # a value the driver cannot send
            raise DBAPIError.instance(statement, params, exc, self._dbapi_error) from exc

    def _send_in_transaction(self, statement: str, params: Mapping[str, Any] | Sequence[Any]) -> Pending:
        """Pipelined: ``statement`` sent, after the transaction's BEGIN if it is the first."""
        if not self._begun:
            self._begin()
        return self._send(statement, params)

    def _forget(self) -> None:
        """The end of a transaction: ids reserved and not used are not used any more (a gap in the sequence)."""
        self._reserved.clear()

    def codec(self, table: FromClause) -> _TableCodec:
        found = self._codecs.get(table)
        if found is None:
            if not isinstance(table, Table):
                raise TypeError(f"not a table: {table!r}")
            found = self._codecs[table] = _codec(table, self.dialect)
        return found

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """Run ``sql`` (``:name`` placeholders) and return the cursor."""
        return self._run(sql if self._as_written else _for_driver(sql, self._paramstyle), params or {})

    def _run(self, statement: str, params: Mapping[str, Any] | Sequence[Any], *, wait: bool = True) -> Any:
        """Run a statement written for the driver; on a pipelined connection wait for it unless ``wait`` is False
        (a statement whose answer nobody reads)."""
        wire = self._wire
        if wire is not None:
            pending = self._send_in_transaction(statement, params)
            if not wait:
                return None
            self._synced(wire, statement, params)
            return self._rows(wire, pending, statement, params)
        try:
            self._cursor.execute(statement, params)
        except self._dbapi_error as exc:
            raise DBAPIError.instance(statement, params, exc, self._dbapi_error) from exc
        return self._cursor

    def send(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run ``sql`` without waiting for it where the connection is pipelined (its error, if any, is raised
        at the next statement waited for): for a write whose outcome nobody reads."""
        self._run(sql if self._as_written else _for_driver(sql, self._paramstyle), params or {}, wait=False)

    def ask(self, sql: str, params: Mapping[str, Any] | None = None, *,
            answered: Callable[[Answer], None] | None = None) -> Answer:
        """Ask ``sql`` now, read its rows later (:class:`Answer`): the reads asked together, before the first of
        their answers is wanted, take one round trip on a pipelined connection. ``answered`` is called with the
        answer as soon as it is here (pipelined: at the round trip that brings it, whether the caller reads it or
        not, e.g. after an error of an answer before it; else now)."""
        params = params or {}
        if self._wire is None:
            answer = Answer(self, sql, params)
            if answered is not None:
                answered(answer)
            return answer
        answer = Answer(self, sql, params, self._send_in_transaction(_for_driver(sql, self._paramstyle), params))
        if answered is not None:
            self._answered.append((answer, answered))
        return answer

    def _tell_answered(self) -> None:
        """After a round trip: the ``answered`` of each :meth:`ask` whose answer came (without an error)."""
        waiting, self._answered = self._answered, []
        for answer, answered in waiting:
            if answer.pending_done():
                if answer.pending_ok():
                    answered(answer)
            else:
                self._answered.append((answer, answered))

    def _fetch_all(self, pending: Pending, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        wire = self._wire
        assert wire is not None
        if not pending.done:  # not here yet: fetched with every answer before it
            self._synced(wire, sql, params)
        if pending.error is not None:
            raise DBAPIError.instance(sql, params, pending.error, self._dbapi_error) from pending.error
        return self._rows(wire, pending, sql, params).fetchall()

    def _rows(self, wire: Wire, pending: Pending, statement: str, params: Any) -> Rows:
        try:
            return wire.rows(pending)
        except self._dbapi_error as exc:  # a value the driver cannot load
            raise DBAPIError.instance(statement, params, exc, self._dbapi_error) from exc

    def sequence_next(self, table: FromClause) -> str:
        """The SQL expression that takes the next id of ``table``'s sequence (PostgreSQL): for a statement that
        reserves ids along with what it reads (:meth:`take_reserved`)."""
        return f"nextval(pg_get_serial_sequence('{self.codec(table).table.name}', 'id'))"

    def take_reserved(self, table: FromClause, ids: Iterable[int]) -> None:
        """Ids of ``table`` a statement of the caller took from its sequence (:meth:`sequence_next`), for
        :meth:`insert` to use instead of waiting for the id the server gives."""
        self._reserved.setdefault(self.codec(table).table.name, []).extend(int(i) for i in ids)

    def _with_reserved_id(self, codec: _TableCodec, values: Mapping[str, Any],
                          returning: bool) -> tuple[Mapping[str, Any], bool]:
        """``values`` with a reserved id of the table where one is wanted and there is one (then no longer
        ``returning``: the id is known)."""
        if returning and self._wire is not None and "id" not in values:
            held = self._reserved.get(codec.table.name)
            if held:
                return {"id": held.pop(0), **values}, False
        return values, returning

    def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run ``sql`` once per row; on a pipelined connection sent, not waited for (:meth:`send`)."""
        self._run_many(_for_driver(sql, self._paramstyle), rows)

    def _run_many(self, statement: str, rows: Sequence[Mapping[str, Any] | Sequence[Any]]) -> None:
        if self._wire is not None:
            for row in rows:
                self._send_in_transaction(statement, row)
            return
        try:
            self._cursor.executemany(statement, rows)
        except self._dbapi_error as exc:
            raise DBAPIError.instance(statement, rows, exc, self._dbapi_error) from exc

    def one(self, sql: str, params: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
        row = self.execute(sql, params).fetchone()
        return None if row is None else tuple(row)

    def update(self, table: FromClause, row_id: int, values: Mapping[str, Any], *, wait: bool = True) -> int:
        """Update the row ``row_id`` of ``table``; the number of rows changed (0 or 1). With ``wait=False`` the
        update is sent (:meth:`send`) and the count is not known: 1 is returned."""
        codec = self.codec(table)
        row = codec.bind_row(values, defaults=False)
        unknown = set(row) - codec.names
        if unknown:
            raise KeyError(f"{codec.table.name} has no column {', '.join(sorted(unknown))}")
        row["_id"] = row_id
        assignments = ", ".join(f"{name} = :{name}" for name in row if name != "_id")
        sql = f"UPDATE {codec.table.name} SET {assignments} WHERE id = :_id"
        if not wait:
            self.send(sql, row)
            return 1
        return int(self.execute(sql, row).rowcount)

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        row = self.one(sql, params)
        return None if row is None else row[0]

    @overload
    def insert(self, table: FromClause, values: Mapping[str, Any]) -> int: ...

    @overload
    def insert(self, table: FromClause, values: Mapping[str, Any], *, returning: Literal[True]) -> int: ...

    @overload
    def insert(self, table: FromClause, values: Mapping[str, Any], *, returning: bool) -> int | None: ...

    def insert(self, table: FromClause, values: Mapping[str, Any], *, returning: bool = True) -> int | None:
        """Insert one row (column defaults applied, values converted) and return its id; with
        ``returning=False`` send it (:meth:`send`) and return None. An id reserved (:meth:`take_reserved`) is used where
        there is one: the row is sent, and its id known without waiting."""
        codec = self.codec(table)
        values, returning = self._with_reserved_id(codec, values, returning)
        plan = codec.insert(tuple(values))
        if not returning:
            self._run(plan.many, plan.bind(values), wait=False)
            return values.get("id")
        cursor = self._run(plan.one, plan.bind(values))
        return int(cursor.lastrowid if plan.rowid else cursor.fetchone()[0])

    def insert_then(self, table: FromClause, values: Mapping[str, Any], then: str, params: Mapping[str, Any], *,
                    returning: bool = True) -> int | None:
        """Insert one row as :meth:`insert` does and run ``then`` in the same statement, one round trip for both
        (PostgreSQL only: SQLite's ``WITH`` takes no ``INSERT``): ``then`` is the rest of a ``WITH new AS (INSERT
        ... RETURNING id)``, which names the new row's id as ``new.id``, with ``:name`` placeholders for
        ``params`` (names starting with ``_then_``, apart from the row's columns). The new row's id, or None with
        ``returning=False``; a reserved id is used as by :meth:`insert`, and then nothing is waited for."""
        if self.dialect.name == "sqlite":
            raise NotImplementedError("SQLite's WITH takes no INSERT")
        codec = self.codec(table)
        values, returning = self._with_reserved_id(codec, values, returning)
        row = codec.bind_row(values)
        if any(not name.startswith("_then_") for name in params):
            raise ValueError("the parameters of then are named _then_...")
        sql = f"WITH new AS ({codec.insert_sql(tuple(row), True)}), {then} SELECT id FROM new"
        if not returning:
            self.send(sql, {**row, **params})
            return values.get("id")
        return int(self.execute(sql, {**row, **params}).fetchone()[0])

    def insert_many(self, table: FromClause, rows: Iterable[Mapping[str, Any]]) -> None:
        """Insert rows that all name the same columns, in the same order. On a pipelined connection a few rows
        go in one statement (one ``VALUES`` list), sent and not waited for."""
        codec = self.codec(table)
        keys: tuple[str, ...] | None = None
        bound = []
        for row in rows:
            if keys is None:
                keys = tuple(row)
                plan = codec.insert(keys)
            elif tuple(row) != keys:
                raise ValueError(f"rows for {codec.table.name} name different columns: {keys} and {tuple(row)}")
            bound.append(plan.bind(row))
        if keys is None:
            return
        if self._wire is not None and 1 < len(bound) <= MANY_IN_ONE and plan.positional:
            self._run(plan.rows(len(bound)), [value for row in bound for value in row], wait=False)
            return
        self._run_many(plan.many, bound)

    def bound(self, table: FromClause, column: str, value: Any) -> Any:
        """``value`` converted once for ``table.column``, to pass to :meth:`insert` or :meth:`update` many times
        (a snapshot many rows share); a column without conversion takes ``value`` as it is."""
        bind = self.codec(table).binds.get(column)
        if bind is None or value is None:
            return value
        converted = bind(value)
        return Bound(_frozen_json(converted) if _is_json_wrapper(converted) else converted)

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


__all__ = ["Answer", "Bound", "Direct"]
