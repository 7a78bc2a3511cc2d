"""SLA reports: first-response and resolution performance per plan and per staff member, and its chart.

How it works
------------
:func:`load_report` reads the tickets received in a period (local dates, both
ends included, in the preset's time zone) through
:class:`storage.reports.ReportRepository` and hands them to
:func:`build_report`, which is pure: every ticket is measured against the
targets of its own SLA terms snapshot, on its plan's own clock, as of an
instant passed in (:mod:`sla_engine.performance`). Per plan and per staff
member it gives the share met (met / (met + breached): pending tickets, still
open and not yet due, and tickets closed unanswered before their deadline are
left out), the median and the p90 (nearest rank) of the times taken, and the
breaches with their tickets; a still-open ticket past its deadline is breached.

- A critical incident (R17) runs on the outage line's calendar clock, not its
  plan's: it is reported under ``PLAN (critical)``.
- The staff member of a ticket is whoever took it (the last ``taken`` event
  of the staff chat), else the account's assigned staff member, else whoever
  sent the first staff reply, else ``(unassigned)``; each ticket says which
  (``staff_basis``).
- Times are clock time: business hours on the business clock, working days
  (of 24 h) on the working-days clock, real time on the calendar clock.

:func:`report_data` turns a report into plain JSON-able data (``slabot report
--json`` prints it; the dashboard can render it). :func:`render_chart` draws
the PNG with matplotlib's Agg canvas (no display): first-response times per
week against each plan's target, and breaches per plan.
:func:`weekly_summary` is the last full week's text and chart for the staff
chat (:meth:`bot.staffchat.staffbot.StaffBot.post_weekly_report`).
"""

from __future__ import annotations

import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from bot.i18n import AMSTERDAM, Language
from sla_engine.clocks import ClockKind
from sla_engine.deadlines import Pause
from sla_engine.performance import (
    Measurement,
    Verdict,
    measure_first_response,
    measure_resolution,
    median,
    percentile,
)
from sla_engine.policy import SlaTerms
from storage.database import Database
from storage.records import ReportTicketRecord, TicketState
from storage.reports import ReportRepository

UNASSIGNED = "(unassigned)"
StaffBasis = Literal["taken", "assigned", "replied", "none"]
TargetName = Literal["first_response", "resolution"]
P90 = 0.9


@dataclass(frozen=True)
class TicketLine:
    """One ticket of the report, measured against both targets."""

    ref: str
    plan: str
    group: str  # the plan, or "PLAN (critical)" for a critical incident
    account: str | None
    state: TicketState
    received_at: datetime
    staff: str
    staff_basis: StaffBasis
    first_response: Measurement
    resolution: Measurement
    sla_priority: str | None = None  # R25: the matrix's priority the ticket was served at


@dataclass(frozen=True)
class TargetSummary:
    """How a set of tickets did against one target."""

    met: int
    breached: int
    pending: int
    closed: int
    no_target: int
    median: timedelta | None  # of the times taken, by the tickets that were answered (resolved)
    p90: timedelta | None
    breaches: tuple[str, ...]  # ticket references
    clock: ClockKind | None = None  # the clock of every measured time, None when none or mixed

    @property
    def share_met(self) -> float | None:
        """met / (met + breached); None when nothing was met or breached yet."""
        counted = self.met + self.breached
        return self.met / counted if counted else None


@dataclass(frozen=True)
class GroupSummary:
    """A plan's or a staff member's tickets against both targets."""

    name: str
    tickets: int
    first_response: TargetSummary
    resolution: TargetSummary


@dataclass(frozen=True)
class Breach:
    """A target missed, or run out on a ticket still open."""

    ref: str
    group: str
    account: str | None
    staff: str
    target: TargetName
    elapsed: timedelta
    allowed: timedelta
    clock: ClockKind
    still_open: bool


@dataclass(frozen=True)
class WeekPoint:
    """First-response times of one plan's tickets received in one week (Monday first)."""

    week: date
    group: str
    answered: int
    median: timedelta | None
    p90: timedelta | None
    target: timedelta | None
    clock: ClockKind | None


@dataclass(frozen=True)
class SlaReport:
    """The SLA report of a period; see the module docstring."""

    start: date
    end: date  # included
    as_of: datetime
    zone: ZoneInfo
    plan: str | None
    tickets: tuple[TicketLine, ...]
    overall: GroupSummary
    by_plan: tuple[GroupSummary, ...]
    by_staff: tuple[GroupSummary, ...]
    breaches: tuple[Breach, ...]
    weeks: tuple[WeekPoint, ...]
    by_priority: tuple[GroupSummary, ...] = ()  # R25: per priority of the preset's matrix (none without one)


# -- building (pure) ---------------------------------------------------------------------------


FIRST_DAY = date(1970, 1, 1)  # a report's period lies between these days: beyond them the arithmetic overflows
LAST_DAY = date(2999, 12, 31)
MAX_PERIOD_YEARS = 5  # a longer period is refused: its chart would have thousands of weeks


def report_day(text: str, field: str) -> date:
    """The day ``YYYY-MM-DD`` given as ``field`` of a report's period; a ValueError naming ``field`` when it is
    no date, or one outside :data:`FIRST_DAY` .. :data:`LAST_DAY`."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{field} {text!r} is not a date; expected YYYY-MM-DD, e.g. 2026-11-23") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"{field} {text!r} is out of range; expected a day from {FIRST_DAY} to {LAST_DAY}")
    return day


def check_period(start: date, end: date, names: tuple[str, str] = ("from", "to")) -> None:
    """A ValueError naming the field ``names`` (from, to) when the period ends before it starts or is longer
    than :data:`MAX_PERIOD_YEARS`."""
    if end < start:
        raise ValueError(f"{names[1]} {end} is before {names[0]} {start}")
    if end - start >= timedelta(days=366 * MAX_PERIOD_YEARS):
        raise ValueError(f"{names[1]} {end} is more than {MAX_PERIOD_YEARS} years after {names[0]} {start}")


def period_bounds(start: date, end: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The instants ``[start 00:00, day after end 00:00)`` in ``zone``."""
    if end < start:
        raise ValueError(f"the period ends ({end}) before it starts ({start})")
    return datetime.combine(start, time(), zone), datetime.combine(end + timedelta(days=1), time(), zone)


def staff_of(ticket: ReportTicketRecord) -> tuple[str, StaffBasis]:
    """Who a ticket is counted for, and why (see the module docstring)."""
    if ticket.taken_by:
        return ticket.taken_by, "taken"
    if ticket.assigned_staff:
        return ticket.assigned_staff, "assigned"
    if ticket.first_responder:
        return ticket.first_responder, "replied"
    return UNASSIGNED, "none"


def measure_ticket(ticket: ReportTicketRecord, terms: SlaTerms, as_of: datetime) -> TicketLine:
    """One ticket against its terms' first-response and resolution targets, as of ``as_of``."""
    staff, basis = staff_of(ticket)
    first = measure_first_response(ticket.received_at, ticket.first_responded_at, terms, as_of,
                                   closed_at=ticket.resolved_at)
    resolution = measure_resolution(ticket.received_at, ticket.resolved_at, terms, as_of,
                                    pauses=[Pause(s, e) for s, e in ticket.pauses], needs_release=ticket.needs_release)
    group = f"{ticket.plan} (critical)" if ticket.priority == "critical" else ticket.plan
    return TicketLine(ticket.ref, ticket.plan, group, ticket.account, ticket.state, ticket.received_at, staff, basis,
                      first, resolution, ticket.sla_priority)


def summarise(refs_and_measurements: Iterable[tuple[str, Measurement]]) -> TargetSummary:
    """Counts per verdict, median and p90 of the times taken, and the breached tickets."""
    counts: Counter[Verdict] = Counter()
    times: list[timedelta] = []
    breaches: list[str] = []
    clocks: set[ClockKind] = set()
    for ref, measured in refs_and_measurements:
        counts[measured.verdict] += 1
        if measured.clock is not None:
            clocks.add(measured.clock)
        if measured.done and measured.elapsed is not None and measured.counted:
            times.append(measured.elapsed)
        if measured.verdict is Verdict.BREACHED:
            breaches.append(ref)
    return TargetSummary(counts[Verdict.MET], counts[Verdict.BREACHED], counts[Verdict.PENDING],
                         counts[Verdict.CLOSED], counts[Verdict.NO_TARGET], median(times), percentile(times, P90),
                         tuple(breaches), clocks.pop() if len(clocks) == 1 else None)


def _group(name: str, lines: Sequence[TicketLine]) -> GroupSummary:
    return GroupSummary(name, len(lines), summarise((t.ref, t.first_response) for t in lines),
                        summarise((t.ref, t.resolution) for t in lines))


def _breaches(lines: Iterable[TicketLine]) -> list[Breach]:
    found = []
    for t in lines:
        for name, measured in (("first_response", t.first_response), ("resolution", t.resolution)):
            if measured.verdict is Verdict.BREACHED:
                assert measured.elapsed is not None and measured.target is not None and measured.clock is not None
                found.append(Breach(t.ref, t.group, t.account, t.staff, name,  # type: ignore[arg-type]
                                    measured.elapsed, measured.target, measured.clock, not measured.done))
    return found


def _monday(instant: datetime, zone: ZoneInfo) -> date:
    day = instant.astimezone(zone).date()
    return day - timedelta(days=day.weekday())


def _weeks(lines: Sequence[TicketLine], start: date, end: date, zone: ZoneInfo) -> list[WeekPoint]:
    by_week: dict[tuple[date, str], list[Measurement]] = defaultdict(list)
    for t in lines:
        if t.first_response.target is not None:
            by_week[(_monday(t.received_at, zone), t.group)].append(t.first_response)
    groups = sorted({g for _, g in by_week})
    points = []
    week = start - timedelta(days=start.weekday())
    while week <= end:
        for group in groups:
            found = by_week.get((week, group), [])
            times = [x.elapsed for x in found if x.done and x.elapsed is not None]
            targets = Counter((x.target, x.clock) for x in found)
            target, clock = targets.most_common(1)[0][0] if targets else (None, None)
            points.append(WeekPoint(week, group, len(times), median(times), percentile(times, P90), target, clock))
        week += timedelta(days=7)
    return points


def build_report(tickets: Iterable[ReportTicketRecord], start: date, end: date, as_of: datetime, *,
                 zone: ZoneInfo = AMSTERDAM, plan: str | None = None) -> SlaReport:
    """The report over ``tickets`` (those received from ``start`` to ``end``), as of ``as_of``."""
    terms_cache: dict[str, SlaTerms] = {}
    lines = []
    for ticket in tickets:
        if ticket.terms is None:
            continue
        key = json.dumps(ticket.terms, sort_keys=True)  # snapshots repeat: decode each calendar once
        terms = terms_cache.get(key)
        if terms is None:
            terms = terms_cache[key] = SlaTerms.from_dict(ticket.terms)
        lines.append(measure_ticket(ticket, terms, as_of))
    plans: dict[str, list[TicketLine]] = defaultdict(list)
    staff: dict[str, list[TicketLine]] = defaultdict(list)
    priorities: dict[str, list[TicketLine]] = defaultdict(list)
    for line in lines:
        plans[line.group].append(line)
        staff[line.staff].append(line)
        if line.sla_priority is not None:
            priorities[line.sla_priority].append(line)
    return SlaReport(
        start=start, end=end, as_of=as_of, zone=zone, plan=plan, tickets=tuple(lines),
        overall=_group("all", lines),
        by_plan=tuple(_group(name, group) for name, group in sorted(plans.items())),
        by_staff=tuple(_group(name, group) for name, group in sorted(staff.items(), key=lambda kv: (
            kv[0] == UNASSIGNED, kv[0]))),
        breaches=tuple(_breaches(lines)),
        weeks=tuple(_weeks(lines, start, end, zone)),
        by_priority=tuple(_group(name, group) for name, group in sorted(priorities.items())),
    )


def load_report(db: Database, start: date, end: date, as_of: datetime, *, zone: ZoneInfo = AMSTERDAM,
                plan: str | None = None) -> SlaReport:
    """The report of the tickets received from ``start`` to ``end`` (local dates, both included)."""
    low, high = period_bounds(start, end, zone)
    tickets = db.run(lambda s: ReportRepository(s).received_between(low, high, plan))
    return build_report(tickets, start, end, as_of, zone=zone, plan=plan)


# -- plain data (JSON, the dashboard) ------------------------------------------------------------


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _target_data(summary: TargetSummary) -> dict[str, Any]:
    return {"met": summary.met, "breached": summary.breached, "pending": summary.pending, "closed": summary.closed,
            "no_target": summary.no_target, "share_met": summary.share_met,
            "median_seconds": _seconds(summary.median), "p90_seconds": _seconds(summary.p90),
            "breaches": list(summary.breaches), "clock": summary.clock.value if summary.clock else None}


def _group_data(group: GroupSummary) -> dict[str, Any]:
    return {"name": group.name, "tickets": group.tickets, "first_response": _target_data(group.first_response),
            "resolution": _target_data(group.resolution)}


def _measurement_data(measured: Measurement) -> dict[str, Any]:
    return {"verdict": measured.verdict.value, "elapsed_seconds": _seconds(measured.elapsed),
            "target_seconds": _seconds(measured.target), "clock": measured.clock.value if measured.clock else None,
            "done": measured.done}


def report_data(report: SlaReport) -> dict[str, Any]:
    """The report as plain JSON-able data: instants in ISO 8601 with their offset, durations in seconds."""
    def when(instant: datetime) -> str:
        return instant.astimezone(report.zone).isoformat()

    return {
        "from": report.start.isoformat(), "to": report.end.isoformat(), "as_of": when(report.as_of),
        "zone": report.zone.key, "plan": report.plan,
        "overall": _group_data(report.overall),
        "plans": [_group_data(g) for g in report.by_plan],
        "staff": [_group_data(g) for g in report.by_staff],
        "priorities": [_group_data(g) for g in report.by_priority],
        "breaches": [{"ref": b.ref, "plan": b.group, "account": b.account, "staff": b.staff, "target": b.target,
                      "elapsed_seconds": _seconds(b.elapsed), "target_seconds": _seconds(b.allowed),
                      "clock": b.clock.value, "still_open": b.still_open} for b in report.breaches],
        "weeks": [{"week": w.week.isoformat(), "plan": w.group, "answered": w.answered,
                   "median_seconds": _seconds(w.median), "p90_seconds": _seconds(w.p90),
                   "target_seconds": _seconds(w.target), "clock": w.clock.value if w.clock else None}
                  for w in report.weeks],
        "tickets": [{"ref": t.ref, "plan": t.group, "account": t.account, "state": t.state,
                     "received_at": when(t.received_at), "staff": t.staff, "staff_basis": t.staff_basis,
                     "priority": t.sla_priority,
                     "first_response": _measurement_data(t.first_response),
                     "resolution": _measurement_data(t.resolution)} for t in report.tickets],
    }


# -- text --------------------------------------------------------------------------------------


def span_text(value: timedelta | None, clock: ClockKind | None = None) -> str:
    """A clock time for people: hours on the business clock and below two days, else days (``-`` for none)."""
    if value is None:
        return "-"
    hours = value.total_seconds() / 3600
    return f"{hours:.1f}h" if hours < 48 or clock is ClockKind.BUSINESS else f"{hours / 24:.1f}d"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def report_text(report: SlaReport) -> str:
    """The report as tables for a terminal."""
    head = (f"{'':<26} {'tickets':>7}  {'met':>4} {'breach':>6} {'pend':>4} {'share':>5} {'median':>7} {'p90':>7}"
            f"  {'met':>4} {'breach':>6} {'pend':>4} {'share':>5} {'median':>7} {'p90':>7}")

    def row(g: GroupSummary) -> str:
        cells = [f"{g.name[:26]:<26} {g.tickets:>7}"]
        for s in (g.first_response, g.resolution):
            cells.append(f"{s.met:>4} {s.breached:>6} {s.pending:>4} {_share(s.share_met):>5} "
                         f"{span_text(s.median, s.clock):>7} {span_text(s.p90, s.clock):>7}")
        return "  ".join(cells)

    period = f"{report.start.isoformat()} to {report.end.isoformat()}"
    lines = [f"SLA report {period}{f', plan {report.plan}' if report.plan else ''}, as of "
             f"{report.as_of.astimezone(report.zone).isoformat(timespec='minutes')}: {report.overall.tickets} tickets",
             f"{'':<36}{'first response':<40}resolution", head]
    sections = [("per plan", report.by_plan), ("per priority", report.by_priority),
                ("per staff member", report.by_staff)]
    for title, groups in sections:
        if not groups and title == "per priority":
            continue  # a preset without a priority matrix
        lines.append(f"-- {title}")
        lines.extend(row(g) for g in groups)
    lines.append(row(report.overall))
    lines.append(f"-- breaches ({len(report.breaches)})")
    for b in report.breaches:
        lines.append(f"{b.ref:<10} {b.group:<22} {b.target:<15} {span_text(b.elapsed, b.clock):>7} of "
                     f"{span_text(b.allowed, b.clock):>6} {b.clock.value:<12} {b.staff}{'  (still open)' if b.still_open else ''}")
    return "\n".join(lines) + "\n"


# -- the chart ---------------------------------------------------------------------------------


def _hours(value: timedelta | None) -> float:
    return float("nan") if value is None else value.total_seconds() / 3600


def _draw_weeks(axes: Any, report: SlaReport) -> None:
    """Per plan: each answered ticket as a dot, the week's median (solid) and p90 (dashed); the targets dotted."""
    from matplotlib.lines import Line2D

    groups = sorted({w.group for w in report.weeks})
    weeks = sorted({w.week for w in report.weeks})
    colour = {group: f"C{i % 10}" for i, group in enumerate(groups)}
    for group in groups:
        answered = [t for t in report.tickets if t.group == group and t.first_response.done]
        axes.scatter([_monday(t.received_at, report.zone) for t in answered],
                     [_hours(t.first_response.elapsed) for t in answered], s=14, color=colour[group], alpha=0.35)
        points = [w for w in report.weeks if w.group == group]
        axes.plot([w.week for w in points], [_hours(w.median) for w in points], marker="o", color=colour[group],
                  label=group)
        axes.plot([w.week for w in points], [_hours(w.p90) for w in points], marker="^", linestyle="--",
                  color=colour[group], alpha=0.6)
    targets: dict[timedelta, list[str]] = defaultdict(list)
    for w in report.weeks:
        name = f"{w.group} ({w.clock.value})" if w.clock is not None else w.group
        if w.target is not None and name not in targets[w.target]:
            targets[w.target].append(name)
    for target, names in sorted(targets.items()):
        axes.axhline(_hours(target), color="dimgrey", linestyle=":", linewidth=1.5)
        axes.annotate(f"target {span_text(target, ClockKind.BUSINESS)}: {', '.join(names)}",
                      (0.5, _hours(target)), xycoords=("axes fraction", "data"), ha="center", va="bottom",
                      fontsize="small", color="dimgrey", bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0})
    axes.set_title(f"First response per week, received {report.start} to {report.end} (on each plan's own clock)")
    axes.set_ylabel("hours of clock time")
    axes.set_xticks(weeks, [f"{w:%G-W%V}\n{w:%d %b}" for w in weeks])
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    if not groups:
        axes.text(0.5, 0.5, "no tickets with a first-response target in this period", ha="center", va="center",
                  transform=axes.transAxes)
        return
    handles, _ = axes.get_legend_handles_labels()
    handles += [Line2D([], [], color="black", marker="o", label="median"),
                Line2D([], [], color="black", marker="^", linestyle="--", alpha=0.6, label="p90"),
                Line2D([], [], color="black", marker="o", linestyle="", alpha=0.35, label="one ticket")]
    axes.legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))


def render_chart(report: SlaReport, *, dpi: int = 100) -> bytes:
    """A PNG: first-response times per week against each plan's target, and breaches per plan."""
    from matplotlib.backends.backend_agg import (
        FigureCanvasAgg,  # Agg: no display needed
    )
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 8), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    times, bars = figure.subplots(2, 1, height_ratios=(3, 2))
    _draw_weeks(times, report)
    names = [g.name for g in report.by_plan]
    first = [g.first_response.breached for g in report.by_plan]
    resolution = [g.resolution.breached for g in report.by_plan]
    positions = list(range(len(names)))
    bars.bar([p - 0.2 for p in positions], first, width=0.4, color="C3", label="first response")
    bars.bar([p + 0.2 for p in positions], resolution, width=0.4, color="C1", label="resolution")
    for p, (a, b) in enumerate(zip(first, resolution)):
        bars.annotate(str(a), (p - 0.2, a), ha="center", va="bottom")
        bars.annotate(str(b), (p + 0.2, b), ha="center", va="bottom")
    bars.set_xticks(positions, names)
    bars.set_title(f"Breaches per plan (as of {report.as_of.astimezone(report.zone):%Y-%m-%d %H:%M})")
    bars.set_ylabel("tickets")
    bars.set_ylim(0, max([*first, *resolution, 1]) * 1.25)
    bars.yaxis.get_major_locator().set_params(integer=True)
    bars.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def chart_filename(report: SlaReport) -> str:
    """``sla-report-2026-11-23-2026-11-29[-PLAN].png``."""
    return f"sla-report-{report.start}-{report.end}{f'-{report.plan}' if report.plan else ''}.png"


# -- the weekly summary for the staff chat ------------------------------------------------------


_SUMMARY = {
    "nl": {"title": "SLA-week {start} t/m {end}: {tickets} tickets",
           "line": "{name}: eerste reactie {met}/{counted} op tijd ({share}), mediaan {median}, p90 {p90}; "
                   "oplossing {rmet}/{rcounted} op tijd",
           "breaches": "Overschreden: {refs}", "none": "Geen overschrijdingen."},
    "en": {"title": "SLA week {start} to {end}: {tickets} tickets",
           "line": "{name}: first response {met}/{counted} in time ({share}), median {median}, p90 {p90}; "
                   "resolution {rmet}/{rcounted} in time",
           "breaches": "Breached: {refs}", "none": "No breaches."},
}
CAPTION_LIMIT = 1024  # Telegram's limit on a photo's caption


@dataclass(frozen=True)
class WeeklySummary:
    """The last full week's report as a text and a PNG chart."""

    report: SlaReport
    text: str
    chart: bytes
    filename: str

    @property
    def caption(self) -> str:
        """The text, or its first line when it is too long for a photo caption."""
        return self.text if len(self.text) <= CAPTION_LIMIT else self.text.splitlines()[0]

    @property
    def rest(self) -> str | None:
        """What did not fit in the caption (to send as a message), or None."""
        return None if len(self.text) <= CAPTION_LIMIT else self.text


def summary_text(report: SlaReport, language: Language = "nl") -> str:
    """A short text per plan: first responses in time, median and p90, resolutions in time, breaches."""
    t = _SUMMARY[language]
    lines = [t["title"].format(start=report.start, end=report.end, tickets=report.overall.tickets)]
    for g in report.by_plan:
        f, r = g.first_response, g.resolution
        lines.append(t["line"].format(name=g.name, met=f.met, counted=f.met + f.breached, share=_share(f.share_met),
                                      median=span_text(f.median, f.clock), p90=span_text(f.p90, f.clock), rmet=r.met,
                                      rcounted=r.met + r.breached))
    refs = sorted({b.ref for b in report.breaches})
    lines.append(t["breaches"].format(refs=", ".join(refs)) if refs else t["none"])
    return "\n".join(lines)


def last_full_week(as_of: datetime, zone: ZoneInfo = AMSTERDAM) -> tuple[date, date]:
    """Monday and Sunday of the last week that ended before ``as_of``."""
    monday = _monday(as_of, zone) - timedelta(days=7)
    return monday, monday + timedelta(days=6)


def weekly_summary(db: Database, as_of: datetime, *, zone: ZoneInfo = AMSTERDAM,
                   language: Language = "nl") -> WeeklySummary:
    """Last full week's report, its text and its chart, as of ``as_of``."""
    start, end = last_full_week(as_of, zone)
    report = load_report(db, start, end, as_of, zone=zone)
    return WeeklySummary(report, summary_text(report, language), render_chart(report), chart_filename(report))


__all__ = [
    "MAX_PERIOD_YEARS",
    "check_period",
    "FIRST_DAY",
    "LAST_DAY",
    "report_day",
    "Breach", "GroupSummary", "SlaReport", "TargetSummary", "TicketLine", "WeekPoint", "WeeklySummary",
    "build_report", "chart_filename", "load_report", "period_bounds", "render_chart", "report_data", "report_text",
    "staff_of", "summary_text", "weekly_summary",
]
