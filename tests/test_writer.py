"""The SQLite writer thread: one job at a time, the urgent lane first, errors handed to the caller."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bot.writer import SerialWriter


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
