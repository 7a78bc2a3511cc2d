"""Dates and spans written out for customers."""

from datetime import datetime, timedelta, timezone

import pytest
from babel.dates import format_datetime

from bot.i18n import AMSTERDAM, format_span, format_when

PATTERN = {"nl": "EEEE d MMMM y 'om' HH:mm", "en": "EEEE d MMMM y 'at' HH:mm"}


def test_known_dates() -> None:
    instant = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
    assert format_when(instant, "nl") == "donderdag 26 november 2026 om 10:00"
    assert format_when(instant, "en") == "Thursday 26 November 2026 at 10:00"
    summer = datetime(2026, 7, 1, 6, 5, tzinfo=timezone.utc)
    assert format_when(summer, "nl") == "woensdag 1 juli 2026 om 08:05"


@pytest.mark.parametrize("language", ["nl", "en"])
def test_matches_babels_pattern_through_a_year(language: str) -> None:
    """Every 7 hours 13 minutes through 2026 (both DST changes, every weekday and month) as Babel writes it."""
    instant = datetime(2026, 1, 1, tzinfo=timezone.utc)
    while instant.year == 2026:
        expected = format_datetime(instant.astimezone(AMSTERDAM), PATTERN[language], tzinfo=AMSTERDAM,
                                   locale=language)
        assert format_when(instant, language) == expected  # type: ignore[arg-type]
        instant += timedelta(hours=7, minutes=13)


def test_spans() -> None:
    assert format_span(timedelta(hours=24), "nl", "business") == "24 uur"
    assert format_span(timedelta(days=21), "en") == "3 weeks"
    assert format_span(timedelta(days=3), "nl", "working_days") == "3 werkdagen"
    assert format_span(timedelta(minutes=15), "en") == "15 minutes"
