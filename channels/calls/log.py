"""Phone-call logs as exported by a PBX or by Twilio (CSV or JSON), read into calls and inbound messages.

Columns (CSV header names, or JSON object keys; the first name listed is the
documented one, the others are what common exports call it):

- ``call_id`` (``id``, ``CallSid``, ``sid``): the call's own id; without it a
  hash of the row stands in, so a re-import is still recognised.
- ``time`` (``start_time``, ``StartTime``, ``start``, ``date``): when the call
  started, which starts its SLA clock (R23): ISO 8601 (without an offset,
  Amsterdam time) or RFC 2822 as Twilio writes it; a date without a time of
  day is refused. A start column wins over a ``date`` column; the end of the
  call (``end_time``) or when the row was written is never used.
- ``caller`` (``from``, ``From``): the caller's number (any notation; E.164
  after normalising, default region NL).
- ``called`` (``to``, ``To``): the number that was called.
- ``duration`` (``Duration``): seconds; 0 or a status of missed/no-answer/busy
  makes it a missed call (a status of answered/completed keeps it answered).
- ``status`` (``Status``), ``agent``, ``notes``, and ``critical`` (true for a
  call to the outage line, R17).
- ``direction`` (``Direction``): ``outbound`` (Twilio: ``outbound-dial``,
  ``outbound-api``) for a call staff made to ``called``, a contact's number;
  anything else (``inbound``, empty) is a call that came in.

The form Twilio Voice posts when a call comes in on the outage line is read
into the same :class:`Call` by :func:`channels.whatsapp.parse_voice_call`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import date, datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from channels.identity import IdentityError, phone_identity
from channels.messages import NUL, ChannelName, InboundMessage, nul_note, without_nul

AMSTERDAM = ZoneInfo("Europe/Amsterdam")

ALIASES: dict[str, tuple[str, ...]] = {
    "call_id": ("call_id", "id", "callsid", "sid"),
    "time": ("time", "start_time", "starttime", "start", "date"),  # the call's start before a mere date
    "caller": ("caller", "from", "from_number"),
    "called": ("called", "to", "to_number"),
    "duration": ("duration", "duration_seconds"),
    "status": ("status",),
    "agent": ("agent", "answered_by"),
    "notes": ("notes", "note", "summary"),
    "critical": ("critical",),
    "direction": ("direction",),
}
MISSED = {"missed", "no-answer", "no_answer", "busy", "failed", "canceled", "cancelled", "voicemail"}
ANSWERED = {"answered", "completed"}  # answered even when the export gives no duration


class CallLogError(ValueError):
    """A call-log row or file that cannot be read; the message says why (the root of this package's errors)."""


@dataclass(frozen=True)
class Call:
    """One phone call: who called when, whether anyone answered, and what was noted."""

    call_id: str
    at: datetime
    caller: str
    called: str | None
    duration: int
    missed: bool
    agent: str | None
    notes: str
    critical: bool
    outbound: bool = False  # staff called ``called`` (a contact's number); ``caller`` is the desk's own line
    cleaned: tuple[str, ...] = ()  # the columns whose NUL characters were removed (no database text holds them)

    def text(self) -> str:
        """The call as the text of its message on the ticket."""
        if self.outbound:
            head = f"Uitgaande oproep naar {self.called or 'de contactpersoon'}"
            head += ", niet beantwoord" if self.missed else ""
            if not self.missed and self.duration:
                minutes, seconds = divmod(self.duration, 60)
                head += f" ({minutes}:{seconds:02d})"
            if self.agent:
                head += f", door {self.agent}"
            return f"{head}\n{self.notes}".strip()
        if self.missed:
            head = f"Gemiste oproep van {self.caller}"
        else:
            head = f"Telefoongesprek met {self.caller}"
            if self.duration:
                minutes, seconds = divmod(self.duration, 60)
                head += f" ({minutes}:{seconds:02d})"
            if self.agent:
                head += f", aangenomen door {self.agent}"
        if self.critical:
            head = f"Storingslijn: {head}"
        return f"{head}\n{self.notes}".strip()


def _field(row: dict[str, Any], name: str) -> str | None:
    for alias in ALIASES[name]:
        value = row.get(alias)
        if value not in (None, ""):
            return str(value).strip()
    return None


def parse_call(row: dict[str, Any]) -> Call:
    """One row (keys in lower case) as a :class:`Call`; :class:`CallLogError` with the reason when it is unusable.
    NUL characters are removed from its values (:attr:`Call.cleaned` names the columns)."""
    cleaned = tuple(key for key, value in row.items() if isinstance(value, str) and NUL in value)
    if cleaned:
        row = {key: without_nul(value) if isinstance(value, str) else value for key, value in row.items()}
    outbound = (_field(row, "direction") or "").lower().startswith("outbound")
    caller_text, called = _field(row, "caller"), _field(row, "called")
    if outbound:  # the contact is the number called; the desk's own line may be written any way
        if called is None:
            raise CallLogError("an outbound call without the number called")
        called = _phone(called, "called")
        caller = caller_text or ""
    elif caller_text is None:
        raise CallLogError("no caller number")
    else:
        caller = _phone(caller_text, "caller")
    when = _field(row, "time")
    if when is None:
        raise CallLogError("no time")
    at = _start(when)
    duration_text = _field(row, "duration") or "0"
    try:
        duration = int(float(duration_text))
    except ValueError:
        raise CallLogError(f"duration {duration_text!r} is not a number of seconds") from None
    if duration < 0:
        raise CallLogError(f"duration {duration} is negative")
    status = (_field(row, "status") or "").lower()
    call_id = _field(row, "call_id") or "row-" + hashlib.sha256(
        json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return Call(call_id=call_id, at=at.astimezone(timezone.utc), caller=caller, called=called,
                duration=duration, missed=status in MISSED or (duration == 0 and status not in ANSWERED),
                agent=_field(row, "agent"),
                notes=_field(row, "notes") or "", critical=(_field(row, "critical") or "").lower() in (
                    "1", "true", "yes", "ja"), outbound=outbound, cleaned=cleaned)


def _phone(text: str, column: str) -> str:
    """A number of the log in E.164; :class:`CallLogError` naming ``column`` when it is none."""
    try:
        return phone_identity(text.removeprefix("whatsapp:")).value
    except IdentityError as exc:
        raise CallLogError(f"{column} {text!r}: {exc}") from None


def _start(when: str) -> datetime:
    """The call's start: ISO 8601 (Amsterdam time without an offset) or RFC 2822 (Twilio); aware."""
    try:
        date.fromisoformat(when)
    except ValueError:
        pass
    else:
        raise CallLogError(f"time {when!r} has no time of day: when did the call start?")
    try:
        at = datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        try:
            at = parsedate_to_datetime(when)
        except (TypeError, ValueError, IndexError, OverflowError):
            raise CallLogError(f"time {when!r} is not ISO 8601 (2026-11-23T10:15:00+01:00)") from None
    return at.replace(tzinfo=AMSTERDAM) if at.tzinfo is None else at


def read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line, row) pairs of a CSV or JSON call log; keys in lower case."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        items = data.get("calls", data) if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise CallLogError("a JSON call log is a list of calls (or {\"calls\": [...]})")
        return [(i + 1, {str(k).lower(): v for k, v in item.items()} if isinstance(item, dict) else {})
                for i, item in enumerate(items)]
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    for row in reader:
        rows.append((reader.line_num, {str(k).strip().lower(): v for k, v in row.items() if k is not None}))
    return rows


def call_external_id(call_id: str) -> str:
    """The id a call's message is stored under on the phone channel: ``call:<call_id>``."""
    return f"call:{call_id}"


def call_message(call: Call, raw: bytes = b"") -> InboundMessage:
    """The call as an inbound message on the phone channel (id ``call:<call_id>``)."""
    return InboundMessage(ChannelName.PHONE, call_external_id(call.call_id), phone_identity(call.caller), call.at,
                          call.text(), subject="Gemiste oproep" if call.missed else "Telefoongesprek",
                          recipient=call.called, critical=call.critical, answered=not call.missed, raw=raw,
                          notes=(nul_note(call.cleaned),) if call.cleaned else ())


__all__ = ["AMSTERDAM", "Call", "CallLogError", "call_external_id", "call_message", "parse_call", "read_rows"]
