"""An SMTP sink on loopback (aiosmtpd) that tests read and can make fail: the one ``slabot demo`` uses."""

from __future__ import annotations

from bot.demo.standins.smtp import SmtpSink as Sink
from bot.demo.standins.smtp import smtp_sink

__all__ = ["Sink", "smtp_sink"]
