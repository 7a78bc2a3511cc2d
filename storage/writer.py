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

Given a ``group`` (:meth:`storage.database.Database.group`), the thread runs
what has queued up meanwhile, up to ``batch`` jobs, in one transaction: each
job in a savepoint of its own, and one commit, one sync of the WAL, for all
(group commit). A job's future gets its result only after that commit. When
nothing of the group was committed (its begin failed, SQLite ended its
transaction early), every job of it runs again alone: the jobs are database
transactions that may run again (as on a busy database). When the commit
itself fails, whether it stands is not known: each job's caller gets that
error, as it would from a commit of its own. A job that failed in the group with
an error ``again`` accepts (PostgreSQL's deadlock with another worker's group,
which the locks this group held may have caused) runs again alone after the
group's commit.

PostgreSQL uses the same thread and the same groups (``slabot run`` makes one
writer whatever the database): one commit, one flush of the WAL, and no
``BEGIN``/``COMMIT`` round trips of their own for the jobs that queued up; a
job's last writes go to the server with the next job's first reads (see
:meth:`storage.database.Database.group`). A
second thread was measured (``benchmarks/bench_intake.py --writers 2``): no
faster, as the intake's Python, not the server, is what a message waits for,
and it took messages of one thread out of their order of arrival. Several
processes (``slabot run`` N times) are the way to more than one core.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from contextlib import AbstractContextManager
from typing import Any, ParamSpec, TypeVar

from storage.database import GroupNotCommitted

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

_Job = tuple["Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]



class SerialWriter(Executor):
    """An executor with one thread (or ``threads``: for a benchmark, see the module's docstring) and two lanes:
    :attr:`urgent` first, then what :meth:`submit` queued."""

    def __init__(self, name: str = "sqlite-writer", *,
                 group: Callable[[], AbstractContextManager[Any]] | None = None, batch: int = 32,
                 again: Callable[[BaseException], bool] | None = None, threads: int = 1) -> None:
        self._name = name
        self._count = max(1, threads)
        self._group = group
        self._again = again
        self._batch = max(1, batch)
        self._ready = threading.Condition()
        self._lanes: tuple[collections.deque[_Job], collections.deque[_Job]] = (
            collections.deque(), collections.deque())
        self._threads: list[threading.Thread] = []
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
            if not self._threads:
                for i in range(self._count):
                    thread = threading.Thread(target=self._work, name=self._name if i == 0 else f"{self._name}-{i}",
                                              daemon=True)
                    self._threads.append(thread)
                    thread.start()
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
                taken = [(urgent or normal).popleft()]
                if self._group is not None:
                    while (urgent or normal) and len(taken) < self._batch:
                        taken.append((urgent or normal).popleft())
            jobs = [job for job in taken if job[0].set_running_or_notify_cancel()]
            if len(jobs) > 1:
                self._run_grouped(jobs)
            elif jobs:
                self._run(jobs[0])

    @staticmethod
    def _run(job: _Job) -> None:
        future, fn, args, kwargs = job
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits the future
            future.set_exception(exc)
        else:
            future.set_result(result)

    def _run_grouped(self, jobs: list[_Job]) -> None:
        assert self._group is not None
        outcomes: list[tuple[bool, Any]] = []
        try:
            with self._group():
                for _, fn, args, kwargs in jobs:
                    try:
                        outcomes.append((True, fn(*args, **kwargs)))
                    except BaseException as exc:  # noqa: BLE001 - undone alone (its savepoint); handed on below
                        outcomes.append((False, exc))
        except GroupNotCommitted as exc:  # nothing of it stands
            log.warning("a group of %d writes was not committed (%s); each runs again alone", len(jobs), exc)
            for job in jobs:
                self._run(job)
            return
        except Exception as exc:  # noqa: BLE001 - the commit failed: handed to every job's caller
            log.error("the commit of a group of %d writes failed: %s: %s", len(jobs), exc.__class__.__name__, exc)
            for future, *_ in jobs:
                future.set_exception(exc)
            return
        again = []
        for job, (ok, value) in zip(jobs, outcomes):
            if ok:
                job[0].set_result(value)
            elif self._again is not None and self._again(value):
                again.append(job)
            else:
                job[0].set_exception(value)
        for job in again:  # after the others have their results: this one may wait for a lock
            log.info("a write of a group could not go on in it; it runs again alone")
            self._run(job)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Finish what is queued (or cancel it), then stop the thread."""
        with self._ready:
            self._closed = True
            if cancel_futures:
                for lane in self._lanes:
                    while lane:
                        lane.popleft()[0].cancel()
            self._ready.notify_all()
        if wait:
            for thread in self._threads:
                thread.join()


class _UrgentLane(Executor):
    """The writer's front lane, as an executor of its own (for ``loop.run_in_executor``)."""

    def __init__(self, writer: SerialWriter) -> None:
        self._writer = writer

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return self._writer._queue(0, fn, args, kwargs)
