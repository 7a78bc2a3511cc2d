"""What staff do to a ticket from the dashboard: each action is a call to :class:`bot.desk.Desk` or
:class:`bot.billing.Billing`, the same use case Telegram and the command line call, never SQL of its own.

:meth:`TicketActions.do` takes the action's name and its form fields, does it, and records an event
``dashboard_action`` on the ticket with what was done (the staff chat posts it: staff hear of a dashboard action
as they see one typed in the chat). A refusal of the use case (:class:`bot.desk.DeskError`) or a field that is
not what it should be (:class:`ActionError`) changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from bot.billing import CAUSES, KINDS, Billing
from bot.desk import Desk, DeskError
from sla_engine.policy import Preset
from storage.staffchat import (
    DASHBOARD_ACTION,  # the event that tells the staff chat what was done in the dashboard
)

ACTIONS = ("reply", "clarify", "take", "assign", "note", "classify", "cause", "quote", "hours", "release",
           "release_off", "resolve", "reopen", "link", "priority")
EXCERPT = 80  # characters of a reply or note the staff chat and the notice repeat


class ActionError(ValueError):
    """A form field that is not what the action needs; ``key`` names the text that says so."""

    def __init__(self, key: str, **values: str) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


@dataclass(frozen=True)
class Done:
    """An action done: which, on which ticket, and the values its phrase (:data:`bot.staff_texts.ACTION_PHRASES`)
    needs."""

    ref: str
    action: str
    values: dict[str, str]


def excerpt(text: str) -> str:
    """The first words of ``text`` on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT else flat[:EXCERPT - 1].rstrip() + "…"


def _hours(value: str | None) -> Decimal:
    text = (value or "").strip().replace(",", ".")
    try:
        hours = Decimal(text)
    except InvalidOperation:
        raise ActionError("bad_hours", value=text) from None
    if not hours.is_finite() or hours <= 0:
        raise ActionError("bad_hours", value=text)
    return hours


def _text(form: Mapping[str, str], name: str = "text") -> str:
    text = (form.get(name) or "").strip()
    if not text:
        raise DeskError(f"{name} is empty")
    return text


class TicketActions:
    """The dashboard's ticket actions; see the module docstring."""

    def __init__(self, desk: Desk, billing: Billing, preset: Preset) -> None:
        self.desk = desk
        self.billing = billing
        self.preset = preset

    def do(self, ref: str, action: str, form: Mapping[str, str], staff: str) -> Done:
        """Do ``action`` on ``ref`` for ``staff`` with the form's fields; raises DeskError or ActionError."""
        done = self._do(ref, action, form, staff)
        self.desk.event(done.ref, DASHBOARD_ACTION, staff, {"action": done.action, "staff": staff, **done.values})
        return done

    def _do(self, ref: str, action: str, form: Mapping[str, str], staff: str) -> Done:
        if action in ("reply", "clarify"):
            text = _text(form)
            result = self.desk.reply(ref, text, staff, clarify=action == "clarify")
            return Done(result.ref, action, {"excerpt": excerpt(text)})
        if action in ("take", "assign"):
            assignee = (form.get("assignee") or "").strip() or None if action == "assign" else None
            if action == "assign" and assignee is None:
                raise DeskError("assign to whom?")
            found = self.desk.take(ref, staff, assignee=assignee)
            return Done(found, action, {"assignee": assignee or staff})
        if action == "note":
            text = _text(form)
            return Done(self.desk.note(ref, staff, text), action, {"excerpt": excerpt(text)})
        if action == "classify":
            kind, reason = form.get("kind", ""), (form.get("reason") or "").strip()
            if kind not in KINDS:
                raise DeskError(f"a ticket is {' or '.join(KINDS)}, not {kind!r}")
            ticket = self.billing.classify(ref, kind, staff, reason=reason or None)
            return Done(ticket.ref, action, {"kind": kind, "reason": f" ({reason})" if reason else ""})
        if action == "cause":
            cause = form.get("cause", "")
            if cause not in CAUSES:
                raise DeskError(f"the root cause is {', '.join(CAUSES)}, not {cause!r}")
            ticket, _ = self.billing.record_cause(ref, cause, staff)
            return Done(ticket.ref, action, {"cause": cause})
        if action == "quote":
            hours = _hours(form.get("hours"))
            quoted = self.billing.quote(ref, hours, staff, urgent=bool(form.get("urgent")))
            return Done(quoted.ref, action, {"hours": str(hours)})
        if action == "hours":
            hours = _hours(form.get("hours"))
            logged = self.billing.log_hours(ref, hours, staff, diagnosis=bool(form.get("diagnosis")),
                                            note=(form.get("note") or "").strip() or None)
            return Done(logged.ref, action, {"hours": str(hours)})
        if action in ("release", "release_off"):
            flagged = self.desk.flag_release(ref, staff, needs_release=action == "release")
            return Done(flagged.ref, action, {})
        if action == "resolve":
            return Done(self.desk.resolve(ref, staff).ref, action, {})
        if action == "reopen":
            return Done(self.desk.reopen(ref, staff).ref, action, {})
        if action == "link":
            account = _text(form, "account")
            return Done(self.desk.link(ref, account, staff, self.preset).ref, action, {"account": account})
        if action == "priority":  # R25: the deadlines again from receipt, as /priority and tickets priority do
            changed = self.desk.set_priority(ref, _text(form, "priority"), staff, self.preset)
            return Done(changed.ref, action, {"priority": changed.new})
        raise ActionError("unknown_action")


__all__ = ["ACTIONS", "DASHBOARD_ACTION", "ActionError", "Done", "TicketActions", "excerpt"]
