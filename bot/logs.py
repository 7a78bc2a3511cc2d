"""Logging for ``slabot run``: one line per record, and no secret in any of them.

The Bot API puts the bot token in every request URL
(``.../bot<token>/getUpdates``), so the HTTP client's request log would print
it; a database URL may carry a password. :func:`configure` quiets the HTTP
clients' per-request lines and installs :class:`SecretFilter` on the handlers,
which masks every configured secret (and any URL's password) with ``***`` in
whatever a record would print, tracebacks included (:class:`bot.config.Masker`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from bot.config import Masker, SlabotConfig, secret_values

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET = ("apscheduler", "httpx", "httpcore")  # a line per reminder wake-up or HTTP request, at INFO


def secrets_of(config: SlabotConfig) -> list[str]:
    """Every configured secret value (and the database URL when it carries a password), longest first."""
    return sorted(set(secret_values(config)), key=len, reverse=True)


class SecretFilter(logging.Filter):
    """Masks the given secrets (:class:`bot.config.Masker`) in a record's message, arguments and traceback."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.mask = Masker(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.mask(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure(config: SlabotConfig, level: int = logging.INFO) -> SecretFilter:
    """Root logging to stderr at ``level``, chatty libraries at WARNING, secrets filtered on every handler."""
    logging.basicConfig(level=level, format=FORMAT)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    secret_filter = SecretFilter(secrets_of(config))
    for handler in logging.getLogger().handlers:
        handler.addFilter(secret_filter)
    return secret_filter


__all__ = ["FORMAT", "SecretFilter", "configure", "secrets_of"]
