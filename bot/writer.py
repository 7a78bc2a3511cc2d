"""One thread for SQLite's writes: the webhooks' intake and the outbox dispatcher's transactions, in turn.

SQLite admits one writer at a time, and a writer that finds the lock taken
sleeps in SQLite's busy handler (1, 2, 5, 10, ... ms) even when the lock is
free again: a steady stream of webhooks ingesting on one thread kept the
dispatcher's transactions on another waiting for seconds. Here they queue
instead. Work submitted through :attr:`SerialWriter.urgent` goes before the
work queued normally: the dispatcher runs one short transaction per message
sent, so letting it pass a backlog of webhooks costs each of them a fraction
of a millisecond, and the acknowledgements keep going out while the intake is
busy.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_Job = tuple["Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class SerialWriter(Executor):
    """An executor with one thread and two lanes: :attr:`urgent` first, then what :meth:`submit` queued."""

    def __init__(self, name: str = "sqlite-writer") -> None:
        self._name = name
        self._ready = threading.Condition()
        self._lanes: tuple[collections.deque[_Job], collections.deque[_Job]] = (
            collections.deque(), collections.deque())
        self._thread: threading.Thread | None = None
        self._closed = False
        self.urgent: Executor = _UrgentLane(self)

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return self._queue(1, fn, args, kwargs)

    def _queue(self, lane: int, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future[T]:
        future: Future[T] = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._lanes[lane].append((future, fn, args, kwargs))
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
            self._ready.notify()
        return future

    def _work(self) -> None:
        urgent, normal = self._lanes
        while True:
            with self._ready:
                while not urgent and not normal:
                    if self._closed:
                        return
                    self._ready.wait()
                future, fn, args, kwargs = (urgent or normal).popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits the future
                future.set_exception(exc)
            else:
                future.set_result(result)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Finish what is queued (or cancel it), then stop the thread."""
        with self._ready:
            self._closed = True
            if cancel_futures:
                for lane in self._lanes:
                    while lane:
                        lane.popleft()[0].cancel()
            self._ready.notify_all()
        if wait and self._thread is not None:
            self._thread.join()


class _UrgentLane(Executor):
    """The writer's front lane, as an executor of its own (for ``loop.run_in_executor``)."""

    def __init__(self, writer: SerialWriter) -> None:
        self._writer = writer

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return self._writer._queue(0, fn, args, kwargs)
