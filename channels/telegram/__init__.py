"""Telegram's Bot API (python-telegram-bot): the transport of the staff chat and its errors."""

from __future__ import annotations

from channels.telegram.errors import (
    NotAnUpdateError,
    TelegramChannelError,
    TelegramRateLimitedError,
    TelegramRefusedError,
    TelegramStoppedError,
    TelegramTimeoutError,
    TelegramUnreachableError,
)
from channels.telegram.transport import (
    Buttons,
    TelegramTransport,
    UpdateHandler,
    UpdateSink,
)

__all__ = ["Buttons", "NotAnUpdateError", "TelegramChannelError", "TelegramRateLimitedError", "TelegramRefusedError",
           "TelegramStoppedError", "TelegramTimeoutError", "TelegramTransport", "TelegramUnreachableError",
           "UpdateHandler", "UpdateSink"]
