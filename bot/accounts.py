"""Accounts files: customer accounts and their contacts, from TOML or CSV, checked and stored.

How it works: a parser reads the file into rows (a TOML ``[[account]]`` table;
a CSV line, one per contact, lines of the same account grouped), checks every
value against the preset's plans, normalises the identities (e-mail addresses
in lower case, phone numbers in E.164, default region NL) and returns the good
accounts together with a :class:`Problem` (line and reason) for every row it
rejects. The parsers store nothing. :func:`import_accounts` stores the good
accounts in one transaction, upserting by account name, so importing a file
again updates the accounts in place.

An account is imported whole or not at all: in a CSV file, one bad line of an
account rejects the account's other lines too (each is reported), because an
account imported without one of its contacts would take that contact's
identities away.
"""

from __future__ import annotations

import csv
import io
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypeVar

from bot.errors import ConfigError, shown
from bot.i18n import LANGUAGES
from channels.identity import IdentityError, normalise_email, normalise_phone
from sla_engine.policy import Preset
from storage.database import Database
from storage.records import AccountInput, ContactInput
from storage.repositories import AccountRepository

T = TypeVar("T")

ACCOUNT_KEYS = ("name", "plan", "staff", "templates_delivered", "language", "monthly_hours", "billing_email",
                "contact")
CONTACT_KEYS = ("name", "email", "phone", "role", "authorised", "language")
CSV_ACCOUNT_COLUMNS = ("plan", "staff", "templates_delivered", "language", "monthly_hours", "billing_email")
CSV_CONTACT_COLUMNS = ("contact", "email", "phone", "role", "authorised")
CSV_COLUMNS = ("account", *CSV_ACCOUNT_COLUMNS, *CSV_CONTACT_COLUMNS)
CSV_REQUIRED = ("account", "plan", "contact")
ROLES = ("contact", "third_party")

# the column sizes in storage.models
NAME_MAX = 200
STAFF_MAX = 100
IDENTITY_MAX = 320
HOURS_MAX = Decimal("99999999.99")

_TRUE = frozenset({"true", "yes", "ja", "y", "1"})
_FALSE = frozenset({"false", "no", "nee", "n", "0"})
_ACCOUNT_HEADER = re.compile(r'^\s*\[\[\s*"?account"?\s*\]\]\s*(#.*)?$')


@dataclass(frozen=True)
class Problem:
    """A rejected row: where it starts in the file and why it was not imported."""

    line: int
    reason: str
    source: str = ""

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}" if self.source else f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class ImportReport:
    """What an import did: accounts created and updated, rows rejected."""

    source: str
    created: int
    updated: int
    problems: tuple[Problem, ...] = ()
    accounts: tuple[str, ...] = field(default=())  # the names imported, in file order

    @property
    def imported(self) -> int:
        return self.created + self.updated

    @property
    def ok(self) -> bool:
        """True when every row was imported."""
        return not self.problems

    def summary(self) -> str:
        return (f"imported {self.imported} accounts ({self.created} new, {self.updated} updated), "
                f"rejected {len(self.problems)} rows")


# -- reading one value -----------------------------------------------------------


class _Invalid(Exception):
    """A value that cannot be used; the message is the reason."""


def _text(value: object, key: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid(f"{key}: expected text, found {shown(value)}")
    text = value.strip()
    if len(text) > limit:
        raise _Invalid(f"{key}: longer than {limit} characters")
    return text or None


def _required_text(value: object, key: str, limit: int) -> str:
    text = _text(value, key, limit)
    if text is None:
        raise _Invalid(f"missing {key}")
    return text


def _plan(value: object, plans: Sequence[str]) -> str:
    name = _required_text(value, "plan", NAME_MAX).lower()
    if name not in plans:
        raise _Invalid(f"plan: unknown plan {name!r}; choose one of: {', '.join(plans)}")
    return name


def _choice(value: object, key: str, choices: Sequence[str]) -> str | None:
    text = _text(value, key, NAME_MAX)
    if text is None:
        return None
    if text.lower() not in choices:
        raise _Invalid(f"{key}: expected one of {', '.join(choices)}, found {text!r}")
    return text.lower()


def _date(value: object, key: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        raise _Invalid(f"{key}: expected a date such as 2026-11-01, found a date and time")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise _Invalid(f"{key}: expected an ISO date such as 2026-11-01, found {shown(value)}")


def _hours(value: object, key: str) -> Decimal | None:
    if value is None:
        return None
    number: Decimal | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = Decimal(str(value))
    elif isinstance(value, str):
        text = value.strip().replace(",", ".")  # 8,5 as a Dutch spreadsheet writes it
        if not text:
            return None
        try:
            number = Decimal(text)
        except InvalidOperation:
            number = None
    if number is None or not number.is_finite() or number < 0 or number > HOURS_MAX:
        raise _Invalid(f"{key}: expected a non-negative number of hours, found {shown(value)}")
    return number


def _flag(value: object, key: str, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if not text:
            return default
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise _Invalid(f"{key}: expected true or false, found {shown(value)}")


def _identities(value: object, key: str, normalise: Callable[[str], str]) -> tuple[str, ...]:
    """A list of e-mail addresses or phone numbers (or one text, split at ``;`` and ``,``), normalised."""
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[str] = re.split(r"[;,]", value)
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = [str(item) for item in value]
    else:
        raise _Invalid(f"{key}: expected a list of text, found {shown(value)}")
    found: list[str] = []
    for item in items:
        if not item.strip():
            continue
        try:
            normal = normalise(item)
        except IdentityError as exc:
            raise _Invalid(f"{key}: {exc}") from None
        if len(normal) > IDENTITY_MAX:
            raise _Invalid(f"{key}: {item.strip()!r} is longer than {IDENTITY_MAX} characters")
        found.append(normal)
    return tuple(dict.fromkeys(found))


class _Checker:
    """Reads values one by one and collects the reasons of those that fail."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def __call__(self, read: Callable[[], T], fallback: T) -> T:
        try:
            return read()
        except _Invalid as exc:
            self.reasons.append(str(exc))
            return fallback

    def unknown_keys(self, data: Mapping[str, object], allowed: Sequence[str]) -> None:
        for key in data:
            if key not in allowed:
                self.reasons.append(f"unknown key {key!r}; expected one of: {', '.join(allowed)}")


# -- reading one account or contact -----------------------------------------------


@dataclass(frozen=True)
class _AccountFields:
    name: str
    plan: str
    staff: str | None
    templates_delivered: date | None
    language: str
    monthly_hours: Decimal | None
    billing_email: str | None


def _read_account(data: Mapping[str, object], plans: Sequence[str], check: _Checker) -> _AccountFields:
    """The account's own values (not its contacts) from a mapping with the TOML key names."""
    staff = check(lambda: _text(data.get("staff"), "staff", STAFF_MAX), None)
    return _AccountFields(
        name=check(lambda: _required_text(data.get("name"), "name", NAME_MAX), ""),
        plan=check(lambda: _plan(data.get("plan"), plans), ""),
        staff=(staff.lstrip("@") or None) if staff else None,
        templates_delivered=check(lambda: _date(data.get("templates_delivered"), "templates_delivered"), None),
        language=check(lambda: _choice(data.get("language"), "language", LANGUAGES), None) or "nl",
        monthly_hours=check(lambda: _hours(data.get("monthly_hours"), "monthly_hours"), None),
        billing_email=check(lambda: _billing_email(data.get("billing_email")), None),
    )


def _billing_email(value: object) -> str | None:
    """The account's billing address (invoices go there, R21); None when the file leaves it out."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    found = _identities(value, "billing_email", normalise_email)
    if len(found) != 1:
        raise _Invalid(f"billing_email: expected one e-mail address, found {shown(value)}")
    return found[0]


def _read_contact(data: Mapping[str, object], label: str, *, strict_keys: bool) -> tuple[ContactInput, list[str]]:
    """A contact from a mapping with the TOML key names, and the reasons it is bad (each naming it)."""
    check = _Checker()
    if strict_keys:
        check.unknown_keys(data, CONTACT_KEYS)
    name = check(lambda: _required_text(data.get("name"), "name", NAME_MAX), "")
    role = check(lambda: _choice(data.get("role"), "role", ROLES), None) or "contact"
    authorised = check(lambda: _flag(data.get("authorised"), "authorised", default=role == "contact"), False)
    language = check(lambda: _choice(data.get("language"), "language", LANGUAGES), None)
    before = len(check.reasons)
    none: tuple[str, ...] = ()
    emails = check(lambda: _identities(data.get("email"), "email", normalise_email), none)
    phones = check(lambda: _identities(data.get("phone"), "phone", normalise_phone), none)
    if not emails and not phones and len(check.reasons) == before:
        check.reasons.append("no e-mail address or phone number")
    who = f"contact {name!r}" if name else label
    contact = ContactInput(name=name, emails=emails, phones=phones, role=role, authorised=authorised,
                           language=language)
    return contact, [f"{who}: {reason}" for reason in check.reasons]


def _account_input(fields: _AccountFields, contacts: Iterable[ContactInput]) -> AccountInput:
    return AccountInput(
        name=fields.name, plan=fields.plan, staff=fields.staff, templates_delivered=fields.templates_delivered,
        language=fields.language, monthly_hours=fields.monthly_hours, contacts=tuple(contacts),
        billing_email=fields.billing_email,
    )


# -- TOML ---------------------------------------------------------------------------


def _toml_header_lines(text: str) -> list[int]:
    """The line numbers of the ``[[account]]`` headers, in order."""
    return [number for number, line in enumerate(text.splitlines(), start=1) if _ACCOUNT_HEADER.match(line)]


def _toml_key_line(text: str, key: str) -> int:
    """The first line that defines top-level ``key`` (``key = ...`` or ``[key]``); 1 when not found."""
    pattern = re.compile(rf'^\s*\[{{0,2}}\s*"?{re.escape(key)}"?\s*[\]=.]')
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return 1


def parse_accounts_toml(text: str, source: str, plans: Iterable[str]) -> tuple[list[AccountInput], list[Problem]]:
    """The accounts of a TOML accounts file (``[[account]]`` tables), and the problems of the rejected ones.

    Raises :class:`ConfigError` when the text is not TOML or holds no ``[[account]]`` list.
    """
    choices = tuple(plans)
    text = text.removeprefix("\ufeff")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: not valid TOML: {exc}"]) from None
    problems: list[Problem] = []
    for key in data:
        if key != "account":
            problems.append(Problem(_toml_key_line(text, key),
                                    f"unknown top-level key {key!r}; an accounts file holds [[account]] tables",
                                    source))
    tables = data.get("account", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError([f"{source}: 'account' must be a list of [[account]] tables"])
    headers = _toml_header_lines(text)
    accounts: list[AccountInput] = []
    seen: dict[str, int] = {}
    for index, table in enumerate(tables):
        line = headers[index] if index < len(headers) else (headers[-1] if headers else 1)
        check = _Checker()
        check.unknown_keys(table, ACCOUNT_KEYS)
        fields = _read_account(table, choices, check)
        contacts: list[ContactInput] = []
        raw_contacts = table.get("contact", [])
        if not isinstance(raw_contacts, list) or not all(isinstance(c, dict) for c in raw_contacts):
            check.reasons.append("contact: expected [[account.contact]] tables")
            raw_contacts = []
        names: set[str] = set()
        for number, raw in enumerate(raw_contacts, start=1):
            contact, reasons = _read_contact(raw, f"contact #{number}", strict_keys=True)
            check.reasons.extend(reasons)
            if contact.name and contact.name in names:
                check.reasons.append(f"contact {contact.name!r} is listed twice")
            names.add(contact.name)
            contacts.append(contact)
        if fields.name:
            first = seen.get(fields.name.casefold())
            if first is not None:
                check.reasons.append(f"account {fields.name!r} is already given on line {first}")
            else:
                seen[fields.name.casefold()] = line
        if check.reasons:
            who = f"account {fields.name!r}: " if fields.name else "account: "
            problems.append(Problem(line, who + "; ".join(check.reasons), source))
            continue
        accounts.append(_account_input(fields, contacts))
    problems.sort(key=lambda p: p.line)
    return accounts, problems


# -- CSV ------------------------------------------------------------------------------


def _csv_rows(text: str, source: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header (lower case) and the non-blank rows with the line each starts on."""
    text = text.removeprefix("\ufeff")
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = ";" if first.count(";") > first.count(",") else ","  # a Dutch spreadsheet writes ;
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    previous = 0
    try:
        for cells in reader:
            start, previous = previous + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header = [cell.strip().lower() for cell in cells]
            else:
                rows.append((start, cells))
    except csv.Error as exc:
        raise ConfigError([f"{source}:{reader.line_num}: not valid CSV: {exc}"]) from None
    if header is None:
        raise ConfigError([f"{source}: no header line; expected the columns {', '.join(CSV_COLUMNS)}"])
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if unknown:
        raise ConfigError([f"{source}: unknown column(s) {', '.join(map(repr, unknown))}; "
                           f"expected: {', '.join(CSV_COLUMNS)}"])
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise ConfigError([f"{source}: column(s) given twice: {', '.join(twice)}"])
    missing = [c for c in CSV_REQUIRED if c not in header]
    if missing:
        raise ConfigError([f"{source}: missing column(s) {', '.join(missing)}; expected: {', '.join(CSV_COLUMNS)}"])
    return header, rows


def parse_accounts_csv(text: str, source: str, plans: Iterable[str]) -> tuple[list[AccountInput], list[Problem]]:
    """The accounts of a CSV accounts file (one line per contact), and a problem for every rejected line.

    An account's own columns may be repeated on each of its lines or left empty
    after the first; a line that gives a different value is rejected. Raises
    :class:`ConfigError` when the text is not CSV or its header is not usable.
    """
    choices = tuple(plans)
    header, raw_rows = _csv_rows(text, source)
    problems: list[Problem] = []
    groups: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for line, cells in raw_rows:
        if len(cells) > len(header):
            problems.append(Problem(line, f"{len(cells)} cells, but the header has {len(header)} columns", source))
            continue
        row = {column: cells[i].strip() if i < len(cells) else "" for i, column in enumerate(header)}
        if not row["account"]:
            problems.append(Problem(line, "missing account name", source))
            continue
        groups.setdefault(row["account"].casefold(), []).append((line, row))

    accounts: list[AccountInput] = []
    for rows in groups.values():
        name = rows[0][1]["account"]
        bad: dict[int, list[str]] = {}
        # the account's own columns: the first non-empty value of each, the same on every line that repeats it
        given: dict[str, tuple[str, int]] = {}
        for line, row in rows:
            for column in CSV_ACCOUNT_COLUMNS:
                value = row.get(column, "")
                if not value:
                    continue
                if column not in given:
                    given[column] = (value, line)
                elif value.casefold() != given[column][0].casefold():
                    bad.setdefault(line, []).append(
                        f"{column} {value!r} differs from {given[column][0]!r} on line {given[column][1]}")
        check = _Checker()
        fields = _read_account({"name": name, **{c: v for c, (v, _) in given.items()}}, choices, check)
        if check.reasons:
            # report each at the line its value came from (a missing value at the account's first line)
            for reason in check.reasons:
                column = reason.split(":", 1)[0].removeprefix("missing ")
                bad.setdefault(given[column][1] if column in given else rows[0][0], []).append(reason)
        contacts: list[ContactInput] = []
        names: dict[str, int] = {}
        for line, row in rows:
            if not any(row.get(column) for column in CSV_CONTACT_COLUMNS):
                continue  # a line with only the account's own columns
            raw = {"name": row.get("contact"), "email": row.get("email"), "phone": row.get("phone"),
                   "role": row.get("role"), "authorised": row.get("authorised")}
            contact, reasons = _read_contact(raw, "contact", strict_keys=False)
            if contact.name and contact.name in names:
                reasons.append(f"contact {contact.name!r} is already listed on line {names[contact.name]}")
            names.setdefault(contact.name, line)
            if reasons:
                bad.setdefault(line, []).extend(reasons)
            contacts.append(contact)
        if bad:
            for line, _ in rows:
                if line in bad:
                    reason = f"account {name!r}: " + "; ".join(bad[line])
                else:
                    reason = f"account {name!r} not imported: line(s) {', '.join(map(str, sorted(bad)))} rejected"
                problems.append(Problem(line, reason, source))
            continue
        accounts.append(_account_input(fields, contacts))
    problems.sort(key=lambda p: p.line)
    return accounts, problems


# -- files and the database ------------------------------------------------------------


def read_accounts_file(path: str | Path, plans: Iterable[str]) -> tuple[list[AccountInput], list[Problem]]:
    """Parse an accounts file by its suffix (``.toml`` or ``.csv``); :class:`ConfigError` when it is unusable."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".toml", ".csv"):
        raise ConfigError([f"{file}: expected a .toml or .csv accounts file"])
    try:
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError([f"{file}: no such accounts file"]) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{file}: cannot be read ({exc.__class__.__name__}: {exc})"]) from None
    parse = parse_accounts_toml if suffix == ".toml" else parse_accounts_csv
    return parse(text, str(file), plans)


def store_accounts(db: Database, accounts: Sequence[AccountInput], now: datetime) -> list[bool]:
    """Upsert ``accounts`` by name in one transaction; for each, whether it was created."""
    if not accounts:
        return []
    return db.run(lambda s: [AccountRepository(s).upsert(account, now)[1] for account in accounts])


def import_accounts(db: Database, path: str | Path, preset: Preset, now: datetime) -> ImportReport:
    """Read an accounts file, store its good accounts, and report what was done and rejected."""
    accounts, problems = read_accounts_file(path, preset.plan_names)
    created = store_accounts(db, accounts, now)
    return ImportReport(
        source=str(path), created=sum(created), updated=len(created) - sum(created), problems=tuple(problems),
        accounts=tuple(a.name for a in accounts),
    )


__all__ = [
    "ImportReport",
    "Problem",
    "import_accounts",
    "parse_accounts_csv",
    "parse_accounts_toml",
    "read_accounts_file",
    "store_accounts",
]
