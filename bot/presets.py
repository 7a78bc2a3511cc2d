"""Presets: SLA documents as TOML files, read into ``sla_engine`` values.

The file format is checked by strict pydantic models (unknown keys are
errors); :func:`preset_from_mapping` then builds the engine's frozen values.
``mailcampaigns`` and ``paynl`` ship inside the package; any other preset is a
path to a file of the same shape.
"""

from __future__ import annotations

import re
import tomllib
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.errors import ConfigError, describe_validation_error
from sla_engine.billing import BillingTerms, RateCard
from sla_engine.calendar import BusinessCalendar, Closure, Window
from sla_engine.classification import (
    ClassificationRule,
    Kind,
    RootCause,
    TemplateWindow,
)
from sla_engine.clocks import ClockKind
from sla_engine.errors import SlaEngineError
from sla_engine.policy import (
    DEFAULT_REMINDERS,
    Channel,
    CriticalLine,
    Plan,
    Preset,
    PriorityTargets,
    ReminderRule,
    ResolutionTarget,
    Target,
    parse_duration,
)
from sla_engine.priority import Line, PriorityLevel, PriorityRule

BUILTIN = ("mailcampaigns", "paynl")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _duration(value: str) -> str:
    parse_duration(value)
    return value


def _reminder_specs(value: list[str]) -> list[str]:
    for spec in value:
        ReminderRule.parse(spec)
    return value


class ClosureModel(_Strict):
    from_: date = Field(alias="from")
    to: date | None = None
    reason: str = "closed"


class CalendarModel(_Strict):
    timezone: str = "Europe/Amsterdam"
    holidays: str = "NL"
    drop_holidays: list[str] = []
    closures: list[ClosureModel | date] = []
    hours: dict[Weekday, list[str]]

    @field_validator("hours")
    @classmethod
    def _windows(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for windows in value.values():
            for text in windows:
                Window.parse(text)
        return value


class TargetModel(_Strict):
    duration: str
    clock: ClockKind | None = None  # the plan's ``clock``
    calendar: str | None = None  # the plan's ``calendar``
    _check = field_validator("duration")(_duration)


class ResolutionModel(_Strict):
    min: str | None = None
    max: str | None = None
    duration: str | None = None  # a single target: min and max alike
    clock: ClockKind | None = None
    calendar: str | None = None
    excludes_release: bool = False
    _check = field_validator("min", "max", "duration")(_duration)

    @model_validator(mode="after")
    def _range(self) -> ResolutionModel:
        if self.duration is None and (self.min is None or self.max is None):
            raise ValueError("a resolution target needs either duration or both min and max")
        return self


_WORKING_DAYS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:wd|working\s+days?|werkdagen|werkdag)\s*$", re.IGNORECASE)


def _short(value: str) -> str:
    """A target written as text: ``"15m"``, ``"4h"`` (the plan's clock), ``"2 working days"``, ``"24h calendar"``."""
    split_target(value, ClockKind.BUSINESS)
    return value


def split_target(text: str, clock: ClockKind) -> tuple[str, ClockKind]:
    """The duration and clock of a target written as text (see :func:`_short`)."""
    found = _WORKING_DAYS.match(text)
    if found:
        return f"{found.group(1)}d", ClockKind.WORKING_DAYS
    words = text.split()
    if len(words) == 2 and words[1] in {k.value for k in ClockKind}:
        text, clock = words[0], ClockKind(words[1])
    parse_duration(text)
    return text, clock


class CellModel(_Strict):
    """One cell of the priority matrix: a plan's first response and resolution for one priority."""

    first_response: Annotated[str, AfterValidator(_short)] | TargetModel | None = None
    resolution: Annotated[str, AfterValidator(_short)] | ResolutionModel | None = None
    reminders: Annotated[list[str], AfterValidator(_reminder_specs)] | None = None


class PlanModel(_Strict):
    name: str
    title: str | None = None
    channels: list[Channel]
    sla: bool
    calendar: str | None = None
    clock: ClockKind = ClockKind.BUSINESS
    first_response: Annotated[str, AfterValidator(_short)] | TargetModel | None = None
    resolution: Annotated[str, AfterValidator(_short)] | ResolutionModel | None = None
    targets: dict[str, CellModel] = {}
    staff_role: str | None = None
    queue_priority: int = 0
    reminders: Annotated[list[str], AfterValidator(_reminder_specs)] | None = None
    monthly_hours: bool = False
    paid_service: bool = False


class RateModel(_Strict):
    effective_from: date
    ad_hoc: Decimal
    urgent_surcharge_percent: Decimal
    punch_card_discount_percent: Decimal


class BillingModel(_Strict):
    minimum_hours: Decimal = Decimal(1)
    punch_card_minimum_hours: Decimal = Decimal(5)
    separate_invoice_above: Decimal = Decimal(1000)
    payment_term: str = "14d"
    currency: str = "EUR"
    vat_percent: Decimal = Field(default=Decimal(21), ge=0, le=100)
    rates: list[RateModel] = Field(min_length=1)
    _check = field_validator("payment_term")(_duration)


class RuleModel(_Strict):
    name: str
    kind: Kind
    keywords: list[str] = []
    root_cause: RootCause | None = None
    template_window: TemplateWindow | None = None
    reason: str = ""


class PriorityModel(_Strict):
    name: str
    title: str | None = None
    description: str = ""


class PriorityRuleModel(_Strict):
    name: str
    priority: str
    keywords: list[str] = []
    channels: list[Literal["whatsapp", "email", "phone", "platform"]] = []
    lines: list[Line] = []
    urgency: list[str] = []
    impact: list[str] = []
    reason: str = ""


class CriticalModel(_Strict):
    calendar: str
    repage_every: str = "15m"
    outage_charge_warning: bool = True
    _check = field_validator("repage_every")(_duration)


class PresetModel(_Strict):
    name: str
    title: str
    ref_prefix: str = Field(pattern=r"^[A-Z]{1,5}$")
    default_kind: Kind = Kind.UNDETERMINED
    template_window: str = "30d"
    languages: list[Literal["nl", "en"]] = ["nl", "en"]
    calendars: dict[str, CalendarModel] = Field(min_length=1)
    plans: list[PlanModel] = Field(min_length=1)
    critical: CriticalModel | None = None
    billing: BillingModel | None = None
    classification: list[RuleModel] = []
    # every plan's, unless it names its own
    reminders: Annotated[list[str], AfterValidator(_reminder_specs)] = [r.spec for r in DEFAULT_REMINDERS]
    priorities: list[PriorityModel] = []
    priority_rules: list[PriorityRuleModel] = []
    default_priority: str | None = None
    _check = field_validator("template_window")(_duration)


def _calendar(name: str, model: CalendarModel) -> BusinessCalendar:
    closures = [
        Closure(c, c) if isinstance(c, date) else Closure(c.from_, c.to or c.from_, c.reason) for c in model.closures
    ]
    return BusinessCalendar.build(
        name,
        {day: windows for day, windows in model.hours.items()},
        timezone=model.timezone,
        holiday_country=model.holidays or None,
        dropped_holidays=model.drop_holidays,
        closures=closures,
    )


def _target(value: str | TargetModel | None, plan: PlanModel, first: str) -> Target | None:
    if value is None:
        return None
    if isinstance(value, str):
        text, clock = split_target(value, plan.clock)
        return Target(parse_duration(text), clock, plan.calendar or first)
    return Target(parse_duration(value.duration), value.clock or plan.clock, value.calendar or plan.calendar or first)


def _resolution(value: str | ResolutionModel | None, plan: PlanModel, first: str) -> ResolutionTarget | None:
    if value is None:
        return None
    if isinstance(value, str):
        text, clock = split_target(value, plan.clock)
        return ResolutionTarget(parse_duration(text), parse_duration(text), clock, plan.calendar or first)
    low, high = value.min or value.duration, value.max or value.duration
    assert low is not None and high is not None
    return ResolutionTarget(parse_duration(low), parse_duration(high), value.clock or plan.clock,
                            value.calendar or plan.calendar or first, value.excludes_release)


def _plan(model: PlanModel, preset: PresetModel) -> Plan:
    first = next(iter(preset.calendars))
    own_reminders = tuple(ReminderRule.parse(s) for s in (model.reminders or preset.reminders))
    return Plan(
        name=model.name.lower(),
        title=model.title or model.name.title(),
        channels=frozenset(model.channels),
        sla=model.sla,
        first_response=_target(model.first_response, model, first),
        resolution=_resolution(model.resolution, model, first),
        staff_role=model.staff_role,
        queue_priority=model.queue_priority,
        reminders=own_reminders,
        monthly_hours=model.monthly_hours,
        paid_service=model.paid_service,
        calendar=model.calendar,
        targets=tuple(
            (name.lower(), PriorityTargets(
                _target(cell.first_response, model, first), _resolution(cell.resolution, model, first),
                None if cell.reminders is None else tuple(ReminderRule.parse(r) for r in cell.reminders)))
            for name, cell in model.targets.items()
        ),
    )


def preset_from_mapping(data: dict[str, Any], source: str = "<preset>") -> Preset:
    """Validate a parsed preset file and build the engine's :class:`Preset`."""
    try:
        model = PresetModel.model_validate(data)
    except ValidationError as exc:
        raise describe_validation_error(source, PresetModel, exc) from None
    try:
        billing = None
        if model.billing is not None:
            b = model.billing
            billing = BillingTerms(
                rates=tuple(
                    RateCard(r.effective_from, r.ad_hoc, r.urgent_surcharge_percent, r.punch_card_discount_percent)
                    for r in b.rates
                ),
                minimum_hours=b.minimum_hours,
                punch_card_minimum_hours=b.punch_card_minimum_hours,
                separate_invoice_above=b.separate_invoice_above,
                payment_term=parse_duration(b.payment_term),
                currency=b.currency,
                vat_percent=b.vat_percent,
            )
        return Preset(
            name=model.name,
            title=model.title,
            ref_prefix=model.ref_prefix,
            calendars={name: _calendar(name, cal) for name, cal in model.calendars.items()},
            plans=tuple(_plan(p, model) for p in model.plans),
            classification=tuple(
                ClassificationRule(
                    r.name, r.kind, tuple(r.keywords), r.root_cause, r.template_window, r.reason
                )
                for r in model.classification
            ),
            default_kind=model.default_kind.value,
            template_window=parse_duration(model.template_window),
            critical=(
                CriticalLine(model.critical.calendar, parse_duration(model.critical.repage_every),
                             model.critical.outage_charge_warning)
                if model.critical
                else None
            ),
            billing=billing,
            languages=tuple(model.languages),
            priorities=tuple(PriorityLevel(p.name.lower(), p.title or p.name.upper(), p.description)
                             for p in model.priorities),
            priority_rules=tuple(
                PriorityRule(r.name, r.priority.lower(), tuple(r.keywords), tuple(r.channels), tuple(r.lines),
                             tuple(r.urgency), tuple(r.impact), r.reason)
                for r in model.priority_rules
            ),
            default_priority=(model.default_priority.lower() if model.default_priority
                              else model.priorities[-1].name.lower() if model.priorities else None),
        )
    except SlaEngineError as exc:
        raise ConfigError([f"{source}: {exc}"]) from None


def load_preset(name_or_path: str, base_dir: Path | None = None) -> Preset:
    """A shipped preset by name, or a preset file by path (relative to ``base_dir``)."""
    if name_or_path in BUILTIN:
        resource = resources.files("bot").joinpath("preset_files", f"{name_or_path}.toml")
        source = f"preset {name_or_path}"
        text = resource.read_text(encoding="utf-8")
    else:
        path = Path(name_or_path)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        if not path.suffix == ".toml" or not path.is_file():
            raise ConfigError(
                [f"unknown preset {name_or_path!r}; choose one of: {', '.join(BUILTIN)}, or a path to a preset .toml file"]
            )
        source = str(path)
        text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: not valid TOML: {exc}"]) from None
    return preset_from_mapping(data, source)


# -- checking a preset file: every problem in one pass, each with its line ---------------------------------------

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_TOML_LINE = re.compile(r"at line (\d+)")


def locate(text: str, loc: tuple[str | int, ...]) -> int:
    """The line (1-based) of a TOML file that holds the key at ``loc`` (``("plans", 2, "targets", "p1")``), as near
    as the file's layout lets one tell: the array-of-tables entry, then the table or key within it."""
    lines = text.splitlines()
    found, start, path = 0, 0, ""
    parts = list(loc)
    i = 0
    while i < len(parts):
        part = parts[i]
        if isinstance(part, int):
            i += 1
            continue
        name = f"{path}.{part}" if path else str(part)
        if i + 1 < len(parts) and isinstance(parts[i + 1], int):
            entries = [n for n, line in enumerate(lines) if line.strip().replace(" ", "") == f"[[{name}]]"]
            index = int(parts[i + 1])
            if index < len(entries):
                found = start = entries[index]
                path = name
                i += 2
                continue
        key = re.compile(r"(^|[\s{,])" + re.escape(str(part)) + r"\s*=")
        for n in range(start, len(lines)):
            header = _HEADER.match(lines[n])
            if header and (header.group(1) == name or header.group(1).startswith(name + ".")):
                found = start = n
                break
            if key.search(lines[n].split("#", 1)[0]):
                found = start = n
                break
        path = name
        i += 1
    return found + 1


def _where(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "(top level)"


def _table(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _overlaps(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for name, calendar in _table(data.get("calendars")).items():
        for day, windows in _table(_table(calendar).get("hours")).items():
            parsed = []
            for text in _list(windows):
                try:
                    parsed.append(Window.parse(str(text)))
                except SlaEngineError:
                    continue  # told by the format check
            parsed.sort(key=lambda w: w.start_s)
            for before, after in zip(parsed, parsed[1:]):
                if after.start_s < before.end_s:
                    problems.append((("calendars", name, "hours", day),
                                     f"opening hours {before} and {after} overlap"))
    return problems


def _plan_problems(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """Unknown calendars and priorities, plans without targets, priorities no plan covers."""
    calendars = set(_table(data.get("calendars")))
    priorities = [str(_table(p).get("name", "")).lower() for p in _list(data.get("priorities"))]
    known = f"the preset has {', '.join(sorted(calendars)) or 'no calendars'}"
    problems: list[tuple[tuple[str | int, ...], str]] = []
    covered: set[str] = set()

    def calendar_of(where: tuple[str | int, ...], value: object) -> None:
        name = _table(value).get("calendar")
        if name is not None and name not in calendars:
            problems.append(((*where, "calendar"), f"unknown calendar {name!r}; {known}"))

    for i, raw in enumerate(_list(data.get("plans"))):
        plan = _table(raw)
        where: tuple[str | int, ...] = ("plans", i)
        calendar_of(where, plan)
        cells = _table(plan.get("targets"))
        for key in ("first_response", "resolution"):
            calendar_of((*where, key), plan.get(key))
        if plan.get("sla") is True and plan.get("first_response") is None and not cells:
            problems.append((where, f"plan {plan.get('name')!r} has an SLA but no targets (first_response, or "
                                    "targets per priority)"))
        for priority, cell in cells.items():
            covered.add(str(priority).lower())
            if str(priority).lower() not in priorities:
                problems.append(((*where, "targets", priority),
                                 f"priority {priority!r} is not one of the preset's priorities "
                                 f"({', '.join(priorities) or 'none'})"))
            for key in ("first_response", "resolution"):
                calendar_of((*where, "targets", priority, key), _table(cell).get(key))
            if _table(cell).get("first_response") is None and _table(cell).get("resolution") is None:
                problems.append(((*where, "targets", priority), f"the {priority} targets of plan "
                                                                f"{plan.get('name')!r} name no target"))
    critical = _table(data.get("critical"))
    calendar_of(("critical",), critical)
    own = any(_table(p).get("first_response") or _table(p).get("resolution") for p in _list(data.get("plans")))
    if not own and any(_table(p).get("targets") for p in _list(data.get("plans"))):
        for i, name in enumerate(priorities):
            if name not in covered:
                problems.append((("priorities", i), f"priority {name!r} is in no plan's targets: the matrix does "
                                                    "not cover it"))
    for i, rule in enumerate(_list(data.get("priority_rules"))):
        wanted = str(_table(rule).get("priority", "")).lower()
        if wanted and wanted not in priorities:
            problems.append((("priority_rules", i, "priority"), f"unknown priority {wanted!r}"))
        if not any(_table(rule).get(k) for k in ("keywords", "channels", "lines", "urgency", "impact")):
            problems.append((("priority_rules", i), f"priority rule {_table(rule).get('name')!r} has no condition"))
    default = data.get("default_priority")
    if default is not None and str(default).lower() not in priorities:
        problems.append((("default_priority",), f"unknown priority {default!r}"))
    return problems


def _format_problems(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """The format's own complaints (types, unknown keys, bad durations), one per key."""
    try:
        PresetModel.model_validate(data)
    except ValidationError as exc:
        lines = describe_validation_error("", PresetModel, exc).problems
        seen: dict[tuple[str | int, ...], str] = {}
        for item, line in zip(exc.errors(include_url=False), lines):
            loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and (
                p.startswith("function-") or p[:1].isupper() or p in {"str", "date", "list[str]"})))
            message = line.split(": ", 2)[-1]
            if loc not in seen or seen[loc].startswith("expected a valid dictionary"):
                seen[loc] = message
        # a value that may be text or a table: the complaint of the branch it was written in
        return [(loc, message) for loc, message in seen.items()
                if not (message.startswith(("expected a valid string", "expected a valid dictionary"))
                        and any(other[:len(loc)] == loc and other != loc for other in seen))]
    return []


def check_preset_text(text: str, source: str) -> list[tuple[int, str]]:
    """Every problem of a preset file, each with its line number, in the order of the file."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _TOML_LINE.search(str(exc))
        return [(int(line.group(1)) if line else 1, f"not valid TOML: {exc}")]
    found = [*_format_problems(data), *_overlaps(data), *_plan_problems(data)]
    problems = sorted({(locate(text, loc), f"{_where(loc)}: {message}") for loc, message in found})
    if not problems:
        try:
            preset_from_mapping(data, source)
        except ConfigError as exc:
            problems = [(1, p.removeprefix(f"{source}: ")) for p in exc.problems]
    return problems
