"""An SMTP sink on loopback (aiosmtpd) that tests read and can make fail."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from helpers import free_port


@dataclass
class Sink:
    """Keeps every accepted mail; ``fail_next`` answers the next DATA with a given reply instead."""

    envelopes: list[Any] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def fail_next(self, reply: str) -> None:
        self.failures.append(reply)  # e.g. "451 4.3.0 try again later", "550 5.1.1 no such user"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.failures:
            return self.failures.pop(0)
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    @property
    def mails(self) -> list[EmailMessage]:
        return [message_from_bytes(e.content, policy=policy.default) for e in self.envelopes]  # type: ignore[misc]


@contextmanager
def smtp_sink() -> Iterator[tuple[Sink, int]]:
    """A running sink on 127.0.0.1 and its port."""
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()
