"""Dates and durations written out for people, in Dutch or English (Babel)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from babel import Locale

AMSTERDAM = ZoneInfo("Europe/Amsterdam")

Language = Literal["nl", "en"]
LANGUAGES: tuple[Language, ...] = ("nl", "en")

_AT = {"nl": "om", "en": "at"}


@lru_cache(maxsize=8)
def _names(language: Language) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Babel's wide day names (Monday first) and month names (January at 1) for ``language``."""
    locale = Locale.parse(language)
    days = locale.days["format"]["wide"]
    months = locale.months["format"]["wide"]
    return tuple(days[i] for i in range(7)), ("", *(months[i] for i in range(1, 13)))


def format_when(instant: datetime, language: Language, zone: ZoneInfo = AMSTERDAM) -> str:
    """``donderdag 26 november 2026 om 10:00`` / ``Thursday 26 November 2026 at 10:00``.

    Babel's pattern ``EEEE d MMMM y 'om' HH:mm``, with the names looked up once: the
    intake writes three of these per acknowledgement.
    """
    local = instant.astimezone(zone)
    days, months = _names(language)
    return (f"{days[local.weekday()]} {local.day} {months[local.month]} {local.year} {_AT[language]} "
            f"{local.hour:02d}:{local.minute:02d}")


_UNITS = {
    "nl": (("week", "weken"), ("werkdag", "werkdagen"), ("dag", "dagen"), ("uur", "uur"), ("minuut", "minuten")),
    "en": (("week", "weeks"), ("working day", "working days"), ("day", "days"), ("hour", "hours"),
           ("minute", "minutes")),
}


def format_span(duration: timedelta, language: Language, clock: str = "calendar") -> str:
    """``24 uur`` (business time in hours), ``3 werkdagen``, ``3 weken``, ``15 minutes``."""
    seconds = int(duration.total_seconds())
    week, working_day, day, hour, minute = _UNITS[language]
    units: tuple[tuple[int, tuple[str, str]], ...]
    if clock == "business":
        units = ((3_600, hour), (60, minute))
    elif clock == "working_days":
        units = ((86_400, working_day), (3_600, hour), (60, minute))
    else:
        units = ((604_800, week), (86_400, day), (3_600, hour), (60, minute))
    for size, (one, many) in units:
        if seconds and seconds % size == 0:
            count = seconds // size
            return f"{count} {one if count == 1 else many}"
    return f"{seconds} s"
