"""Tickets and messages as JSON: what ``slabot tickets show --json`` prints, the platform API's
``GET /api/v1/tickets/REF`` answers and the outgoing webhooks carry, written once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.i18n import AMSTERDAM
from storage.records import MessageRecord, TicketRecord


def local_iso(instant: datetime | None) -> str | None:
    """An instant as ISO 8601 in Amsterdam time, as the commands print it; None stays None."""
    return None if instant is None else instant.astimezone(AMSTERDAM).isoformat()


def ticket_json(ticket: TicketRecord) -> dict[str, Any]:
    """A ticket as ``tickets list/show --json`` prints it (SPEC §4 keys first)."""
    return {
        "ref": ticket.ref, "state": ticket.state, "account": ticket.account, "contact": ticket.contact,
        "channel": ticket.channel, "kind": ticket.kind, "priority": ticket.priority, "plan": ticket.plan,
        "first_response_due": local_iso(ticket.first_response_due),
        "first_responded_at": local_iso(ticket.first_responded_at),
        "received_at": local_iso(ticket.received_at), "subject": ticket.subject,
        "resolution_due_min": local_iso(ticket.resolution_due_min),
        "resolution_due_max": local_iso(ticket.resolution_due_max),
        "queue_priority": ticket.queue_priority, "decision": ticket.decision, "reasons": list(ticket.reasons),
        "kind_rule": ticket.kind_rule, "kind_reasons": list(ticket.kind_reasons),
        "needs_release": ticket.needs_release, "waiting_since": local_iso(ticket.waiting_since),
        # R24: the current response deadline (a follow-up question's; the first response's until one comes), when
        # the follow-up question that waits for staff arrived, and when staff answered the latest question
        "response_due": local_iso(ticket.current_due), "followup_at": local_iso(ticket.followup_at),
        "responded_at": local_iso(ticket.current_answer),
        # R25: the priority of the preset's matrix (null where it has none), the rule that gave it and why
        "sla_priority": ticket.sla_priority, "priority_rule": ticket.priority_rule,
        "priority_reasons": list(ticket.priority_reasons),
    }


def message_json(message: MessageRecord) -> dict[str, Any]:
    """A message as ``tickets show --json`` prints it among its ticket's."""
    return {
        "direction": message.direction, "channel": message.channel, "external_id": message.external_id,
        "sender": message.sender, "recipient": message.recipient, "subject": message.subject,
        "text": message.text, "delivery_state": message.delivery_state, "auto": message.auto,
        "at": local_iso(message.at), "purpose": message.purpose, "staff": message.staff,
        "decision": message.decision, "reasons": list(message.reasons),
        "attachments": [{"filename": a.filename, "content_type": a.content_type, "size": a.size,
                         "fetched": a.fetched, "error": a.error} for a in message.attachments],
    }


def ticket_show_json(ticket: TicketRecord, events: list[dict[str, Any]]) -> dict[str, Any]:
    """A ticket with its messages and events, as ``tickets show --json`` prints it."""
    data = ticket_json(ticket)
    data["messages"] = [message_json(m) for m in ticket.messages]
    data["events"] = [{"at": local_iso(e["at"]), "kind": e["kind"], "actor": e["actor"]} for e in events]
    return data


__all__ = ["local_iso", "message_json", "ticket_json", "ticket_show_json"]
