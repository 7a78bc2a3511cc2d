"""Logging for ``slabot run``: one line per record, and no secret in any of them.

The Bot API puts the bot token in every request URL
(``.../bot<token>/getUpdates``), so the HTTP client's request log would print
it; a database URL may carry a password. :func:`configure` quiets the HTTP
clients' per-request lines and installs :class:`SecretFilter` on the handlers,
which replaces every configured secret (and a database URL's password) with
``***`` in whatever a record would print, tracebacks included.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from bot.config import SECRET_KEYS, SlabotConfig, shown_url

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET = ("apscheduler", "httpx", "httpcore")  # a line per reminder wake-up or HTTP request, at INFO


def secrets_of(config: SlabotConfig) -> list[str]:
    """Every configured secret value, longest first (so no secret is half-replaced by a shorter one)."""
    values = []
    for dotted in SECRET_KEYS:
        section, key = dotted.split(".")
        secret = getattr(getattr(config, section), key, None)
        if secret is not None and secret.get_secret_value():
            values.append(secret.get_secret_value())
    url = config.database.url
    if shown_url(url) != url:
        values.append(url)
    return sorted(set(values), key=len, reverse=True)


class SecretFilter(logging.Filter):
    """Replaces the given secrets in a record's message, arguments and traceback with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 4]  # a 1-3 character "secret" would blank ordinary words

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, shown_url(secret) if "://" in secret else "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        cleaned = self._clean(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
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
