"""The three SLA clocks (R10): business hours, working days and calendar time.

Every clock answers three questions, exactly to the microsecond and correctly
across DST changes:

- ``add(start, duration)``: the instant at which ``duration`` of clock time has
  run from ``start``;
- ``elapsed(start, end)``: how much clock time runs between two instants;
- ``next_run(instant)``: when the clock next runs (the instant itself when it
  is running).

``business`` counts only time inside opening windows; a request outside them
starts at the next opening, and a deadline that runs out exactly at a closing
time is that closing time. ``working_days`` counts whole working days at the
same local time of day (a day on this clock is 24 hours of a working day), and
also starts at the next opening. ``calendar`` is plain elapsed time, 24/7.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Protocol

from sla_engine.calendar import DAY_US, BusinessCalendar, DayIndex, from_us, to_us

UTC = timezone.utc


class ClockKind(StrEnum):
    """How a target's time is counted."""

    BUSINESS = "business"
    WORKING_DAYS = "working_days"
    CALENDAR = "calendar"


class Clock(Protocol):
    """What every clock can do."""

    @property
    def kind(self) -> ClockKind: ...

    @property
    def calendar(self) -> BusinessCalendar: ...

    def add(self, start: datetime, duration: timedelta) -> datetime: ...

    def elapsed(self, start: datetime, end: datetime) -> timedelta: ...

    def next_run(self, instant: datetime) -> datetime: ...


def _aware(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError(f"instant must be timezone-aware, got naive {instant.isoformat()}")
    return instant


@dataclass(frozen=True)
class BusinessClock:
    """Time counts only inside the calendar's opening windows."""

    calendar: BusinessCalendar
    _index: DayIndex = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", self.calendar.index)

    @property
    def kind(self) -> ClockKind:
        return ClockKind.BUSINESS

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant at which ``duration`` of business time has run from ``start``."""
        index = self._index
        zone = index.zone
        tzinfo = start.tzinfo
        if tzinfo is not zone:
            if tzinfo is None:
                _aware(start)
            start = start.astimezone(zone)
        step = (duration.days * 86_400 + duration.seconds) * 1_000_000 + duration.microseconds
        if step == 0:
            return start
        # fast path for ordinary one-window days, inlined from DayIndex.position/at_position
        k = start.toordinal() - index.base
        simple = index.simple
        day = simple[k] if 0 <= k < len(simple) else None
        if day is None:
            return index.at_position(index.position(start) + step)
        c, a, b, _ = day
        off = ((start.hour * 60 + start.minute) * 60 + start.second) * 1_000_000 + start.microsecond
        target = c + step + (0 if off <= a else (b - a if off >= b else off - a))
        cum = index.cum
        if target > cum[-1] or target <= cum[0]:
            return index.at_position(target)
        day = simple[bisect_left(cum, target) - 1]
        if day is None:
            return index.at_position(target)
        c, a, _, midnight_us = day
        return datetime.fromtimestamp((midnight_us + a + target - c) / 1_000_000, zone)


    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Business time between two instants (negative when ``end`` is before ``start``)."""
        index = self.calendar.index
        first = index.position(_aware(start))
        second = index.position(_aware(end))
        # a backward growth of the span never moves positions (they are anchored)
        return from_us(second - first)

    def next_run(self, instant: datetime) -> datetime:
        """``instant`` when open, else the next opening."""
        return self.calendar.index.next_open(_aware(instant))


@dataclass(frozen=True)
class WorkingDaysClock:
    """Whole working days at the same local time of day; starts at the next opening."""

    calendar: BusinessCalendar

    @property
    def kind(self) -> ClockKind:
        return ClockKind.WORKING_DAYS

    def _position(self, instant: datetime) -> int:
        index = self.calendar.index
        k, wall, _ = index.locate_wall(instant)
        if index.windows[k]:
            return index.work_before[k] * DAY_US + wall
        return index.work_before[k] * DAY_US

    def _at(self, position: int) -> datetime:
        index = self.calendar.index
        number, wall = divmod(position, DAY_US)
        k = index.working_day(number)
        local = index.midnight[k] + timedelta(microseconds=wall)
        # on a DST day, go through UTC: astimezone() to the datetime's own zone is a no-op and
        # would hand back a wall time that does not exist (02:30 on the spring-forward day)
        return local.astimezone(UTC).astimezone(index.zone) if index.irregular[k] else local

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The same local time ``duration`` (in days of 24 h) of working days after the start."""
        begin = self.next_run(start)
        return self._at(self._position(begin) + to_us(duration))

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Working-day time from the clock's start for ``start`` to ``end``."""
        spent = self._position(_aware(end)) - self._position(self.next_run(start))
        if spent < 0 and end.astimezone(UTC) >= start.astimezone(UTC):
            spent = 0
        return from_us(spent)

    def next_run(self, instant: datetime) -> datetime:
        """``instant`` when open, else the next opening."""
        return self.calendar.index.next_open(_aware(instant))


@dataclass(frozen=True)
class CalendarClock:
    """Plain elapsed time, 24/7 (the calendar only gives the time zone of answers)."""

    calendar: BusinessCalendar

    @property
    def kind(self) -> ClockKind:
        return ClockKind.CALENDAR

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """``start`` plus ``duration`` of real elapsed time."""
        return (_aware(start).astimezone(UTC) + duration).astimezone(self.calendar.zone)

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Real time between two instants."""
        return _aware(end).astimezone(UTC) - _aware(start).astimezone(UTC)

    def next_run(self, instant: datetime) -> datetime:
        """Always running: the instant itself."""
        return _aware(instant).astimezone(self.calendar.zone)


_CLOCKS: dict[ClockKind, type[BusinessClock] | type[WorkingDaysClock] | type[CalendarClock]] = {
    ClockKind.BUSINESS: BusinessClock,
    ClockKind.WORKING_DAYS: WorkingDaysClock,
    ClockKind.CALENDAR: CalendarClock,
}


def make_clock(kind: ClockKind | str, calendar: BusinessCalendar) -> Clock:
    """The clock of ``kind`` over ``calendar``."""
    return _CLOCKS[ClockKind(kind)](calendar)
