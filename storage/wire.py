"""Statements on a psycopg connection in libpq's pipeline mode, sent in batches (PostgreSQL).

psycopg's own pipeline mode waits for the socket around each statement it
sends (``poll``, ``send``, a look for answers: about 25 µs of the client's CPU
per statement, ``benchmarks/bench_wire.py``). :class:`Wire` writes statements
to the socket without waiting, every :data:`FLUSH_EVERY` (the server starts on
them while the next are made), and reads the answers only where one is waited
for (:meth:`Wire.sync`), all of them in one go. It works below
psycopg's cursors, with psycopg's own adaptation of values (its
``Transformer``: the same types and formats as a cursor sends) and psycopg's
exceptions for the server's errors.

Every statement is prepared on its first use (a cursor prepares on its fifth),
named per connection, at most :data:`MAX_PREPARED` of them; the rest go
unnamed. A statement's ``%(name)s`` and ``%s`` placeholders (the driver's form,
see :mod:`storage.direct`) become ``$1``, ``$2``.

While a :class:`Wire` is open nothing else may use its connection; :meth:`Wire.close`
gives it back in its ordinary mode.
"""

from __future__ import annotations

import re
import select
from collections import deque
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any
from weakref import WeakKeyDictionary

from psycopg import Connection, errors, pq
from psycopg.adapt import PyFormat, Transformer

MAX_PREPARED = 256  # named statements per connection; more go unnamed
# statements handed to the socket together: each write wakes the server for what it brings, which it then runs
# while the caller makes the next ones. One write per statement costs both sides a system call and a wake-up
# each; writing only where an answer is waited for leaves the server idle meanwhile. Every third, measured with
# bench_intake.py against every one and none: one process 515-556 messages/s (every one 498-508, none
# 447-453), two processes 860-1,077/s (every one 762-824, none 952-1,024).
FLUSH_EVERY = 3
_MARK = re.compile(r"%\((\w+)\)s|%s|%%")
_OK = frozenset({pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK, pq.ExecStatus.EMPTY_QUERY})
_SYNC = pq.ExecStatus.PIPELINE_SYNC
_ABORTED = pq.ExecStatus.PIPELINE_ABORTED
_AUTO = PyFormat.AUTO

_Key = tuple[bytes, tuple[int, ...]]  # a statement's text and its parameters' types


class _Prepared:
    """The statements prepared on one connection (they outlive a :class:`Wire`: the connection may be put in
    pipeline mode again), by :data:`_Key`, each under a name never given before on that connection."""

    __slots__ = ("made", "names")

    def __init__(self) -> None:
        self.names: dict[_Key, bytes] = {}
        self.made = 0

    def new(self, key: _Key) -> bytes:
        self.made += 1
        name = self.names[key] = f"_slabot_{self.made}".encode()
        return name


_PREPARED: WeakKeyDictionary[Connection[Any], _Prepared] = WeakKeyDictionary()


@lru_cache(maxsize=1024)
def numbered(statement: str) -> tuple[bytes, tuple[str, ...] | int]:
    """``statement`` with ``$n`` placeholders, and the names of its parameters in their order (``%(name)s``) or
    their count (``%s``)."""
    names: dict[str, int] = {}
    count = 0

    def mark(match: re.Match[str]) -> str:
        nonlocal count
        text = match.group(0)
        if text == "%%":
            return "%"
        name = match.group(1)
        if name is None:
            count += 1
            return f"${count}"
        if name not in names:
            names[name] = len(names) + 1
        return f"${names[name]}"

    text = _MARK.sub(mark, statement)
    if names and count:
        raise ValueError("a statement takes its parameters by name or by position, not both")
    return text.encode(), tuple(names) if names else count


class Pending:
    """What the server answered to one statement sent: its result, or its error, once :meth:`Wire.sync` read it.
    ``number``: the statement's place among those sent on the :class:`Wire` (:attr:`Wire.sent`)."""

    __slots__ = ("done", "error", "number", "result")

    def __init__(self, number: int = 0) -> None:
        self.number = number
        self.done = False
        self.result: pq.abc.PGresult | None = None
        self.error: errors.Error | None = None


class Rows:
    """A statement's answer, as much of a DBAPI cursor as :class:`storage.direct.Direct`'s callers use."""

    __slots__ = ("_at", "_rows", "rowcount")

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self._rows, self._at, self.rowcount = rows, 0, rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._at = self._rows[self._at:], len(self._rows)
        return rows

    def __iter__(self) -> Any:
        return iter(self.fetchall())


class Wire:
    """``connection`` (psycopg, in autocommit mode: the caller sends its own ``BEGIN``) in pipeline mode, until
    :meth:`close`."""

    def __init__(self, connection: Connection[Any]) -> None:
        self._pgconn = connection.pgconn
        self._encoding = connection.info.encoding
        self._dumper = Transformer(connection)
        self._loader = Transformer(connection)
        self._prepared = _PREPARED.setdefault(connection, _Prepared())
        # what was sent and not yet read: a Pending per statement, the key of each PREPARE (with the number of its
        # statement)
        self._queue: deque[Pending | tuple[_Key, int]] = deque()
        self.sent = 0  # statements sent so far
        self.failed_at: int | None = None  # the number of the statement whose error the last sync returned
        self._held = 0  # statements in libpq's buffer, not yet written to the socket
        self._pgconn.enter_pipeline_mode()

    def send(self, statement: str, params: Mapping[str, Any] | Sequence[Any]) -> Pending:
        """Send ``statement`` (the driver's placeholders) with ``params`` without waiting; its answer is read at the
        next :meth:`sync`."""
        text, names = numbered(statement)
        if isinstance(names, tuple):
            values: Sequence[Any] = [params[n] for n in names]  # type: ignore[call-overload]
        else:
            values = params  # type: ignore[assignment]
            if len(values) != names:
                raise errors.ProgrammingError(f"the statement takes {names} parameters, {len(values)} given")
        pgconn = self._pgconn
        if values:
            dumped = self._dumper.dump_sequence(values, [_AUTO] * len(values))
            types, formats = self._dumper.types or (), self._dumper.formats
        else:
            dumped, types, formats = [], (), []
        key = (text, types)
        prepared = self._prepared
        self.sent += 1
        name = prepared.names.get(key)
        if name is None and len(prepared.names) < MAX_PREPARED:
            name = prepared.new(key)
            pgconn.send_prepare(name, text, param_types=types)
            self._queue.append((key, self.sent))
        pending = Pending(self.sent)
        if name is None:
            pgconn.send_query_params(text, dumped, param_types=types, param_formats=formats)
        else:
            pgconn.send_query_prepared(name, dumped, param_formats=formats)
        self._queue.append(pending)
        self._held += 1
        if self._held >= FLUSH_EVERY:  # on their way, without waiting for the socket
            pgconn.flush()
            self._held = 0
        return pending

    def sync(self) -> errors.Error | None:
        """Send what is queued, wait for every answer, and return the first error among them (None if none).
        After an error the server skipped the statements after it up to here; they have that error too."""
        if not self._queue:
            return None
        pgconn = self._pgconn
        pgconn.pipeline_sync()
        self._held = 0
        self._flush()
        first: errors.Error | None = None
        self.failed_at = None
        queue = self._queue
        while True:
            results = self._fetch()
            if results and results[-1].status == _SYNC:
                break
            waiting = queue.popleft()
            error = self._error(results)
            if not isinstance(waiting, Pending):  # a PREPARE: forgotten if it failed, to be prepared again
                if error is not None:
                    key, number = waiting
                    self._prepared.names.pop(key, None)
                    if first is None:  # the statement's own error (it then has PipelineAborted)
                        first, self.failed_at = error, number
                continue
            waiting.done = True
            if error is not None:
                waiting.error = error
                if first is None:
                    first, self.failed_at = error, waiting.number
            else:
                waiting.result = results[-1] if results else None
        return first

    def rows(self, pending: Pending) -> Rows:
        """The rows of a statement read by :meth:`sync`."""
        result = pending.result
        if result is None:
            return Rows([], -1)
        tuples = result.command_tuples
        if result.status != pq.ExecStatus.TUPLES_OK:
            return Rows([], -1 if tuples is None else tuples)
        loader = self._loader
        loader.set_pgresult(result)
        return Rows(loader.load_rows(0, result.ntuples, tuple), -1 if tuples is None else tuples)

    def close(self) -> None:
        """Read what is still unread, and take the connection out of pipeline mode."""
        try:
            if self._queue:
                self.sync()
        finally:
            self._pgconn.exit_pipeline_mode()

    # -- the socket ---------------------------------------------------------------------------------------------

    def _error(self, results: list[pq.abc.PGresult]) -> errors.Error | None:
        for result in results:
            if result.status == _ABORTED:
                return errors.PipelineAborted("a statement before this one failed")
            if result.status not in _OK:
                return errors.error_from_result(result, encoding=self._encoding)
        return None

    def _wait(self, *, write: bool) -> int:
        """Wait until the socket can be read (or written, with ``write``); the events that came (``poll``: any
        file number, where ``select`` takes those below 1024 only)."""
        poller = select.poll()
        poller.register(self._pgconn.socket, select.POLLIN | (select.POLLOUT if write else 0))
        events = poller.poll()
        return events[0][1] if events else 0

    def _flush(self) -> None:
        pgconn = self._pgconn
        while pgconn.flush() == 1:  # the socket is full: read what the server answers meanwhile, then go on
            if self._wait(write=True) & (select.POLLIN | select.POLLHUP | select.POLLERR):
                pgconn.consume_input()

    def _fetch(self) -> list[pq.abc.PGresult]:
        """The results of the next statement (or the sync)."""
        pgconn = self._pgconn
        results: list[pq.abc.PGresult] = []
        while True:
            while pgconn.is_busy():
                self._wait(write=False)
                pgconn.consume_input()
            result = pgconn.get_result()
            if result is None:
                return results
            if result.status == _SYNC:  # no empty result follows a sync
                return [result]
            results.append(result)
