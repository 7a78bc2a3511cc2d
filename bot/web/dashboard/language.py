"""Which language a dashboard request gets (the words themselves are in :mod:`bot.staff_texts`)."""

from __future__ import annotations

from bot.i18n import LANGUAGES, Language


def accepted_language(header: str | None) -> Language | None:
    """The first of slabot's languages in an ``Accept-Language`` header, by its q-value (None: neither)."""
    best: tuple[float, int, Language] | None = None
    for position, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().split("-")[0].lower()
        if primary not in LANGUAGES:
            continue
        weight = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if weight <= 0:
            continue
        language: Language = "nl" if primary == "nl" else "en"
        candidate = (-weight, position, language)
        if best is None or candidate < best:
            best = candidate
    return None if best is None else best[2]


def pick_language(chosen: object, user_language: str | None, accept_language: str | None,
                  default: Language) -> Language:
    """The staff member's choice in this session, else their configured language, else the browser's, else the
    config's ``language``."""
    for candidate in (chosen, user_language):
        if candidate == "nl" or candidate == "en":
            return candidate
    return accepted_language(accept_language) or default
