"""The database: engine set-up, transactions with retry, and migrations.

SQLite (the embedded default) runs in WAL mode with foreign keys on, a busy
timeout and, unless configured otherwise, ``synchronous=FULL`` (a commit is on
disk when it returns); every write transaction starts with ``BEGIN IMMEDIATE`` so that two
writers queue instead of failing half-way, and a transaction that still meets
"database is locked" is retried as a whole. PostgreSQL needs none of this.
Migrations are Alembic's, applied on start (:meth:`Database.upgrade`).

Only storage sees SQLAlchemy; what reaches the rest of slabot is one tree::

    StorageError
    ├── GroupNotCommitted        nothing of a group committed: each of its calls may run again
    ├── DuplicateError           a unique key says it is stored already (the intake's duplicate)
    ├── DatabaseUnavailable      unreachable, or failed under the work (also SQLAlchemy's OperationalError)
    └── DatabaseError            any other SQLAlchemy error, raised by translate_errors() for a caller
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.util.exc import CommandError
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, PoolProxiedConnection

from storage.direct import Direct, EarlierWritesFailed, Spare

# a transaction's session as the rest of slabot names it in the work it hands to Database.run: only storage
# imports SQLAlchemy
__all__ = ["Database", "DatabaseError", "DatabaseUnavailable", "DuplicateError", "GroupNotCommitted", "LockBusy",
           "MigrationRefused", "Session", "StorageError", "describe_failure", "open_database", "sqlite_file", "translate_errors"]

log = logging.getLogger(__name__)
T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000
HELD_CONNECTIONS = 2  # SQLite connections the plain-statement path keeps between transactions
HELD_PG_CONNECTIONS = 4  # PostgreSQL's: the writer, the outbox, the reminders, a reader
IDLE_PING_SECONDS = 1.0  # a held PostgreSQL connection idle this long is checked before use (a restart ends it)
WAL_CHECKPOINT_PAGES = 1_000
WAL_SIZE_LIMIT = 16 * 2**20
RETRIES = 8
SYNCHRONOUS = ("full", "normal")  # SQLite's PRAGMA synchronous values slabot accepts


class StorageError(Exception):
    """A storage failure slabot cannot handle on its own."""


class GroupNotCommitted(StorageError):
    """Nothing of a :meth:`Database.group` was committed: each of its calls may run again."""


class LockBusy(StorageError):
    """Inside a :meth:`Database.group`, a lock that another transaction holds: the call runs again alone after the
    group, where it may wait for the lock (waiting inside the group, while holding the group's locks, could
    deadlock with the other worker's group)."""


class DuplicateError(StorageError):
    """What is being stored is there already (a unique key said so): the transaction is to be rolled back."""


class _EndedBeforeCommit(Exception):
    """A transaction on a held connection failed because the server had ended that connection, and nothing of it
    was committed: it may run again on a new connection (``error`` is the driver's error that showed it)."""

    def __init__(self, error: DBAPIError) -> None:
        super().__init__(str(error))
        self.error = error


class DatabaseUnavailable(StorageError, OperationalError):
    """The database could not be reached, or failed under the work (the driver's OperationalError or
    InterfaceError, a busy SQLite retried in vain included): not the fault of what was being stored. Raised
    by :meth:`Database.run` and its siblings; still an ``OperationalError`` to code that catches that."""

    @classmethod
    def of(cls, exc: OperationalError | InterfaceError) -> DatabaseUnavailable:
        """The driver's error ``exc`` as this one (its statement, values and driver error kept)."""
        return cls(exc.statement, exc.params, exc.orig or exc, hide_parameters=exc.hide_parameters,
                   connection_invalidated=exc.connection_invalidated)

    @property
    def reason(self) -> str:
        """What the driver said."""
        return str(self.orig) if self.orig is not None else str(self)


class MigrationRefused(StorageError):
    """The database cannot be brought to this slabot's schema (a newer slabot wrote it)."""


class DatabaseError(StorageError):
    """The database could not be reached or failed a statement: SQLAlchemy's error, translated by
    :func:`translate_errors`; ``kind`` names the original (e.g. ``OperationalError``)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.kind = type(error).__name__


# what to check, by what the driver said (lower case), in order: the first that matches
_CHECKS = (
    (("connection refused", "could not connect", "timeout expired", "timed out", "no route to host",
      "name or service not known", "could not translate host name", "nodename nor servname", "network is unreachable",
      "server closed the connection"),
     "is the database server running, and are the host and port in [database] url right?"),
    (("password authentication failed", "authentication failed", "no password supplied", "role ") ,
     "check the user name and password in [database] url"),
    (("does not exist",), "create the database (e.g. createdb NAME) or fix its name in [database] url"),
    (("unable to open database file",), "check that the SQLite file's folder exists and slabot may write there"),
    (("readonly database", "read-only"), "slabot may not write the SQLite file: check its permissions"),
    (("file is not a database", "malformed"),
     "the file is not a slabot database or is damaged: point [database] url at another file or restore a backup"),
    (("can't locate revision", "no such revision"),
     "the database was written by a newer slabot: upgrade slabot, or point [database] url at another database"),
    (("database is locked",), "another program holds the SQLite file locked: wait, or stop it"),
)


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """A database failure in one line, and what to check: the driver's own first line (without SQLAlchemy's
    wrapping and its link), and a hint that fits it."""
    inner: BaseException = exc
    for _ in range(5):  # the driver's error inside SQLAlchemy's, inside ours
        nested = getattr(inner, "orig", None) or inner.__cause__
        if not isinstance(nested, BaseException) or nested is inner:
            break
        inner = nested
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("(Background on this error")]
    what = lines[0] if lines else inner.__class__.__name__
    what = re.sub(r"^\((?:[\w.]+)\)\s*", "", what)  # "(psycopg.OperationalError) connection failed: ..."
    said = " ".join(lines).lower()
    check = next((hint for words, hint in _CHECKS if any(w in said for w in words)),
                 "check [database] url and that the database is reachable")
    return what, check


@contextmanager
def translate_errors() -> Iterator[None]:
    """SQLAlchemy's errors raised in the block raised again as :class:`DatabaseError` (from the original), for
    callers outside storage, which catch only :class:`StorageError`."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise DatabaseError(exc) from exc


SQLITE_BUSY, SQLITE_LOCKED = 5, 6
SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE = 1555, 2067
UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE


def is_unique_violation(exc: BaseException) -> bool:
    """A unique key's violation (not another constraint's), by the driver's error code."""
    driver_error = getattr(exc, "orig", None) or exc
    code = getattr(driver_error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code in (SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY)
    return getattr(driver_error, "sqlstate", None) == UNIQUE_VIOLATION


def _is_locked(exc: BaseException) -> bool:
    """SQLite's busy or locked error, by its code (the text of a wrapped error holds the statement's values,
    which may say "busy" themselves)."""
    driver_error = getattr(exc, "orig", None) or exc
    code = getattr(driver_error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED)
    text = str(driver_error).lower()
    return "database is locked" in text or "database table is locked" in text


def _is_serialization(exc: BaseException) -> bool:
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return code in {"40001", "40P01"}


class Database:
    """An engine, a session factory, and transactions that retry when SQLite is busy."""

    def __init__(self, url: str, *, echo: bool = False, synchronous: str = "full") -> None:
        if synchronous not in SYNCHRONOUS:
            raise StorageError(f"synchronous must be one of {', '.join(SYNCHRONOUS)}, not {synchronous!r}")
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}
            if parsed.database in (None, "", ":memory:"):
                raise StorageError("use a SQLite file, not an in-memory database: slabot needs it shared")
            kwargs["poolclass"] = NullPool if parsed.query.get("nullpool") else None
            if kwargs["poolclass"] is None:
                del kwargs["poolclass"]
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            self._tune_sqlite(self.engine, synchronous)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._checkpointer = _Checkpointer(self.engine) if self.is_sqlite else None
        # the plain-statement path keeps a few connections (each with its Direct) between transactions: a
        # checkout from the pool and the check-in cost more than a message's statements (on PostgreSQL the pool's
        # check before reuse is a round trip of its own; a held one is checked only after it was idle, and one
        # that fails is not held again). PostgreSQL's are kept in pipeline mode (storage.direct).
        self._hold = not isinstance(self.engine.pool, NullPool)
        self._held_limit = HELD_CONNECTIONS if self.is_sqlite else HELD_PG_CONNECTIONS
        self._held: list[tuple[PoolProxiedConnection, Direct]] = []
        self._spare = Spare()  # sequence values taken ahead, for any of these connections (storage.direct)
        self._disposed = False
        self._grouped = threading.local()  # .held: the connection of this thread's open group, see group()

    @staticmethod
    def _tune_sqlite(engine: Engine, synchronous: str) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            # FULL: the WAL is synced at every commit, so a commit survives a power cut; NORMAL syncs it
            # at checkpoints only (a crash of slabot loses nothing, one of the machine may lose the last commits)
            cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
            # checkpoint the WAL into the database file every ~4 MiB (SQLite's default): a small WAL is
            # written over from its start again and again, which a synced commit pays less for than for
            # a file that grows (measured: about 20% more messages/s than with a 40 MiB WAL)
            cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")  # a WAL started over is cut to this
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on an error."""
        with self.sessions.begin() as session:
            yield session

    def run(self, work: Callable[[Session], T], *, retries: int = RETRIES) -> T:
        """Run ``work`` in one transaction; retry the whole of it when the database is busy."""
        return self._unavailable(lambda: self._retrying(lambda: self._in_session(work), retries))

    def run_direct(self, work: Callable[[Direct], T], *, retries: int = RETRIES) -> T:
        """Like :meth:`run`, on plain DBAPI statements (:mod:`storage.direct`) without an ORM session.

        For the intake's hot path: a session's own begin and commit cost more than
        the statements of a whole message.
        """
        return self._direct(work, True, retries)

    def read_direct(self, work: Callable[[Direct], T], *, retries: int = RETRIES) -> T:
        """Like :meth:`run_direct` for statements that only read: on SQLite without the write lock, so a read
        does not queue behind the writers (WAL readers see the last commit)."""
        return self._direct(work, False, retries)

    def _direct(self, work: Callable[[Direct], T], write: bool, retries: int) -> T:
        group = getattr(self._grouped, "held", None)
        if group is not None:  # inside group(): a savepoint, no retry (the group holds the write lock)
            return self._unavailable(lambda: self._in_savepoint(group, work))
        return self._unavailable(lambda: self._retrying(lambda: self._in_direct(work, write=write), retries))

    @staticmethod
    def _unavailable(attempt: Callable[[], T]) -> T:
        """``attempt``, its driver's OperationalError or InterfaceError raised as :class:`DatabaseUnavailable`."""
        try:
            return attempt()
        except (OperationalError, InterfaceError) as exc:
            if isinstance(exc, DatabaseUnavailable):
                raise
            raise DatabaseUnavailable.of(exc) from exc

    def _in_session(self, work: Callable[[Session], T]) -> T:
        with self.sessions.begin() as session:
            return work(session)

    @contextmanager
    def group(self) -> Iterator[None]:
        """One SQLite transaction for the :meth:`run_direct` calls this thread makes inside the block.

        Each call runs in a savepoint of its own, so one that fails is undone alone and the others
        stand; the block commits them all at once, with one sync of the WAL where each would have had
        its own (group commit: with ``synchronous=full`` the sync is most of a small transaction's
        time). Inside the block the calls are not retried: the group holds the write lock, so SQLite
        is never busy for them. What the calls return must not be acted on before the block has
        ended: until then nothing of it is committed.

        :class:`GroupNotCommitted` says that nothing of the group was committed (its begin failed, or
        the block raised, or SQLite ended the transaction early), so each call may run again; an error
        of the ``COMMIT`` itself is raised as it is: whether it committed is not known. Inside a group
        already, the block changes nothing.

        On PostgreSQL the same: one transaction, a savepoint per call, one commit (one flush of the WAL,
        with ``synchronous_commit`` at its default ``on``, for the whole group), and one round trip for
        the ``BEGIN`` and one for the ``COMMIT`` where each call would have had its own. The locks a call
        takes (the intake's per-conversation advisory lock, a claimed row) are held until the group
        commits; a call that deadlocks with another worker's group fails alone (see
        :meth:`retry_alone`). A call does not wait for the writes it sends last: they go with the next
        call's first statements, or with the ``COMMIT`` (the intake: one round trip per message in a
        group, where it had two). Should one of them fail, the group is not committed
        (:class:`GroupNotCommitted`): every call runs again alone, and the one that failed meets its
        error there.
        """
        if getattr(self._grouped, "held", None) is not None:
            yield
            return
        held, _ = self._connection()
        pooled, direct = held
        committed = False
        try:
            try:
                if self.is_sqlite:  # on PostgreSQL the driver begins the transaction with the first statement
                    direct.execute("BEGIN IMMEDIATE")
            except Exception as exc:
                raise GroupNotCommitted(f"the group's transaction could not begin: {exc}") from exc
            self._grouped.held, self._grouped.broken, self._grouped.open = held, False, False
            direct.grouped, direct.earlier_failed = True, None
            try:
                yield
            except Exception as exc:
                raise GroupNotCommitted(f"the group's block failed: {exc}") from exc
            finally:
                self._grouped.held = None
                direct.grouped = False
            self._check_group(pooled)
            if self.is_sqlite:
                direct.execute("COMMIT")
            else:
                direct.start_call()  # the last call's writes are confirmed with the COMMIT
                try:
                    direct.commit()
                except EarlierWritesFailed as exc:  # the COMMIT was skipped: nothing of the group stands
                    raise GroupNotCommitted(f"a write of the group failed: {exc}") from exc
            committed = True
        finally:
            if not committed:
                try:
                    direct.rollback()
                except Exception:  # noqa: BLE001 - the connection is closed below all the same
                    log.debug("rollback of a failed group failed", exc_info=True)
            self._release(held, committed)
        if self._checkpointer is not None:
            self._checkpointer.nudge()

    def _check_group(self, pooled: PoolProxiedConnection) -> None:
        """Raise :class:`GroupNotCommitted` when the group cannot go on: a savepoint could not be undone, or
        SQLite ended the transaction by itself after an error (a full disk, an I/O error), so what the calls
        before wrote is gone and a savepoint now would start (and its release commit) a new transaction."""
        if self._grouped.broken or not self._in_transaction(pooled):
            self._grouped.broken = True
            raise GroupNotCommitted("the group's transaction ended early: the database rolled it back after an "
                                    "error, or the connection was lost")

    def _in_transaction(self, pooled: PoolProxiedConnection) -> bool:
        driver: Any = pooled.driver_connection
        if self.is_sqlite:
            return bool(driver.in_transaction)
        # psycopg: idle until the first statement begins the transaction; then in it (active while statements
        # are on their way in pipeline mode), unless the connection is lost (a savepoint rolled back ends a failed
        # statement's error state)
        return driver.info.transaction_status.name in ("IDLE", "INTRANS", "ACTIVE")

    def group_held(self) -> bool:
        """Whether this thread is inside a :meth:`group`."""
        return getattr(self._grouped, "held", None) is not None

    @staticmethod
    def retry_alone(exc: BaseException) -> bool:
        """Whether a call that failed inside a :meth:`group` with ``exc`` is to run again on its own after the
        group: PostgreSQL's deadlock or serialization failure, which the locks the group held may have caused
        (outside a group :meth:`run_direct` retries these itself)."""
        return isinstance(exc, LockBusy) or _is_serialization(exc)

    def _in_savepoint(self, held: tuple[PoolProxiedConnection, Direct], work: Callable[[Direct], T]) -> T:
        pooled, direct = held
        self._check_group(pooled)
        # PostgreSQL: the last call's savepoint is released with the next one's SAVEPOINT (or by the COMMIT), both
        # sent with the call's first statement waited for. The call does not wait for the writes it sends at its
        # end: they go to the server with the next call's first statements (or the COMMIT), one round trip for
        # both. Where one of them fails, that next wait raises EarlierWritesFailed: the group is broken and
        # nothing of it is committed, so every call runs again alone (and meets its own error there). SQLite takes
        # one statement at a time.
        together = not self.is_sqlite
        used = direct.start_call()
        if getattr(self._grouped, "open", False):
            self._grouped.open = False
            try:
                direct.send("RELEASE slabot_call")
                direct.send("SAVEPOINT slabot_call")
            except BaseException:
                self._grouped.broken = True  # the last call's savepoint may stand or not: commit none
                raise
        elif together:
            direct.send("SAVEPOINT slabot_call")
        else:
            direct.execute("SAVEPOINT slabot_call")
        try:
            result = work(direct)
            if not together:
                direct.sync()
        except BaseException:
            try:
                direct.settle()
                if direct.earlier_failed is not None:  # an earlier call's write failed: its savepoint is gone
                    self._grouped.broken = True
                direct.execute("ROLLBACK TO slabot_call")
                direct.execute("RELEASE slabot_call")
                direct.give_back(used)  # the numbers the call's undone rows took, for the next
            except BaseException:
                self._grouped.broken = True  # the call's writes may still be in the transaction: commit none
                raise
            raise
        if together:
            self._grouped.open = True
            return result
        try:
            direct.execute("RELEASE slabot_call")
        except BaseException:
            self._grouped.broken = True
            raise
        return result

    def _in_direct(self, work: Callable[[Direct], T], *, write: bool = True) -> T:
        """``work`` in a transaction of its own. On a held connection the server ended meanwhile (a restart of
        PostgreSQL ends every idle one) it runs once more on a new connection, when nothing of it can have been
        committed: it failed before its COMMIT was sent, or it only reads."""
        held, reused = self._connection()
        try:
            return self._transaction(held, work, write=write, retry_broken=reused)
        except _EndedBeforeCommit as ended:
            log.info("the server ended a held connection (%s); the transaction runs again on a new one", ended.error)
        return self._transaction(self._new_connection(), work, write=write, retry_broken=False)

    def _transaction(self, held: tuple[PoolProxiedConnection, Direct], work: Callable[[Direct], T], *,
                     write: bool, retry_broken: bool) -> T:
        pooled, direct = held
        reusable = False
        try:
            if self.is_sqlite:  # the connection runs in autocommit mode, see _tune_sqlite
                direct.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = work(direct)
            except BaseException as exc:
                self._roll_back(direct)
                if retry_broken and direct.broken and isinstance(exc, DBAPIError):
                    raise _EndedBeforeCommit(exc) from exc
                raise
            if self.is_sqlite and not write:
                pooled.rollback()  # nothing to keep: ends the read transaction
            elif self.is_sqlite:
                direct.execute("COMMIT")
                if self._checkpointer is not None:
                    self._checkpointer.nudge()
            else:
                try:
                    direct.commit()  # PostgreSQL: a read-only transaction's COMMIT writes nothing either
                except DBAPIError as exc:
                    if retry_broken and not write and direct.broken:
                        raise _EndedBeforeCommit(exc) from exc
                    raise
            reusable = True
            return result
        finally:
            self._release(held, reusable)

    @staticmethod
    def _roll_back(direct: Direct) -> None:
        """Roll back after ``work`` failed; on a connection the server ended there is nothing to roll back, and
        the error that showed it is the one raised."""
        try:
            direct.rollback()
        except DBAPIError:
            if not direct.broken:
                raise

    def _connection(self) -> tuple[tuple[PoolProxiedConnection, Direct], bool]:
        """A connection for plain statements, with its :class:`Direct`: a held one if there is one (on
        PostgreSQL checked first when it was idle a while); and whether it was a held one."""
        while self._held:
            try:
                held = self._held.pop()
            except IndexError:  # another thread took the last one
                break
            if self.is_sqlite or time.monotonic() - held[1].released_at < IDLE_PING_SECONDS or self._alive(held):
                return held, True
        return self._new_connection(), False

    def _new_connection(self) -> tuple[PoolProxiedConnection, Direct]:
        pooled = self.engine.raw_connection()
        driver = pooled.driver_connection
        return pooled, Direct(driver, self.engine.dialect, pipelined=not self.is_sqlite, spare=self._spare)

    def _alive(self, held: tuple[PoolProxiedConnection, Direct]) -> bool:
        """Whether a held PostgreSQL connection still answers; one that does not is closed."""
        try:
            held[1].execute("SELECT 1")
            held[1].commit()
            return True
        except Exception:  # noqa: BLE001 - a connection the server ended: a new one is taken
            log.debug("a held connection no longer answers; taking a new one", exc_info=True)
            self._close(held)
            return False

    def _release(self, held: tuple[PoolProxiedConnection, Direct], reusable: bool) -> None:
        """Keep the connection for the next transaction, or give it back to the pool (after an error always)."""
        if reusable and self._hold and not self._disposed and len(self._held) < self._held_limit:
            held[1].released_at = time.monotonic()
            self._held.append(held)
        else:
            self._close(held)

    @staticmethod
    def _close(held: tuple[PoolProxiedConnection, Direct]) -> None:
        """Give the connection back to the pool, out of pipeline mode (the pool's other users expect that)."""
        pooled, direct = held
        if direct.pipelined:
            try:
                direct.leave_pipeline()
            except Exception:  # noqa: BLE001 - a broken connection: the pool discards it
                pooled.invalidate()
        pooled.close()

    def _retrying(self, attempt_once: Callable[[], T], retries: int) -> T:
        attempt = 0
        while True:
            try:
                return attempt_once()
            except (OperationalError, DBAPIError) as exc:
                retryable = (self.is_sqlite and _is_locked(exc)) or _is_serialization(exc)
                if not retryable or attempt >= retries:
                    raise
                attempt += 1
                delay = min(0.05 * 2**attempt, 2.0) * (0.5 + random.random())
                log.debug("database busy (%s); retry %d in %.2fs", exc.__class__.__name__, attempt, delay)
                time.sleep(delay)

    def upgrade(self) -> None:
        """Apply the Alembic migrations up to the newest, once when several workers start at the same time: on
        PostgreSQL under a transaction-scoped advisory lock (the next worker waits, then finds nothing to do); on
        SQLite the write transaction admits one at a time. :class:`MigrationRefused` when the database's own
        revision is unknown to this slabot (a newer one wrote it)."""
        with self.engine.begin() as connection:
            if not self.is_sqlite:
                connection.exec_driver_sql(
                    "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '/slabot/migrations', 0))")
            config = alembic_config()
            config.attributes["connection"] = connection
            try:
                command.upgrade(config, "head")
            except CommandError as exc:
                raise MigrationRefused(f"the database's revision is unknown to this slabot: {exc}") from exc

    def ping(self) -> None:
        """A ``SELECT 1`` on a connection of its own: raises the driver's error when the database cannot answer."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def current_revision(self) -> str | None:
        """The applied migration revision, or None for an empty database."""
        with self.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            row = connection.exec_driver_sql("SELECT version_num FROM alembic_version").first()
            return None if row is None else str(row[0])

    def dispose(self) -> None:
        self._disposed = True
        while self._held:
            self._close(self._held.pop())
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.engine.dispose()


class _Checkpointer:
    """Copies SQLite's WAL into the database file from a thread of its own.

    A commit that has to checkpoint pays for it; done here, on its own
    connection, a passive checkpoint runs beside the writers (SQLite lets go of
    the GIL while it works) and the WAL stays small. The writers' own automatic
    checkpoint (every ``WAL_CHECKPOINT_PAGES``) remains as the fallback.
    """

    INTERVAL = 0.25  # seconds

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def nudge(self) -> None:
        """Called after a commit: starts the thread on first use. Never raises: the commit stands either way,
        and without the thread the writers' own checkpoints still run."""
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stop.is_set():
                    thread = threading.Thread(target=self._run, name="slabot-wal-checkpoint", daemon=True)
                    try:
                        thread.start()
                    except RuntimeError as exc:  # can't start new thread
                        log.warning("WAL checkpointer not started: %s", exc)
                        self._stop.set()
                        return
                    self._thread = thread

    def _run(self) -> None:
        try:
            pooled = self._engine.raw_connection()
        except Exception:  # the writers' own checkpoints still run
            log.warning("WAL checkpointer could not connect", exc_info=True)
            return
        try:
            driver = pooled.driver_connection
            assert driver is not None
            while not self._stop.wait(self.INTERVAL):
                try:
                    driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except Exception as exc:  # busy or closing: try again next round
                    log.debug("WAL checkpoint skipped: %s", exc)
        finally:
            pooled.close()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)


def alembic_config() -> AlembicConfig:
    """An Alembic config pointing at the migrations shipped in this package."""
    config = AlembicConfig()
    location = resources.files("storage").joinpath("migrations")
    config.set_main_option("script_location", str(location))
    return config


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite ``url`` (relative paths from the working folder); None for another database."""
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - a URL that cannot be read is not a SQLite file
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def open_database(url: str, *, migrate: bool = True, synchronous: str = "full") -> Database:
    """Open (and by default migrate) the database at ``url``; ``synchronous`` is SQLite's (see :class:`Database`)."""
    db = Database(url, synchronous=synchronous)
    if migrate:
        db.upgrade()
    return db
