"""One worker at a time for a job, when several ``slabot run`` share one database: a lease, taken and renewed.

A :class:`Lease` names a job (the staff chat's poller and rounds, the reader of
one mailbox). :meth:`Lease.renew` takes it when it is free or expired and
renews it while this worker has it (:mod:`storage.leases`: one statement, the
database's clock). :meth:`Lease.run_while_held` runs a job only while the lease
is this worker's: it waits for the lease, starts the job, renews every third of
the lease, and tells the job to end when the lease is lost (the database
unreachable counts as lost: another worker may take over after the expiry);
on stop it gives the lease up, so that another worker takes over at once. A
worker killed with kill -9 renews no more: another takes over within one lease.
One line is logged when this worker gains a lease and one when it loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from storage.database import Database, StorageError
from storage.leases import release_lease, take_lease

log = logging.getLogger(__name__)

LEASE_SECONDS = 30.0  # the default of [database] lease_seconds
Job = Callable[[asyncio.Event], Coroutine[Any, Any, None]]  # runs until the event is set


# the workers of this process that run now, by name (a test or the demo may run two dispatchers): what they
# claimed is not abandoned
_RUNNING: set[str] = set()


def worker_name() -> str:
    """This process, as the holder of a lease and the claimer of outbox rows and reminders: ``host:pid:random``
    (a later process that gets the same process id, as in a container, is another worker)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def running(worker: str, now_running: bool = True) -> None:
    """Say that ``worker``, a name of this process, runs now (or no longer: ``now_running`` False)."""
    if now_running:
        _RUNNING.add(worker)
    else:
        _RUNNING.discard(worker)


def worker_gone(worker: str | None, me: str) -> bool:
    """Whether the worker named ``worker`` has certainly stopped: a process of this host that no longer runs, or
    whose process id is this process's now while no worker of that name runs here. A worker of another host, or
    not named by :func:`worker_name`, is not known to be gone (a lease decides)."""
    parts = (worker or "").rsplit(":", 2)
    if worker == me or len(parts) != 3 or parts[0] != socket.gethostname()[:60] or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():  # an earlier process with this id, or a worker of this one that stopped
        return worker not in _RUNNING
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # a process of another user has that id now: it is not ours, but be careful
        return False
    return False


class Lease:
    """The lease ``name`` in ``db`` for ``holder``, for ``seconds`` at a time; see the module docstring."""

    def __init__(self, db: Database, name: str, *, holder: str, seconds: float = LEASE_SECONDS) -> None:
        self.db = db
        self.name = name
        self.holder = holder
        self.seconds = seconds
        self.held = False

    @property
    def renew_every(self) -> float:
        """Seconds between two renewals: a third of the lease, so that one late renewal does not lose it."""
        return self.seconds / 3

    async def renew(self) -> bool:
        """Take the lease or renew it; True while this worker holds it."""
        try:
            held = await asyncio.to_thread(self.db.run_direct,
                                           lambda d: take_lease(d, self.name, self.holder, self.seconds))
        except StorageError as exc:  # the database is down: another worker may take over after the expiry
            if self.held:
                log.warning("%s: the lease could not be renewed (%s); this worker stops it", self.name, exc)
            held = False
        if held != self.held:
            log.info("%s: %s", self.name, "this worker has it now" if held else "another worker has it now")
        self.held = held
        return held

    async def release(self) -> None:
        """Give the lease up (if held), so that another worker takes over at once."""
        if not self.held:
            return
        self.held = False
        try:
            await asyncio.to_thread(self.db.run_direct, lambda d: release_lease(d, self.name, self.holder))
        except StorageError as exc:  # it expires all the same
            log.warning("%s: the lease could not be given up (%s); it expires in %.0f s", self.name, exc,
                        self.seconds)

    def leased(self, work: Job) -> Job:
        """``work`` run only while this worker holds the lease (:meth:`run_while_held`)."""
        return lambda stop: self.run_while_held(work, stop)

    async def run_while_held(self, work: Job, stop: asyncio.Event) -> None:
        """Run ``work(done)`` while this worker holds the lease, until ``stop``; ``done`` is set when ``stop`` is
        or the lease is lost, and ``work`` then ends. Its error is raised here."""
        try:
            while not stop.is_set():
                if await self.renew():
                    await self._held(work, stop)
                else:
                    await _pause(stop, self.renew_every)
        finally:
            await self.release()

    async def _held(self, work: Job, stop: asyncio.Event) -> None:
        done = asyncio.Event()
        task = asyncio.create_task(work(done), name=f"{self.name} (leased)")
        try:
            while not task.done():
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait({task, stopping}, timeout=self.renew_every, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if not task.done() and (stop.is_set() or not await self.renew()):
                    done.set()
                    await task
        finally:
            if not task.done():  # cancelled from outside
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        task.result()
        if not stop.is_set() and not done.is_set():
            await _pause(stop, self.renew_every)  # the job ended by itself: not at once again


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


__all__ = ["LEASE_SECONDS", "Lease", "running", "worker_gone", "worker_name"]
