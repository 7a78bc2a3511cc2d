"""An SMTP sink on loopback (aiosmtpd): it keeps every mail it accepts and can be told to refuse the next one, or
to answer it late (a sender killed mid-send).

aiosmtpd's ``Controller`` serves in a thread of its own, so the sink works
beside any event loop (and without one). ``Controller(port=0)`` does not work
(its start-up self-check connects to the port it was given), so a free port is
chosen first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from bot.demo.standins.loopback import free_port


@dataclass
class SmtpSink:
    """Keeps every accepted mail; :meth:`fail_next` answers the next DATA with a given reply instead."""

    envelopes: list[Any] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)

    def fail_next(self, reply: str) -> None:
        self.failures.append(reply)  # e.g. "451 4.3.0 try again later", "550 5.1.1 no such user"

    def answer_after(self, seconds: float) -> None:
        """The next mail is kept at once and answered ``seconds`` later."""
        self.delays.append(seconds)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.failures:
            return self.failures.pop(0)
        self.envelopes.append(envelope)
        if self.delays:
            await asyncio.sleep(self.delays.pop(0))
        return "250 Message accepted for delivery"

    @property
    def mails(self) -> list[EmailMessage]:
        """The accepted mails, parsed (``envelope.content`` holds the raw bytes)."""
        return [message_from_bytes(e.content, policy=policy.default) for e in self.envelopes]


@contextmanager
def smtp_sink(sink: SmtpSink | None = None) -> Iterator[tuple[SmtpSink, int]]:
    """A running sink on 127.0.0.1 and its port, stopped after the block."""
    running = sink or SmtpSink()
    port = free_port()
    controller = Controller(running, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield running, port
    finally:
        controller.stop()


__all__ = ["SmtpSink", "smtp_sink"]
