"""What every running part of slabot shares: one start/stop lifecycle, and loops that log a change once.

A component is built once by the composition root (:mod:`bot.app`), started in the
order of its table there and stopped in reverse. A background loop keeps a
:class:`StateLog`: one warning when its job starts failing, one line when it works
again, never a line per retry, and the change handed on (to ``/healthz``) when asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from channels.messages import utc_now

log = logging.getLogger(__name__)

HealthReport = Callable[[str, str | None], None]  # ("up" | "down", reason): what /healthz shows of a component


class Component(Protocol):
    """A running part: started once after those before it in the root's table, stopped before them."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class ChannelState:
    """What /healthz says of a channel: up, down (with the reason) or off (not configured)."""

    state: str  # up | down | off
    reason: str | None = None
    since: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {"state": self.state, "reason": self.reason,
                "since": self.since.isoformat() if self.since else None}


@dataclass
class Health:
    """The state of each channel, set by the part that owns it; a change of state is logged once."""

    channels: dict[str, ChannelState] = field(default_factory=dict)

    def set(self, channel: str, state: str, reason: str | None = None, now: datetime | None = None) -> None:
        current = self.channels.get(channel)
        if current is not None and current.state == state and current.reason == reason:
            return
        if current is None or current.state != state:
            level = logging.WARNING if state == "down" else logging.INFO
            log.log(level, "channel %s: %s%s", channel, state, f" ({reason})" if reason else "")
        self.channels[channel] = ChannelState(state, reason, now or utc_now())

    def reporter(self, channel: str) -> HealthReport:
        """A callback for one channel's owner: ``report(state, reason)``."""
        return lambda state, reason: self.set(channel, state, reason)


def reason_of(exc: BaseException) -> str:
    """An error as one short line: its class and its message."""
    return f"{exc.__class__.__name__}: {exc}"


class StateLog:
    """The state of a job that runs in rounds, logged when it changes.

    ``failed`` logs ``down`` (a %-format with one ``%s`` for the reason) only when the job was working;
    ``worked`` logs ``up`` only when it was failing. ``health``, when given, hears of every failure (with
    its reason) and of the recovery.
    """

    def __init__(self, logger: logging.Logger, down: str, up: str, *, health: HealthReport | None = None,
                 exc_info: bool = False) -> None:
        self.logger = logger
        self.down = down
        self.up = up
        self.health = health
        self.exc_info = exc_info
        self.failing = False

    def failed(self, exc: BaseException) -> None:
        reason = reason_of(exc)
        if not self.failing:
            self.failing = True
            self.logger.warning(self.down, reason, exc_info=exc if self.exc_info else None)
        if self.health is not None:
            self.health("down", reason)

    def worked(self) -> None:
        if self.failing:
            self.failing = False
            self.logger.info(self.up)
            if self.health is not None:
                self.health("up", None)


async def every(seconds: float, job: Callable[[], Awaitable[object]], stop: asyncio.Event, state: StateLog) -> None:
    """Run ``job`` every ``seconds`` until ``stop`` is set; a failing round is logged by ``state`` and tried
    again next round. ``stop`` ends the pause between rounds at once."""
    while not stop.is_set():
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - logged once by the state, tried again next round
            state.failed(exc)
        else:
            state.worked()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
