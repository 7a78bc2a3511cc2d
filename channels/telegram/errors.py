"""The telegram channel's errors: python-telegram-bot's, translated where they are caught.

    TelegramChannelError
    ├── TelegramUnreachableError (ConnectionError)   NetworkError: Telegram down, 5xx, connection refused
    ├── TelegramTimeoutError (TimeoutError)          TimedOut: no answer in time
    ├── TelegramRateLimitedError                     RetryAfter: flood control, ``retry_after`` seconds
    ├── TelegramRefusedError                         BadRequest, Forbidden, InvalidToken, Conflict, ...
    ├── NotAnUpdateError (ValueError)                a webhook body that is no update
    └── TelegramStoppedError                         an update arrived while the application is stopped

The message of a translated error is the library's (``Bad Gateway``), the library's error its ``__cause__``.
"""

from __future__ import annotations

from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError, TimedOut


class TelegramChannelError(Exception):
    """The Bot API failed or refused."""


class TelegramUnreachableError(TelegramChannelError, ConnectionError):
    """Telegram cannot be reached (network, 5xx): try again later."""


class TelegramTimeoutError(TelegramChannelError, TimeoutError):
    """Telegram did not answer in time: the request may or may not have been carried out."""


class TelegramRateLimitedError(TelegramChannelError):
    """Flood control: nothing more to this bot for ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TelegramRefusedError(TelegramChannelError):
    """Telegram refused the request as it is (bad request, blocked, wrong token, a second poller)."""


class NotAnUpdateError(TelegramChannelError, ValueError):
    """What was posted to the webhook is not a Telegram update."""


class TelegramStoppedError(TelegramChannelError):
    """The application is not running: an update cannot be taken now (Telegram posts it again)."""


def translated(exc: TelegramError) -> TelegramChannelError:
    """The channel's own error for a python-telegram-bot error (raise it ``from exc``)."""
    message = str(exc)
    if isinstance(exc, RetryAfter):
        seconds = exc.retry_after
        return TelegramRateLimitedError(message, seconds if isinstance(seconds, (int, float))
                                        else seconds.total_seconds())
    if isinstance(exc, TimedOut):
        return TelegramTimeoutError(message)
    if isinstance(exc, NetworkError) and not isinstance(exc, BadRequest):
        return TelegramUnreachableError(message)
    return TelegramRefusedError(message)


__all__ = ["NotAnUpdateError", "TelegramChannelError", "TelegramRateLimitedError", "TelegramRefusedError",
           "TelegramStoppedError", "TelegramTimeoutError", "TelegramUnreachableError", "translated"]
