"""The business calendar and the three clocks on worked examples (SPEC R9-R14, R16).

Every expected instant is written out as ISO 8601 with its Amsterdam offset and
compared with ``isoformat()``: that checks the local wall time *and* the UTC
offset, which plain ``==`` between two datetimes in the same zone would not
(Python compares same-``tzinfo`` datetimes by their wall fields, ignoring
``fold``). All dates are real 2026/2027 dates; 2026-01-12 is a Monday.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import holidays
import pytest

from bot.presets import load_preset
from sla_engine.calendar import BusinessCalendar, Closure
from sla_engine.clocks import BusinessClock, CalendarClock, ClockKind, WorkingDaysClock, make_clock
from sla_engine.deadlines import Pause, first_response_due, reminder_schedule, resolution_window
from sla_engine.errors import CalendarError

AMS = ZoneInfo("Europe/Amsterdam")
UTC = timezone.utc
H = timedelta(hours=1)
D = timedelta(days=1)
W = timedelta(weeks=1)

MC = load_preset("mailcampaigns")
PN = load_preset("paynl")
MC_OFFICE = MC.calendars["office"]
PN_OFFICE = PN.calendars["office"]
OUTAGE = PN.calendars["outage"]
WEEKDAYS_9_17 = {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
NO_HOLIDAYS = BusinessCalendar.build("no-holidays", WEEKDAYS_9_17, holiday_country=None)
SEVEN_DAYS = BusinessCalendar.build(
    "seven-days", {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}, holiday_country=None
)
SPLIT = BusinessCalendar.build(
    "split", {d: ["09:00-12:00", "13:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
)


def at(text: str) -> datetime:
    """An instant from ISO 8601 with an explicit offset, expressed in Amsterdam time."""
    parsed = datetime.fromisoformat(text)
    assert parsed.utcoffset() is not None, f"test instants carry their offset: {text}"
    return parsed.astimezone(AMS)


def iso(instant: datetime | None) -> str | None:
    """The instant as ISO 8601 in Amsterdam time (what the engine should hand back)."""
    if instant is None:
        return None
    assert instant.utcoffset() == instant.astimezone(UTC).astimezone(AMS).utcoffset(), (
        f"{instant.isoformat()} is not a real Amsterdam wall time"
    )
    return instant.astimezone(UTC).astimezone(AMS).isoformat()


def business(cal: BusinessCalendar = MC_OFFICE) -> BusinessClock:
    return BusinessClock(cal)


def working_days(cal: BusinessCalendar = MC_OFFICE) -> WorkingDaysClock:
    return WorkingDaysClock(cal)


def calendar(cal: BusinessCalendar = MC_OFFICE) -> CalendarClock:
    return CalendarClock(cal)


# -- R10 / R11: the worked examples of the specification --------------------


@pytest.mark.parametrize(
    ("kind", "start", "duration", "expected"),
    [
        # R11: received Monday 10:00 -> due Thursday 10:00 (24 business hours)
        ("business", "2026-01-12T10:00+01:00", 24 * H, "2026-01-15T10:00:00+01:00"),
        # R10: Thursday 16:30 + 2 business hours = Friday 10:30
        ("business", "2026-01-15T16:30+01:00", 2 * H, "2026-01-16T10:30:00+01:00"),
        # R10: a deadline running out at closing time IS the closing time
        ("business", "2026-01-12T09:00+01:00", 8 * H, "2026-01-12T17:00:00+01:00"),
        # R10: Friday 16:00 + 3 working days = Wednesday 16:00
        ("working_days", "2026-01-16T16:00+01:00", 3 * D, "2026-01-21T16:00:00+01:00"),
        # R10: Saturday 11:00 + 3 working days = Thursday 09:00 (starts at the next opening)
        ("working_days", "2026-01-17T11:00+01:00", 3 * D, "2026-01-22T09:00:00+01:00"),
    ],
)
def test_spec_worked_examples(kind: str, start: str, duration: timedelta, expected: str) -> None:
    clock = make_clock(kind, MC_OFFICE)
    assert iso(clock.add(at(start), duration)) == expected
    assert clock.elapsed(at(start), at(expected)) == duration


def test_r11_first_response_of_every_mailcampaigns_plan() -> None:
    received = at("2026-01-12T10:00+01:00")
    for plan in MC.plan_names:
        assert iso(first_response_due(received, MC.terms(plan, received.date()))) == "2026-01-15T10:00:00+01:00"


def test_make_clock_kinds() -> None:
    assert isinstance(make_clock("business", MC_OFFICE), BusinessClock)
    assert isinstance(make_clock(ClockKind.WORKING_DAYS, MC_OFFICE), WorkingDaysClock)
    assert isinstance(make_clock("calendar", MC_OFFICE), CalendarClock)
    assert [make_clock(k, MC_OFFICE).kind for k in ClockKind] == list(ClockKind)
    with pytest.raises(ValueError):
        make_clock("fortnightly", MC_OFFICE)


# -- R9: Dutch public holidays 2026 and 2027 ---------------------------------

NL_HOLIDAYS = {
    # date: (English name as the holidays package gives it, Dutch name)
    date(2026, 1, 1): ("New Year's Day", "Nieuwjaarsdag"),
    date(2026, 4, 3): ("Good Friday", "Goede vrijdag"),
    date(2026, 4, 5): ("Easter Sunday", "Eerste paasdag"),
    date(2026, 4, 6): ("Easter Monday", "Tweede paasdag"),
    date(2026, 4, 27): ("King's Day", "Koningsdag"),
    date(2026, 5, 14): ("Ascension Day", "Hemelvaartsdag"),
    date(2026, 5, 24): ("Pentecost", "Eerste pinksterdag"),
    date(2026, 5, 25): ("Pentecost Monday", "Tweede pinksterdag"),  # Whit Monday
    date(2026, 12, 25): ("Christmas Day", "Eerste kerstdag"),
    date(2026, 12, 26): ("Second Day of Christmas", "Tweede kerstdag"),
    date(2027, 1, 1): ("New Year's Day", "Nieuwjaarsdag"),
    date(2027, 3, 26): ("Good Friday", "Goede vrijdag"),
    date(2027, 3, 28): ("Easter Sunday", "Eerste paasdag"),
    date(2027, 3, 29): ("Easter Monday", "Tweede paasdag"),
    date(2027, 4, 27): ("King's Day", "Koningsdag"),
    date(2027, 5, 6): ("Ascension Day", "Hemelvaartsdag"),
    date(2027, 5, 16): ("Pentecost", "Eerste pinksterdag"),
    date(2027, 5, 17): ("Pentecost Monday", "Tweede pinksterdag"),
    date(2027, 12, 25): ("Christmas Day", "Eerste kerstdag"),
    date(2027, 12, 26): ("Second Day of Christmas", "Tweede kerstdag"),
}


@pytest.mark.parametrize("year", [2026, 2027])
def test_nl_holidays_listed_explicitly(year: int) -> None:
    expected = {day: names[0] for day, names in NL_HOLIDAYS.items() if day.year == year}
    assert MC_OFFICE.holidays_in(year) == expected
    assert PN_OFFICE.holidays_in(year) == expected
    # the same list the holidays package gives for NL (English and Dutch names)
    assert dict(holidays.country_holidays("NL", years=year)) == expected
    dutch = holidays.country_holidays("NL", years=year, language="nl")
    assert {day: dutch[day] for day in expected} == {d: n[1] for d, n in NL_HOLIDAYS.items() if d.year == year}
    # Liberation Day (5 May) is a day off only in lustrum years: not in 2026 or 2027
    assert MC_OFFICE.is_working_day(date(year, 5, 5)) is (date(year, 5, 5).weekday() < 5)
    assert OUTAGE.holidays_in(year) == {}


@pytest.mark.parametrize("day", sorted(NL_HOLIDAYS), ids=str)
def test_every_holiday_is_a_closed_day(day: date) -> None:
    english = NL_HOLIDAYS[day][0]
    for cal in (MC_OFFICE, PN_OFFICE, SPLIT):
        assert not cal.is_working_day(day)
        assert cal.windows_on(day) == ()
        assert cal.closed_reason(day) == english
        assert not cal.is_open(datetime(day.year, day.month, day.day, 11, tzinfo=AMS))
        midnight = datetime(day.year, day.month, day.day, tzinfo=AMS)
        assert business(cal).elapsed(midnight, midnight + D) == timedelta(0)
    # the outage line never closes
    assert OUTAGE.is_working_day(day)
    assert OUTAGE.closed_reason(day) is None
    assert OUTAGE.is_open(datetime(day.year, day.month, day.day, 11, tzinfo=AMS))


# (holiday, the last working day before it, due date of a request made there at 16:00 + 24 business hours)
HOLIDAY_SKIPS = [
    ("2026-01-01", "2025-12-31", "2026-01-06"),  # Thu; Wed 16:00 -> Tue
    ("2026-04-03", "2026-04-02", "2026-04-09"),  # Good Friday; Thu -> Thu (Easter Monday too)
    ("2026-04-05", "2026-04-02", "2026-04-09"),  # Easter Sunday
    ("2026-04-06", "2026-04-02", "2026-04-09"),  # Easter Monday
    ("2026-04-27", "2026-04-24", "2026-04-30"),  # King's Day (Mon); Fri -> Thu
    ("2026-05-14", "2026-05-13", "2026-05-19"),  # Ascension (Thu); Wed -> Tue
    ("2026-05-24", "2026-05-22", "2026-05-28"),  # Pentecost (Sun)
    ("2026-05-25", "2026-05-22", "2026-05-28"),  # Whit Monday; Fri -> Thu
    ("2026-12-25", "2026-12-24", "2026-12-30"),  # Christmas (Fri); Thu -> Wed
    ("2026-12-26", "2026-12-24", "2026-12-30"),  # Boxing Day (Sat)
    ("2027-01-01", "2026-12-31", "2027-01-06"),  # New Year (Fri); Thu -> Wed
    ("2027-03-26", "2027-03-25", "2027-04-01"),  # Good Friday
    ("2027-03-28", "2027-03-25", "2027-04-01"),  # Easter Sunday
    ("2027-03-29", "2027-03-25", "2027-04-01"),  # Easter Monday
    ("2027-04-27", "2027-04-26", "2027-04-30"),  # King's Day (Tue); Mon -> Fri
    ("2027-05-06", "2027-05-05", "2027-05-11"),  # Ascension (Thu); Wed -> Tue
    ("2027-05-16", "2027-05-14", "2027-05-20"),  # Pentecost (Sun)
    ("2027-05-17", "2027-05-14", "2027-05-20"),  # Whit Monday
    ("2027-12-25", "2027-12-24", "2027-12-29"),  # Christmas (Sat)
    ("2027-12-26", "2027-12-24", "2027-12-29"),  # Boxing Day (Sun)
]


@pytest.mark.parametrize(("holiday", "before", "due"), HOLIDAY_SKIPS, ids=[h for h, _, _ in HOLIDAY_SKIPS])
def test_request_before_a_holiday_skips_it(holiday: str, before: str, due: str) -> None:
    """A request at 16:00 on the last working day before a holiday: 1 h that day, then 8 + 8 + 7 h."""
    assert date.fromisoformat(holiday) in NL_HOLIDAYS
    start = datetime.fromisoformat(before).replace(hour=16, tzinfo=AMS)
    result = business().add(start, 24 * H)
    assert result.date().isoformat() == due
    assert result.time().isoformat() == "16:00:00"
    assert result.date() > date.fromisoformat(holiday)
    # the request made the calendar day before the holiday says the same (or starts later still)
    eve = datetime.fromisoformat(holiday).replace(hour=16, tzinfo=AMS) - D
    assert business().add(eve, 24 * H).date() >= result.date()
    if date.fromisoformat(holiday).weekday() < 5:
        # without public holidays it would have been due a working day earlier
        assert business(NO_HOLIDAYS).add(start, 24 * H) < result


# -- DST (29 March and 25 October 2026) --------------------------------------


@pytest.mark.parametrize(
    ("clock", "start", "duration", "expected"),
    [
        # calendar clock: real elapsed time, so the wall clock shifts by an hour
        (calendar(), "2026-03-28T12:00+01:00", 24 * H, "2026-03-29T13:00:00+02:00"),
        (calendar(), "2026-10-24T12:00+02:00", 24 * H, "2026-10-25T11:00:00+01:00"),
        (calendar(), "2026-03-28T12:00+01:00", W, "2026-04-04T13:00:00+02:00"),
        (calendar(), "2026-10-25T01:30+02:00", H, "2026-10-25T02:30:00+02:00"),
        (calendar(), "2026-10-25T01:30+02:00", 2 * H, "2026-10-25T02:30:00+01:00"),
        (calendar(), "2026-03-29T01:30+01:00", H, "2026-03-29T03:30:00+02:00"),
        # business clock on the office calendar: the weekend of the change is closed anyway
        (business(), "2026-03-27T16:00+01:00", 2 * H, "2026-03-30T10:00:00+02:00"),
        (business(), "2026-03-28T12:00+01:00", 24 * H, "2026-04-01T17:00:00+02:00"),
        (business(), "2026-10-23T16:00+02:00", 2 * H, "2026-10-26T10:00:00+01:00"),
        # business clock on a calendar open on Sundays: the opening hours are wall-clock hours
        (business(SEVEN_DAYS), "2026-03-29T09:00+02:00", 8 * H, "2026-03-29T17:00:00+02:00"),
        (business(SEVEN_DAYS), "2026-03-28T16:00+01:00", 2 * H, "2026-03-29T10:00:00+02:00"),
        (business(SEVEN_DAYS), "2026-10-25T09:00+01:00", 8 * H, "2026-10-25T17:00:00+01:00"),
        # business clock on the 24/7 outage calendar counts real hours
        (business(OUTAGE), "2026-03-29T00:00+01:00", 24 * H, "2026-03-30T01:00:00+02:00"),
        (business(OUTAGE), "2026-03-29T01:30+01:00", H, "2026-03-29T03:30:00+02:00"),
        (business(OUTAGE), "2026-10-25T00:00+02:00", 24 * H, "2026-10-25T23:00:00+01:00"),
        (business(OUTAGE), "2026-10-25T01:30+02:00", H, "2026-10-25T02:30:00+02:00"),
        (business(OUTAGE), "2026-10-25T01:30+02:00", 2 * H, "2026-10-25T02:30:00+01:00"),
        (business(OUTAGE), "2026-10-25T02:30+01:00", H, "2026-10-25T03:30:00+01:00"),
        # working days: the same local time of day on the other side of the change
        (working_days(), "2026-03-27T10:00+01:00", D, "2026-03-30T10:00:00+02:00"),
        (working_days(), "2026-10-23T10:00+02:00", D, "2026-10-26T10:00:00+01:00"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_dst_changes_2026(clock: BusinessClock | CalendarClock | WorkingDaysClock, start: str,
                          duration: timedelta, expected: str) -> None:
    result = clock.add(at(start), duration)
    assert iso(result) == expected
    assert result.utcoffset() == at(expected).utcoffset()
    assert clock.elapsed(at(start), at(expected)) == duration


def test_dst_days_have_23_and_25_hours() -> None:
    spring = (at("2026-03-29T00:00+01:00"), at("2026-03-30T00:00+02:00"))
    autumn = (at("2026-10-25T00:00+02:00"), at("2026-10-26T00:00+01:00"))
    assert calendar().elapsed(*spring) == 23 * H
    assert calendar().elapsed(*autumn) == 25 * H
    assert business(OUTAGE).elapsed(*spring) == 23 * H
    assert business(OUTAGE).elapsed(*autumn) == 25 * H
    # office hours are 8 wall-clock hours whatever the day's length
    assert business(SEVEN_DAYS).elapsed(*spring) == 8 * H
    assert business(SEVEN_DAYS).elapsed(*autumn) == 8 * H
    assert business().elapsed(at("2026-03-27T09:00+01:00"), at("2026-03-30T17:00+02:00")) == 16 * H
    assert business().elapsed(at("2026-10-23T09:00+02:00"), at("2026-10-26T17:00+01:00")) == 16 * H
    # the repeated hour 02:00-03:00 on 25 October counts twice on the 24/7 calendar
    assert business(OUTAGE).elapsed(at("2026-10-25T02:00+02:00"), at("2026-10-25T03:00+01:00")) == 2 * H


def test_working_days_into_the_skipped_hour_give_a_real_wall_time() -> None:
    """On a calendar open on Sunday night, "the same local time" can fall in 02:00-03:00 on 29 March.

    That wall time does not exist. The deadline is the instant it names with the winter offset
    (as java.time resolves it): one wall-clock hour later, written with the summer offset,
    never as a non-existent "02:30+01:00".
    """
    clock = working_days(OUTAGE)
    assert iso(clock.add(at("2026-03-28T02:30+01:00"), D)) == "2026-03-29T03:30:00+02:00"
    assert iso(clock.add(at("2026-03-29T00:00+01:00"), 2 * H)) == "2026-03-29T03:00:00+02:00"
    assert iso(clock.add(at("2026-03-28T01:59:59+01:00"), D)) == "2026-03-29T01:59:59+01:00"
    assert iso(clock.add(at("2026-03-28T03:00+01:00"), D)) == "2026-03-29T03:00:00+02:00"
    # in October the repeated hour resolves to its first occurrence
    assert iso(clock.add(at("2026-10-24T02:30+02:00"), D)) == "2026-10-25T02:30:00+02:00"


def test_is_open_around_the_dst_changes() -> None:
    assert SEVEN_DAYS.is_open(at("2026-03-29T09:00+02:00"))
    assert not SEVEN_DAYS.is_open(at("2026-03-29T08:59:59+02:00"))
    assert not SEVEN_DAYS.is_open(at("2026-03-29T17:00+02:00"))
    assert SEVEN_DAYS.is_open(at("2026-10-25T16:59:59+01:00"))
    assert not SEVEN_DAYS.is_open(at("2026-10-25T08:30+01:00"))
    assert OUTAGE.is_open(at("2026-10-25T02:30+01:00"))
    assert OUTAGE.is_open(at("2026-03-29T03:00+02:00"))


# -- requests at the edges of the opening hours ------------------------------


@pytest.mark.parametrize(
    ("start", "next_run", "plus_2h", "plus_3wd"),
    [
        # exactly at opening time: the clock runs from that instant
        ("2026-01-13T09:00+01:00", "2026-01-13T09:00:00+01:00", "2026-01-13T11:00:00+01:00",
         "2026-01-16T09:00:00+01:00"),
        # one microsecond before opening
        ("2026-01-13T08:59:59.999999+01:00", "2026-01-13T09:00:00+01:00", "2026-01-13T11:00:00+01:00",
         "2026-01-16T09:00:00+01:00"),
        # exactly at closing time: starts the next working day at 09:00
        ("2026-01-13T17:00+01:00", "2026-01-14T09:00:00+01:00", "2026-01-14T11:00:00+01:00",
         "2026-01-19T09:00:00+01:00"),
        # one microsecond before closing
        ("2026-01-13T16:59:59.999999+01:00", "2026-01-13T16:59:59.999999+01:00",
         "2026-01-14T10:59:59.999999+01:00", "2026-01-16T16:59:59.999999+01:00"),
        # Friday at closing time: Monday 09:00
        ("2026-01-16T17:00+01:00", "2026-01-19T09:00:00+01:00", "2026-01-19T11:00:00+01:00",
         "2026-01-22T09:00:00+01:00"),
        # at night
        ("2026-01-14T03:00+01:00", "2026-01-14T09:00:00+01:00", "2026-01-14T11:00:00+01:00",
         "2026-01-19T09:00:00+01:00"),
        ("2026-01-14T23:30+01:00", "2026-01-15T09:00:00+01:00", "2026-01-15T11:00:00+01:00",
         "2026-01-20T09:00:00+01:00"),
        # at the weekend
        ("2026-01-17T11:00+01:00", "2026-01-19T09:00:00+01:00", "2026-01-19T11:00:00+01:00",
         "2026-01-22T09:00:00+01:00"),
        ("2026-01-18T23:59:59+01:00", "2026-01-19T09:00:00+01:00", "2026-01-19T11:00:00+01:00",
         "2026-01-22T09:00:00+01:00"),
        # on a holiday: King's Day 2026 is a Monday
        ("2026-04-27T10:00+02:00", "2026-04-28T09:00:00+02:00", "2026-04-28T11:00:00+02:00",
         "2026-05-01T09:00:00+02:00"),
        # on Christmas Eve at closing: Christmas, Boxing Day, Sunday
        ("2026-12-24T17:00+01:00", "2026-12-28T09:00:00+01:00", "2026-12-28T11:00:00+01:00",
         "2026-12-31T09:00:00+01:00"),
    ],
)
def test_requests_at_the_edges(start: str, next_run: str, plus_2h: str, plus_3wd: str) -> None:
    t = at(start)
    assert iso(business().next_run(t)) == next_run
    assert iso(working_days().next_run(t)) == next_run
    assert iso(business().add(t, 2 * H)) == plus_2h
    assert iso(working_days().add(t, 3 * D)) == plus_3wd
    assert MC_OFFICE.is_open(t) is (iso(t) == next_run)
    # a request outside the hours counts from the next opening
    assert business().add(t, 2 * H) == business().add(business().next_run(t), 2 * H)


def test_opening_and_closing_instants() -> None:
    assert MC_OFFICE.is_open(at("2026-01-13T09:00+01:00"))
    assert not MC_OFFICE.is_open(at("2026-01-13T08:59:59.999999+01:00"))
    assert MC_OFFICE.is_open(at("2026-01-13T16:59:59.999999+01:00"))
    assert not MC_OFFICE.is_open(at("2026-01-13T17:00+01:00"))
    assert PN_OFFICE.is_open(at("2026-01-13T17:15+01:00"))
    assert not PN_OFFICE.is_open(at("2026-01-13T17:30+01:00"))
    # the same instant written in UTC
    assert MC_OFFICE.is_open(datetime(2026, 1, 13, 8, 0, tzinfo=UTC))
    assert not MC_OFFICE.is_open(datetime(2026, 1, 13, 16, 0, tzinfo=UTC))


def test_deadlines_ending_at_closing_time_are_that_closing_time() -> None:
    assert iso(business().add(at("2026-01-12T09:00+01:00"), 8 * H)) == "2026-01-12T17:00:00+01:00"
    assert iso(business().add(at("2026-01-12T09:00+01:00"), 16 * H)) == "2026-01-13T17:00:00+01:00"
    # Friday's closing time, not Monday 09:00
    assert iso(business().add(at("2026-01-16T13:00+01:00"), 4 * H)) == "2026-01-16T17:00:00+01:00"
    assert iso(business().add(at("2026-01-16T13:00+01:00"), 4 * H + timedelta(microseconds=1))) == (
        "2026-01-19T09:00:00.000001+01:00"
    )
    # a request outside the hours that needs exactly one day: the closing time of its first day
    assert iso(business().add(at("2026-01-17T11:00+01:00"), 8 * H)) == "2026-01-19T17:00:00+01:00"


def test_input_in_another_zone_is_answered_in_amsterdam_time() -> None:
    result = business().add(datetime(2026, 1, 12, 9, 0, tzinfo=UTC), 24 * H)
    assert iso(result) == "2026-01-15T10:00:00+01:00"
    assert result.tzinfo == AMS
    new_york = datetime(2026, 1, 15, 10, 30, tzinfo=ZoneInfo("America/New_York"))  # 16:30 in Amsterdam
    assert iso(business().add(new_york, 2 * H)) == "2026-01-16T10:30:00+01:00"


# -- split shifts and lunch breaks -------------------------------------------


def test_lunch_break_calendar() -> None:
    clock = business(SPLIT)
    assert SPLIT.describe_hours()["mon"] == ["09:00-12:00", "13:00-17:00"]
    assert iso(clock.add(at("2026-01-12T11:00+01:00"), 2 * H)) == "2026-01-12T14:00:00+01:00"
    # the morning window running out is the end of the morning window
    assert iso(clock.add(at("2026-01-12T09:00+01:00"), 3 * H)) == "2026-01-12T12:00:00+01:00"
    assert iso(clock.add(at("2026-01-12T09:00+01:00"), 7 * H)) == "2026-01-12T17:00:00+01:00"
    assert iso(clock.add(at("2026-01-12T09:00+01:00"), 8 * H)) == "2026-01-13T10:00:00+01:00"
    # a request during lunch starts at 13:00
    assert iso(clock.next_run(at("2026-01-12T12:30+01:00"))) == "2026-01-12T13:00:00+01:00"
    assert iso(clock.add(at("2026-01-12T12:30+01:00"), H)) == "2026-01-12T14:00:00+01:00"
    assert iso(clock.add(at("2026-01-12T12:00+01:00"), H)) == "2026-01-12T14:00:00+01:00"
    assert not SPLIT.is_open(at("2026-01-12T12:00+01:00"))
    assert not SPLIT.is_open(at("2026-01-12T12:59:59+01:00"))
    assert SPLIT.is_open(at("2026-01-12T13:00+01:00"))
    assert clock.elapsed(at("2026-01-12T00:00+01:00"), at("2026-01-13T00:00+01:00")) == 7 * H
    assert clock.elapsed(at("2026-01-12T11:30+01:00"), at("2026-01-12T13:30+01:00")) == H
    # 24 hours on a 7-hour day: Mon 10:00 (6 h) + Tue 7 + Wed 7 + Thu 4 h -> Thu 14:00
    assert iso(clock.add(at("2026-01-12T10:00+01:00"), 24 * H)) == "2026-01-15T14:00:00+01:00"
    # working days keep the local time, lunch or not
    assert iso(working_days(SPLIT).add(at("2026-01-12T11:30+01:00"), D)) == "2026-01-13T11:30:00+01:00"
    assert iso(working_days(SPLIT).add(at("2026-01-12T12:30+01:00"), D)) == "2026-01-13T13:00:00+01:00"


def test_three_shifts_and_a_saturday_morning() -> None:
    cal = BusinessCalendar.build(
        "shifts",
        {"mon": ["07:00-11:00", "12:00-15:00", "18:00-21:00"], "sat": ["10:00-12:00"]},
        holiday_country=None,
    )
    clock = business(cal)
    # Monday 10:00: 1 h + 3 h + 3 h = 7 h on Monday, then Saturday's 2 h
    assert iso(clock.add(at("2026-01-12T10:00+01:00"), 7 * H)) == "2026-01-12T21:00:00+01:00"
    assert iso(clock.add(at("2026-01-12T10:00+01:00"), 8 * H)) == "2026-01-17T11:00:00+01:00"
    assert iso(clock.add(at("2026-01-12T16:00+01:00"), 3 * H)) == "2026-01-12T21:00:00+01:00"
    assert iso(clock.add(at("2026-01-12T16:00+01:00"), 4 * H)) == "2026-01-17T11:00:00+01:00"
    assert iso(clock.next_run(at("2026-01-12T15:00+01:00"))) == "2026-01-12T18:00:00+01:00"
    assert clock.elapsed(at("2026-01-12T00:00+01:00"), at("2026-01-19T00:00+01:00")) == 12 * H
    assert iso(working_days(cal).add(at("2026-01-12T19:00+01:00"), D)) == "2026-01-17T19:00:00+01:00"
    assert iso(working_days(cal).add(at("2026-01-17T12:00+01:00"), D)) == "2026-01-24T07:00:00+01:00"


def test_overlapping_windows_are_rejected() -> None:
    with pytest.raises(CalendarError, match="overlap"):
        BusinessCalendar.build("bad", {"mon": ["09:00-12:00", "11:00-17:00"]})
    with pytest.raises(CalendarError):
        BusinessCalendar.build("bad", {"mon": ["17:00-09:00"]})
    with pytest.raises(CalendarError):
        BusinessCalendar.build("bad", {"monday": ["09:00-17:00"]})


# -- closures and dropped holidays -------------------------------------------


def test_closure_date_range() -> None:
    cal = BusinessCalendar.build(
        "xmas", WEEKDAYS_9_17, closures=[Closure(date(2026, 12, 28), date(2026, 12, 31), "kerstsluiting")]
    )
    assert [cal.is_working_day(date(2026, 12, d)) for d in range(23, 32)] == [
        True, True, False, False, False, False, False, False, False,
    ]
    assert cal.closed_reason(date(2026, 12, 28)) == "kerstsluiting"
    assert cal.closed_reason(date(2026, 12, 31)) == "kerstsluiting"
    assert cal.closed_reason(date(2026, 12, 25)) == "Christmas Day"
    assert cal.closed_reason(date(2026, 12, 27)) is not None  # a Sunday
    assert cal.closed_reason(date(2026, 12, 24)) is None
    # Thursday 24 December 16:00: 1 h, then Christmas, the weekend, the closure and New Year's Day
    assert iso(business(cal).add(at("2026-12-24T16:00+01:00"), 2 * H)) == "2027-01-04T10:00:00+01:00"
    assert iso(business().add(at("2026-12-24T16:00+01:00"), 2 * H)) == "2026-12-28T10:00:00+01:00"
    assert iso(working_days(cal).add(at("2026-12-24T16:00+01:00"), D)) == "2027-01-04T16:00:00+01:00"
    assert business(cal).elapsed(at("2026-12-24T00:00+01:00"), at("2027-01-05T00:00+01:00")) == 16 * H


def test_single_day_closure_and_bad_closure() -> None:
    cal = BusinessCalendar.build("teamday", WEEKDAYS_9_17, closures=[Closure(date(2026, 6, 12), date(2026, 6, 12), "teamuitje")])
    assert cal.closed_reason(date(2026, 6, 12)) == "teamuitje"
    assert iso(business(cal).add(at("2026-06-11T16:00+02:00"), 2 * H)) == "2026-06-15T10:00:00+02:00"
    with pytest.raises(CalendarError):
        Closure(date(2026, 6, 12), date(2026, 6, 11))


@pytest.mark.parametrize("name", ["Good Friday", "Goede vrijdag", "good friday", "GOEDE VRIJDAG"])
def test_drop_good_friday_by_english_or_dutch_name(name: str) -> None:
    cal = BusinessCalendar.build("work-good-friday", WEEKDAYS_9_17, dropped_holidays=[name])
    assert cal.is_working_day(date(2026, 4, 3))
    assert cal.is_working_day(date(2027, 3, 26))
    assert cal.closed_reason(date(2026, 4, 3)) is None
    assert date(2026, 4, 3) not in cal.holidays_in(2026)
    # the other holidays stay
    assert set(cal.holidays_in(2026)) == {d for d in NL_HOLIDAYS if d.year == 2026} - {date(2026, 4, 3)}
    assert not cal.is_working_day(date(2026, 4, 6))
    # Thursday 16:00 + 2 h: Friday 10:00 instead of Tuesday after Easter
    assert iso(business(cal).add(at("2026-04-02T16:00+02:00"), 2 * H)) == "2026-04-03T10:00:00+02:00"
    assert iso(business().add(at("2026-04-02T16:00+02:00"), 2 * H)) == "2026-04-07T10:00:00+02:00"


def test_drop_kings_day_by_dutch_name() -> None:
    cal = BusinessCalendar.build("koningsdag-open", WEEKDAYS_9_17, dropped_holidays=["Koningsdag"])
    assert cal.is_working_day(date(2026, 4, 27))
    assert iso(business(cal).add(at("2026-04-24T16:00+02:00"), 2 * H)) == "2026-04-27T10:00:00+02:00"
    assert cal.to_dict()["drop_holidays"] == ["Koningsdag"]
    assert BusinessCalendar.from_dict(cal.to_dict()).is_working_day(date(2026, 4, 27))


def test_unknown_dropped_name_changes_nothing() -> None:
    cal = BusinessCalendar.build("typo", WEEKDAYS_9_17, dropped_holidays=["Good Fryday"])
    assert cal.holidays_in(2026) == MC_OFFICE.holidays_in(2026)


# -- R12: Pay.nl first response on 09:00-17:30 -------------------------------


@pytest.mark.parametrize(
    ("plan", "received", "due"),
    [
        ("premium", "2026-06-01T10:00+02:00", "2026-06-02T09:30:00+02:00"),  # 7.5 h Mon + 0.5 h Tue
        ("premium", "2026-06-01T09:00+02:00", "2026-06-01T17:00:00+02:00"),
        ("premium", "2026-06-01T09:30+02:00", "2026-06-01T17:30:00+02:00"),  # exactly at closing time
        ("premium", "2026-06-05T16:00+02:00", "2026-06-08T15:30:00+02:00"),  # Fri 1.5 h, Mon 6.5 h
        ("premium", "2026-06-05T17:30+02:00", "2026-06-08T17:00:00+02:00"),  # Friday at closing time
        ("premium", "2026-11-23T10:00+01:00", "2026-11-24T09:30:00+01:00"),  # the README example
        ("premium", "2026-03-27T15:00+01:00", "2026-03-30T14:30:00+02:00"),  # across the DST change
        ("business", "2026-06-01T10:00+02:00", "2026-06-03T17:00:00+02:00"),  # 7.5 + 8.5 + 8 h
        ("business", "2026-06-01T09:00+02:00", "2026-06-03T16:00:00+02:00"),  # 8.5 + 8.5 + 7 h
        ("business", "2026-06-06T11:00+02:00", "2026-06-10T16:00:00+02:00"),  # Saturday
        ("business", "2026-05-13T10:00+02:00", "2026-05-18T17:00:00+02:00"),  # Ascension Day
        ("business", "2026-12-24T17:30+01:00", "2026-12-30T16:00:00+01:00"),  # Christmas Eve at closing time
    ],
)
def test_paynl_first_response(plan: str, received: str, due: str) -> None:
    terms = PN.terms(plan, at(received).date())
    assert iso(first_response_due(at(received), terms)) == due


@pytest.mark.parametrize("plan", ["pioneer", "professional"])
def test_paynl_plans_without_guarantee(plan: str) -> None:
    received = at("2026-06-01T10:00+02:00")
    terms = PN.terms(plan, received.date())
    assert first_response_due(received, terms) is None
    assert reminder_schedule(received, terms) == ()
    window = resolution_window(received, terms)
    assert (window.earliest, window.latest, window.on_clock) == (None, None, False)


# -- R13 / R14: resolution windows -------------------------------------------


@pytest.mark.parametrize(
    ("plan", "received", "earliest", "latest"),
    [
        ("licentie", "2026-11-23T10:00+01:00", "2026-12-14T10:00:00+01:00", "2026-12-21T10:00:00+01:00"),
        # calendar weeks are real elapsed time: across the DST change the wall clock moves an hour
        ("licentie", "2026-03-16T10:00+01:00", "2026-04-06T11:00:00+02:00", "2026-04-13T11:00:00+02:00"),
        ("ondersteuning", "2026-10-12T10:00+02:00", "2026-10-26T09:00:00+01:00", "2026-11-02T09:00:00+01:00"),
        ("project", "2026-01-17T11:00+01:00", "2026-01-31T11:00:00+01:00", "2026-02-07T11:00:00+01:00"),
    ],
)
def test_mailcampaigns_resolution_in_calendar_weeks(plan: str, received: str, earliest: str, latest: str) -> None:
    terms = MC.terms(plan, at(received).date())
    window = resolution_window(at(received), terms)
    assert (iso(window.earliest), iso(window.latest)) == (earliest, latest)
    assert window.on_clock
    assert window.paused_for == timedelta(0)
    # R13's release exclusion is Pay.nl's: MailCampaigns keeps its range
    assert resolution_window(at(received), terms, needs_release=True) == window


@pytest.mark.parametrize(
    ("plan", "received", "earliest", "latest"),
    [
        ("business", "2026-06-01T10:00+02:00", "2026-06-04T10:00:00+02:00", "2026-06-10T10:00:00+02:00"),
        # Friday 16:00: Wednesday 16:00 at the earliest; Ascension Day (Thu 14 May) does not count
        ("business", "2026-05-08T16:00+02:00", "2026-05-13T16:00:00+02:00", "2026-05-20T16:00:00+02:00"),
        ("premium", "2026-05-08T16:00+02:00", "2026-05-13T16:00:00+02:00", "2026-05-20T16:00:00+02:00"),
        # Saturday: from Monday 09:00
        ("premium", "2026-05-09T11:00+02:00", "2026-05-15T09:00:00+02:00", "2026-05-21T09:00:00+02:00"),
        # after closing on Christmas Eve: from Monday 28 December 09:00, New Year's Day does not count
        ("business", "2026-12-24T18:00+01:00", "2026-12-31T09:00:00+01:00", "2027-01-07T09:00:00+01:00"),
        # across the DST change: the same local time
        ("business", "2026-03-26T10:00+01:00", "2026-03-31T10:00:00+02:00", "2026-04-08T10:00:00+02:00"),
    ],
)
def test_paynl_resolution_in_working_days(plan: str, received: str, earliest: str, latest: str) -> None:
    terms = PN.terms(plan, at(received).date())
    window = resolution_window(at(received), terms)
    assert (iso(window.earliest), iso(window.latest)) == (earliest, latest)
    assert window.on_clock


@pytest.mark.parametrize("plan", ["business", "premium"])
def test_needs_release_takes_paynl_off_the_resolution_clock(plan: str) -> None:
    received = at("2026-06-01T10:00+02:00")
    terms = PN.terms(plan, received.date())
    window = resolution_window(received, terms, needs_release=True)
    assert window.earliest is None and window.latest is None
    assert not window.on_clock
    assert "release" in window.reason
    # the first response is still due
    assert first_response_due(received, terms) is not None


def test_pause_pushes_the_working_day_window_out() -> None:
    received = at("2026-06-01T10:00+02:00")  # Monday
    terms = PN.terms("business", received.date())
    # waiting on the customer from Tuesday 10:00 to Wednesday 10:00: one working day
    pause = Pause(at("2026-06-02T10:00+02:00"), at("2026-06-03T10:00+02:00"))
    window = resolution_window(received, terms, pauses=[pause])
    assert window.paused_for == D
    assert (iso(window.earliest), iso(window.latest)) == ("2026-06-05T10:00:00+02:00", "2026-06-11T10:00:00+02:00")
    assert "waiting on the customer" in window.reason
    # a pause over the weekend counts only the working day in it
    weekend = Pause(at("2026-06-05T10:00+02:00"), at("2026-06-08T10:00+02:00"))
    window = resolution_window(received, terms, pauses=[weekend])
    assert window.paused_for == D
    assert iso(window.latest) == "2026-06-11T10:00:00+02:00"
    # two pauses add up
    window = resolution_window(received, terms, pauses=[pause, weekend])
    assert window.paused_for == 2 * D
    assert iso(window.earliest) == "2026-06-08T10:00:00+02:00"


def test_pause_pushes_the_calendar_window_out() -> None:
    received = at("2026-11-23T10:00+01:00")
    terms = MC.terms("licentie", received.date())
    pause = Pause(at("2026-11-24T10:00+01:00"), at("2026-11-26T16:00+01:00"))
    window = resolution_window(received, terms, pauses=[pause])
    assert window.paused_for == 2 * D + 6 * H
    assert (iso(window.earliest), iso(window.latest)) == ("2026-12-16T16:00:00+01:00", "2026-12-23T16:00:00+01:00")
    # a pause still open counts up to ``as_of``
    still_waiting = Pause(at("2026-11-24T10:00+01:00"))
    window = resolution_window(received, terms, pauses=[still_waiting], as_of=at("2026-11-25T10:00+01:00"))
    assert window.paused_for == D
    assert iso(window.latest) == "2026-12-22T10:00:00+01:00"
    # time before the request was received does not count
    early = Pause(at("2026-11-20T10:00+01:00"), at("2026-11-23T22:00+01:00"))
    assert resolution_window(received, terms, pauses=[early]).paused_for == 12 * H
    # a pause over the DST change is real time
    spring = resolution_window(
        at("2026-03-20T10:00+01:00"),
        MC.terms("licentie", date(2026, 3, 20)),
        pauses=[Pause(at("2026-03-28T12:00+01:00"), at("2026-03-29T12:00+02:00"))],
    )
    assert spring.paused_for == 23 * H


# -- R16: reminders -----------------------------------------------------------


def test_one_hour_before_a_monday_0930_deadline_is_friday_afternoon() -> None:
    received = at("2026-06-03T09:30+02:00")  # Wednesday
    terms = MC.terms("licentie", received.date())
    assert iso(first_response_due(received, terms)) == "2026-06-08T09:30:00+02:00"  # Monday
    schedule = reminder_schedule(received, terms)
    assert [(r.spec, iso(r.at), r.escalate) for r in schedule] == [
        ("75%", "2026-06-05T11:30:00+02:00", False),  # 18 business hours after receipt
        ("1h before", "2026-06-05T16:30:00+02:00", False),  # Friday afternoon, not in the weekend
        ("breach", "2026-06-08T09:30:00+02:00", True),
    ]


def test_a_reminder_on_a_closing_time_goes_out_at_the_next_opening() -> None:
    received = at("2026-06-01T10:30+02:00")  # Monday; Premium: 7 h Monday, 1 h Tuesday
    terms = PN.terms("premium", received.date())
    assert iso(first_response_due(received, terms)) == "2026-06-02T10:00:00+02:00"
    schedule = reminder_schedule(received, terms)
    assert [(r.spec, iso(r.at)) for r in schedule] == [
        ("75%", "2026-06-01T16:30:00+02:00"),
        ("1h before", "2026-06-02T09:00:00+02:00"),  # Monday 17:30 is closing time: Tuesday 09:00
        ("breach", "2026-06-02T10:00:00+02:00"),
    ]


def test_reminders_of_a_request_in_the_weekend_count_from_monday() -> None:
    received = at("2026-06-06T11:00+02:00")  # Saturday
    terms = MC.terms("ondersteuning", received.date())
    schedule = reminder_schedule(received, terms)
    assert [(r.spec, iso(r.at)) for r in schedule] == [
        ("75%", "2026-06-10T11:00:00+02:00"),
        ("1h before", "2026-06-10T16:00:00+02:00"),
        ("breach", "2026-06-10T17:00:00+02:00"),
    ]


# -- elapsed() and next_run() -------------------------------------------------


def test_business_elapsed() -> None:
    clock = business()
    assert clock.elapsed(at("2026-01-16T16:00+01:00"), at("2026-01-19T10:00+01:00")) == 2 * H
    # over Good Friday, the weekend and Easter Monday
    assert clock.elapsed(at("2026-04-02T16:00+02:00"), at("2026-04-07T10:00+02:00")) == 2 * H
    assert clock.elapsed(at("2026-01-19T10:00+01:00"), at("2026-01-16T16:00+01:00")) == -2 * H
    assert clock.elapsed(at("2026-01-17T08:00+01:00"), at("2026-01-18T20:00+01:00")) == timedelta(0)
    assert clock.elapsed(at("2026-01-12T17:00+01:00"), at("2026-01-13T09:00+01:00")) == timedelta(0)
    assert clock.elapsed(at("2026-01-01T00:00+01:00"), at("2027-01-01T00:00+01:00")) == (365 - 104 - 7) * 8 * H
    assert clock.elapsed(at("2026-01-12T10:00+01:00"), at("2026-01-12T10:00:00.000001+01:00")) == timedelta(
        microseconds=1
    )


def test_working_days_elapsed() -> None:
    clock = working_days()
    assert clock.elapsed(at("2026-01-16T16:00+01:00"), at("2026-01-21T16:00+01:00")) == 3 * D
    assert clock.elapsed(at("2026-01-17T11:00+01:00"), at("2026-01-22T09:00+01:00")) == 3 * D
    assert clock.elapsed(at("2026-01-17T11:00+01:00"), at("2026-01-18T11:00+01:00")) == timedelta(0)
    assert clock.elapsed(at("2026-01-16T16:00+01:00"), at("2026-01-19T10:00+01:00")) == 18 * H
    assert clock.elapsed(at("2026-04-02T10:00+02:00"), at("2026-04-07T10:00+02:00")) == D  # Easter


def test_calendar_elapsed_and_next_run() -> None:
    clock = calendar()
    assert clock.elapsed(at("2026-03-28T12:00+01:00"), at("2026-03-29T12:00+02:00")) == 23 * H
    assert clock.elapsed(at("2026-10-24T12:00+02:00"), at("2026-10-25T12:00+01:00")) == 25 * H
    assert clock.elapsed(at("2026-01-17T12:00+01:00"), at("2026-01-17T11:00+01:00")) == -H
    saturday = at("2026-01-17T03:00+01:00")
    assert iso(clock.next_run(saturday)) == "2026-01-17T03:00:00+01:00"
    assert iso(clock.next_run(datetime(2026, 1, 17, 2, tzinfo=UTC))) == "2026-01-17T03:00:00+01:00"


def test_next_run_of_the_outage_line_is_now() -> None:
    for text in ("2026-12-25T03:00+01:00", "2026-03-29T02:00+01:00", "2026-10-25T02:30+01:00"):
        assert iso(business(OUTAGE).next_run(at(text))) == iso(at(text))


def test_zero_duration_is_the_start() -> None:
    monday = at("2026-01-12T10:00+01:00")
    for clock in (business(), working_days(), calendar()):
        assert clock.add(monday, timedelta(0)) == monday


def test_far_years_are_supported() -> None:
    clock = business()
    # 1995: Queen's Day (30 April, a Sunday) and Liberation Day (5 May, a Friday, lustrum year)
    assert iso(clock.add(at("1995-05-04T16:00+02:00"), 2 * H)) == "1995-05-08T10:00:00+02:00"
    # 2045: King's Day on Thursday 27 April
    assert iso(clock.add(at("2045-04-26T16:00+02:00"), 2 * H)) == "2045-04-28T10:00:00+02:00"
    # and back to 2026 on the same, now wider, index
    assert iso(clock.add(at("2026-01-12T10:00+01:00"), 24 * H)) == "2026-01-15T10:00:00+01:00"


# -- naive datetimes ----------------------------------------------------------

NAIVE = datetime(2026, 1, 12, 10, 0)


@pytest.mark.parametrize("clock", [business(), working_days(), calendar(), business(OUTAGE)], ids=lambda c: c.kind)
def test_naive_datetimes_raise(clock: BusinessClock | WorkingDaysClock | CalendarClock) -> None:
    aware = at("2026-01-12T10:00+01:00")
    with pytest.raises(ValueError, match="aware"):
        clock.add(NAIVE, H)
    with pytest.raises(ValueError, match="aware"):
        clock.elapsed(NAIVE, aware)
    with pytest.raises(ValueError, match="aware"):
        clock.elapsed(aware, NAIVE)
    with pytest.raises(ValueError, match="aware"):
        clock.next_run(NAIVE)


def test_naive_datetimes_raise_in_deadlines_and_calendar() -> None:
    for plan in ("licentie",):
        terms = MC.terms(plan, NAIVE.date())
        with pytest.raises(ValueError):
            first_response_due(NAIVE, terms)
        with pytest.raises(ValueError):
            resolution_window(NAIVE, terms)
        with pytest.raises(ValueError):
            reminder_schedule(NAIVE, terms)
    with pytest.raises(ValueError):
        resolution_window(NAIVE, PN.terms("business", NAIVE.date()))
    with pytest.raises(ValueError, match="aware"):
        MC_OFFICE.is_open(NAIVE)


def test_pause_inside_octobers_repeated_hour_counts_real_time() -> None:
    """Pauses compare instants in UTC: 02:50 CEST to 02:10 CET (fold=1) is 20 real minutes."""
    from sla_engine.deadlines import paused_time
    from sla_engine.policy import Channel, Plan, ResolutionTarget, SlaTerms, Target

    outage = BusinessCalendar.always_open("outage")
    plan = Plan(name="p", title="P", channels=frozenset({Channel.EMAIL}), sla=True,
                first_response=Target(timedelta(hours=1), ClockKind.CALENDAR, "outage"),
                resolution=ResolutionTarget(timedelta(days=7), timedelta(days=14), ClockKind.CALENDAR, "outage"))
    terms = SlaTerms("test", plan, {"outage": outage})
    zone = ZoneInfo("Europe/Amsterdam")
    start = datetime(2026, 10, 25, 2, 50, tzinfo=zone)  # CEST
    end = datetime(2026, 10, 25, 2, 10, tzinfo=zone, fold=1)  # CET, 20 minutes later in real time
    assert paused_time(start, [Pause(start, end)], terms, end) == timedelta(minutes=20)
