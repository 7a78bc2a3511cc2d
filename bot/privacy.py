"""The customer's data rights (AVG/GDPR): one person's data exported or erased, raw mail and media expired.

``slabot privacy export --contact EMAIL|PHONE`` prints one JSON document with everything stored about the person
(their contacts, tickets with every message, raw mail and attachments, events, the API's requests);
``slabot privacy erase`` removes their personal data and keeps the anonymous ticket figures (see
:mod:`storage.privacy`); ``[privacy] keep_raw_days`` has ``slabot run`` delete raw mail and media of that age
once a day. Every export, erasure and expiry is written to the privacy log (``slabot privacy log``), which keeps
a hash of the identity asked for, never the identity.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bot.views import local_iso, message_json, ticket_show_json
from channels.identity import Identity, email_identity, phone_identity
from channels.messages import utc_now
from storage.database import Database, Session
from storage.privacy import (
    PrivacyLogRecord,
    api_requests_of,
    contacts_of,
    erase,
    expire_raw,
    find_person,
    log_action,
    privacy_log,
    raw_of,
)
from storage.repositories import TicketRepository


def identity_of(text: str) -> Identity:
    """An e-mail address (with @) or a phone number, normalised; :class:`channels.identity.IdentityError`."""
    return email_identity(text) if "@" in text else phone_identity(text)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(bytes(data)).decode("ascii")


class Privacy:
    """Exports, erasures and the expiry of raw data, each written to the privacy log."""

    def __init__(self, db: Database, now: Callable[[], datetime] = utc_now) -> None:
        self.db = db
        self.now = now

    def export(self, identity: Identity, actor: str) -> dict[str, Any]:
        """Everything stored about the holder of ``identity``, as one JSON-ready document."""
        def work(s: Session) -> dict[str, Any]:
            person = find_person(s, identity.kind.value, identity.value)
            tickets = TicketRepository(s)
            files = raw_of(s, person.message_ids)

            def with_files(message_id: int, data: dict[str, Any]) -> dict[str, Any]:
                raw, attachments = files[message_id]
                data["raw"] = _b64(raw)
                data["attachments"] = [{"filename": name, "content_type": kind, "data": _b64(content)}
                                       for name, kind, content in attachments]
                return data

            shown = []
            for ticket_id in person.ticket_ids:
                record = tickets.get(ticket_id, with_messages=True)
                data = ticket_show_json(record, tickets.events(ticket_id))
                data["messages"] = [with_files(msg.id, message_json(msg)) for msg in record.messages]
                shown.append(data)
            on_tickets = {msg.id for ticket_id in person.ticket_ids for msg in tickets.messages(ticket_id)}
            loose = [with_files(i, message_json(tickets.message(i))) for i in person.message_ids
                     if i not in on_tickets]
            summary = {"contacts": len(person.contact_ids), "tickets": len(person.ticket_ids),
                       "messages": len(person.message_ids)}
            log_action(s, "export", actor, self.now(), identity.value, summary)
            return {"contact": identity.value, "exported_at": local_iso(self.now()),
                    "contacts": contacts_of(s, person.contact_ids), "tickets": shown, "messages_without_ticket": loose,
                    "api_requests": api_requests_of(s, person.message_ids)}

        return self.db.run(work)

    def erase(self, identity: Identity, actor: str) -> dict[str, int] | None:
        """Remove the personal data of the holder of ``identity``; what was removed, or None when nothing is
        stored about them."""
        def work(s: Session) -> dict[str, int] | None:
            person = find_person(s, identity.kind.value, identity.value)
            if not person.found:
                return None
            summary = erase(s, person)
            log_action(s, "erase", actor, self.now(), identity.value, summary)
            return summary

        return self.db.run(work)

    def expire(self, keep_days: int) -> dict[str, int]:
        """Raw mail, inbound media and mail kept aside older than ``keep_days`` deleted (logged when any was)."""
        def work(s: Session) -> dict[str, int]:
            counts = expire_raw(s, self.now() - timedelta(days=keep_days))
            if any(counts.values()):
                log_action(s, "expire", "slabot", self.now(), None, {**counts, "keep_raw_days": keep_days})
            return counts

        return self.db.run(work)

    def log(self) -> list[PrivacyLogRecord]:
        return self.db.run(privacy_log)


__all__ = ["Privacy", "identity_of"]
