"""The SQLite writer thread: one job at a time, the urgent lane first, errors handed to the caller; jobs queued
meanwhile committed in one transaction (group commit)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from storage.writer import SerialWriter
from storage.database import Database, open_database
from storage.direct import Direct


def test_urgent_work_runs_before_work_queued_earlier() -> None:
    writer = SerialWriter()
    gate = threading.Event()
    order: list[str] = []
    blocker = writer.submit(gate.wait)  # keeps the thread busy while the rest is queued
    normal = [writer.submit(order.append, f"intake {i}") for i in range(3)]
    urgent = writer.urgent.submit(order.append, "dispatcher")
    gate.set()
    for future in (blocker, *normal, urgent):
        future.result(timeout=5)
    writer.shutdown()
    assert order == ["dispatcher", "intake 0", "intake 1", "intake 2"]


def test_one_thread_runs_every_job_and_errors_reach_the_caller() -> None:
    writer = SerialWriter(name="test-writer")
    names = {writer.submit(lambda: threading.current_thread().name).result(timeout=5) for _ in range(5)}
    assert names == {"test-writer"}
    failing = writer.urgent.submit(int, "not a number")
    with pytest.raises(ValueError):
        failing.result(timeout=5)

    async def from_the_loop() -> int:
        return await asyncio.get_running_loop().run_in_executor(writer, sum, [1, 2, 3])

    assert asyncio.run(from_the_loop()) == 6
    writer.shutdown()
    with pytest.raises(RuntimeError):
        writer.submit(int, "1")


def test_shutdown_finishes_what_is_queued() -> None:
    writer = SerialWriter()
    gate = threading.Event()
    done: list[int] = []
    writer.submit(gate.wait)
    for i in range(3):
        writer.submit(done.append, i)
    gate.set()
    writer.shutdown(wait=True)
    assert done == [0, 1, 2]


# -- group commit on SQLite ----------------------------------------------------------------------------------------


def _note(db: Database, text: str, fail: bool = False) -> int:
    """One job as the intake's: a transaction of its own that stores a row (and fails after it if told)."""
    def work(d: Direct) -> int:
        d.execute("INSERT INTO counters (name, value) VALUES (:name, 1)", {"name": text})
        if fail:
            raise ValueError(f"{text} failed after its write")
        return int(d.scalar("SELECT count(*) FROM counters"))
    return db.run_direct(work)


def _names(db: Database) -> set[str]:
    return {r[0] for r in db.read_direct(lambda d: d.execute("SELECT name FROM counters").fetchall())}


def _busy(writer: SerialWriter) -> tuple[threading.Event, Future[None]]:
    """Keep the writer's thread busy until the returned event is set; returns once it is."""
    started, gate = threading.Event(), threading.Event()

    def block() -> None:
        started.set()
        gate.wait()

    future = writer.submit(block)
    assert started.wait(5)
    return gate, future


def _committed(path: Path) -> set[str]:
    """The names committed, read on a connection of its own."""
    with sqlite3.connect(path) as connection:
        return {r[0] for r in connection.execute("SELECT name FROM counters")}


def test_jobs_queued_meanwhile_commit_together_and_a_failing_one_alone_is_undone(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'group.db'}")
    groups: list[int] = []
    real_group = db.group

    @contextmanager
    def counted() -> Iterator[None]:
        with real_group():
            groups.append(1)
            yield

    writer = SerialWriter(group=counted)
    try:
        gate, blocker = _busy(writer)  # the thread is busy while five jobs queue up
        futures = [writer.submit(_note, db, f"job {i}", fail=i == 2) for i in range(5)]
        gate.set()
        blocker.result(timeout=5)
        results = []
        for i, future in enumerate(futures):
            if i == 2:
                with pytest.raises(ValueError, match="job 2 failed"):
                    future.result(timeout=5)
            else:
                results.append(future.result(timeout=5))
        assert groups == [1]  # the five ran in one transaction
        assert results == [1, 2, 3, 4]  # each saw the writes of those before it; job 2's was undone at once
        assert _names(db) == {"job 0", "job 1", "job 3", "job 4"}
    finally:
        writer.shutdown()
        db.dispose()


def test_results_wait_for_the_groups_commit_and_a_group_not_committed_runs_each_job_alone(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'group.db'}")
    seen_before_commit: list[set[str]] = []
    attempts: list[str] = []

    @contextmanager
    def failing_commit() -> Iterator[None]:
        with db.group():
            yield
            seen_before_commit.append(_committed(tmp_path / "group.db"))
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))  # before the commit

    writer = SerialWriter(group=failing_commit)
    try:
        gate, _ = _busy(writer)

        def job(name: str) -> str:
            attempts.append(name)
            _note(db, name)
            return name

        futures = [writer.submit(job, f"job {i}") for i in range(3)]
        gate.set()
        assert [f.result(timeout=5) for f in futures] == ["job 0", "job 1", "job 2"]
        assert seen_before_commit == [set()]
        assert attempts == ["job 0", "job 1", "job 2"] * 2  # in the group, then each alone
        assert _names(db) == {"job 0", "job 1", "job 2"}  # stored once: the group's writes were rolled back
    finally:
        writer.shutdown()
        db.dispose()


def test_a_failed_commit_reaches_every_caller_and_nothing_runs_twice(tmp_path: Path) -> None:
    """Whether a commit that failed stands is not known: the jobs are not run again (the outbox's claims would
    claim other rows), each caller gets the error as from a commit of its own."""
    db = open_database(f"sqlite:///{tmp_path / 'group.db'}")
    attempts: list[str] = []

    @contextmanager
    def commit_fails_after_writing() -> Iterator[None]:
        with db.group():
            yield
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    def job(name: str) -> str:
        attempts.append(name)
        _note(db, name)
        return name

    writer = SerialWriter(group=commit_fails_after_writing)
    try:
        gate, _ = _busy(writer)
        futures = [writer.submit(job, f"job {i}") for i in range(3)]
        gate.set()
        for future in futures:
            with pytest.raises(OperationalError, match="disk I/O error"):
                future.result(timeout=5)
        assert attempts == ["job 0", "job 1", "job 2"]
        assert _committed(tmp_path / "group.db") == {"job 0", "job 1", "job 2"}
    finally:
        writer.shutdown()
        db.dispose()


def test_an_error_whose_values_say_busy_is_not_retried(tmp_path: Path) -> None:
    """Only SQLite's busy and locked errors are retried, known by their code: not a constraint violation whose
    statement carries a message that says "busy" (retried, it held the write lock for seconds)."""
    db = open_database(f"sqlite:///{tmp_path / 'busy.db'}")
    try:
        _note(db, "I'm busy, call me later; the database is locked for me")
        attempts: list[int] = []

        def again(d: Direct) -> None:
            attempts.append(1)
            d.execute("INSERT INTO counters (name, value) VALUES (:name, 1)",
                      {"name": "I'm busy, call me later; the database is locked for me"})

        with pytest.raises(IntegrityError):
            db.run_direct(again)
        assert attempts == [1]
    finally:
        db.dispose()


def test_a_group_whose_transaction_sqlite_ended_early_fails_and_each_job_runs_alone(tmp_path: Path) -> None:
    """After some errors (a full disk) SQLite rolls the whole transaction back: the jobs before it in the group
    lost their writes, and the ones after must not go on in a new transaction that would commit only them."""
    db = open_database(f"sqlite:///{tmp_path / 'group.db'}")
    writer = SerialWriter(group=db.group)
    runs: list[str] = []

    def ends_the_transaction(d: Direct) -> None:
        d.execute("ROLLBACK")  # as SQLite does on its own after SQLITE_FULL
        raise OperationalError("INSERT", {}, Exception("database or disk is full"))

    def rolled_back() -> None:
        runs.append("b")
        db.run_direct(ends_the_transaction)

    try:
        gate, _ = _busy(writer)
        first = writer.submit(_note, db, "a")
        failing = writer.submit(rolled_back)
        last = writer.submit(_note, db, "c")
        gate.set()
        assert first.result(timeout=5) >= 1 and last.result(timeout=5) >= 1
        with pytest.raises(OperationalError, match="disk is full"):
            failing.result(timeout=5)
        assert runs == ["b", "b"]  # in the group, then alone
        assert _committed(tmp_path / "group.db") == {"a", "c"}
    finally:
        writer.shutdown()
        db.dispose()


def test_a_group_is_one_transaction_on_sqlite_and_on_postgresql(db: Database) -> None:
    with db.group():
        first = _note(db, "a")
        second = _note(db, "b")
        other = db.engine.raw_connection()  # not yet committed: another connection sees nothing
        try:
            cursor = other.cursor()
            cursor.execute("SELECT count(*) FROM counters")
            assert cursor.fetchone()[0] == 0
        finally:
            other.close()
    assert (first, second) == (1, 2)
    assert _names(db) == {"a", "b"}


def test_a_job_that_deadlocked_in_a_group_runs_again_alone_after_the_groups_commit(db: Database) -> None:
    """On PostgreSQL a job of one worker's group can deadlock with another worker's (each holds a conversation's
    lock the other waits for): the database fails one of them, and the writer runs it again on its own."""
    tries: list[bool] = []

    def deadlocking(d: Direct) -> int:
        d.execute("INSERT INTO counters (name, value) VALUES ('again', 1)")
        tries.append(db.group_held())
        if len(tries) == 1:
            raise OperationalError("SELECT pg_advisory_xact_lock(...)", {}, psycopg.errors.DeadlockDetected(
                "deadlock detected"))
        return len(tries)

    writer = SerialWriter(group=db.group, again=db.retry_alone)
    try:
        gate, blocker = _busy(writer)
        futures = [writer.submit(_note, db, "before"), writer.submit(db.run_direct, deadlocking),
                   writer.submit(_note, db, "after")]
        gate.set()
        blocker.result(timeout=5)
        assert [f.result(timeout=10) for f in futures] == [1, 2, 2]  # "after" saw "before" only
        assert tries == [True, False]  # in the group, then alone
        assert _names(db) == {"before", "again", "after"}
        failing = writer.submit(db.run_direct, lambda d: int("x"))  # other errors still reach the caller
        with pytest.raises(ValueError):
            failing.result(timeout=5)
    finally:
        writer.shutdown()
