"""Personal data (AVG/GDPR) in the database: everything about one person found, exported, erased; raw mail and
media expired; the privacy log.

How an erasure works
--------------------
A person is found by an identity (e-mail address or phone number): the contacts that have it, the tickets of those
contacts or threaded on the identity, and the messages on those tickets or sent by or to the identity. Their
message texts, subjects, raw mail, attachments and outbound copies are removed; the contacts lose their identities
and names; then every text and JSON column of every table is searched for the person's identities and names, and
each occurrence is replaced by ``[erased]`` (reasons, events, the API's answers, webhook bodies). The tickets stay
with their account, plan, deadlines and times, so the SLA reports still add up. The privacy log keeps a hash of
the identity asked for, never the identity.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, Table, Text, Unicode, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Executable

from storage import models as m

ERASED = "[erased]"
MIN_NEEDLE = 4  # shorter names are not searched for in free text: too much else would match


@dataclass(frozen=True)
class Person:
    """What the database holds on one person: ids of their contacts, tickets and messages, and what to search."""

    contact_ids: tuple[int, ...]
    ticket_ids: tuple[int, ...]
    message_ids: tuple[int, ...]
    needles: tuple[str, ...]  # identities and names, to be searched for in every text column

    @property
    def found(self) -> bool:
        return bool(self.contact_ids or self.ticket_ids or self.message_ids)


def subject_hash(identity: str) -> str:
    """What the privacy log keeps of the identity asked for."""
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()


def _variants(kind: str, value: str) -> list[str]:
    if kind == "phone":  # +31612345678, whatsapp:+31612345678, 31612345678, 0612345678
        digits = value.lstrip("+")
        return [value, digits, "0" + digits[2:]] if digits.startswith("31") else [value, digits]
    return [value]


def find_person(s: Session, kind: str, value: str) -> Person:
    """Everything stored about the holder of the identity ``kind``/``value`` (normalised)."""
    contact_ids = sorted(set(s.scalars(select(m.Identity.contact_id).where(m.Identity.kind == kind,
                                                                            m.Identity.value == value))))
    identities = {(kind, value)} | {(i.kind, i.value) for i in s.scalars(
        select(m.Identity).where(m.Identity.contact_id.in_(contact_ids)))}
    values = sorted({v for _, v in identities})
    names = set(s.scalars(select(m.Contact.name).where(m.Contact.id.in_(contact_ids))))
    ticket_ids = set(s.scalars(select(m.Ticket.id).where(or_(m.Ticket.contact_id.in_(contact_ids),
                                                             m.Ticket.thread_key.in_(values)))))
    mine = or_(m.Message.contact_id.in_(contact_ids), m.Message.sender.in_(values), m.Message.recipient.in_(values),
               m.Message.ticket_id.in_(ticket_ids))
    message_ids = set(s.scalars(select(m.Message.id).where(mine)))
    names |= {n for n in s.scalars(select(m.Message.sender_name).where(m.Message.id.in_(message_ids),
                                                                       m.Message.direction == "in")) if n}
    needles = {variant for k, v in identities for variant in _variants(k, v)} | names
    return Person(tuple(contact_ids), tuple(sorted(ticket_ids)), tuple(sorted(message_ids)),
                  tuple(sorted((n for n in needles if len(n) >= MIN_NEEDLE), key=len, reverse=True)))


def raw_of(s: Session, message_ids: Sequence[int]) -> dict[int, tuple[bytes | None, list[tuple[Any, ...]]]]:
    """The raw bytes of each message and its attachments (filename, content type, bytes), for an export."""
    raws = dict(s.execute(select(m.Message.id, m.Message.raw).where(m.Message.id.in_(message_ids))).all())
    files: dict[int, list[tuple[Any, ...]]] = {}
    for message_id, filename, kind, data in s.execute(select(
            m.Attachment.message_id, m.Attachment.filename, m.Attachment.content_type, m.Attachment.data)
            .where(m.Attachment.message_id.in_(message_ids)).order_by(m.Attachment.id)):
        files.setdefault(message_id, []).append((filename, kind, data))
    return {i: (raws.get(i), files.get(i, [])) for i in message_ids}


def contacts_of(s: Session, contact_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The person's contacts with their account and identities, for an export."""
    found = []
    for contact, account in s.execute(select(m.Contact, m.Account).join(m.Account, m.Account.id ==
                                                                         m.Contact.account_id)
                                      .where(m.Contact.id.in_(contact_ids)).order_by(m.Contact.id)):
        identities = s.scalars(select(m.Identity).where(m.Identity.contact_id == contact.id)).all()
        found.append({"name": contact.name, "account": account.name, "role": contact.role,
                      "authorised": contact.authorised, "language": contact.language,
                      "email": [i.value for i in identities if i.kind == "email"],
                      "phone": [i.value for i in identities if i.kind == "phone"]})
    return found


def api_requests_of(s: Session, message_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The platform API's requests among the person's messages, for an export."""
    return [{"external_id": r.external_id, "key": r.key_name, "answer": r.answer}
            for r in s.scalars(select(m.ApiRequest).where(m.ApiRequest.message_id.in_(message_ids)))]


def _count(s: Session, statement: Executable) -> int:
    """Run an UPDATE or DELETE; how many rows it changed."""
    return int(getattr(s.execute(statement), "rowcount", 0))


def _redact(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(ERASED, value)
    if isinstance(value, list):
        return [_redact(v, pattern) for v in value]
    if isinstance(value, dict):
        return {_redact(k, pattern): _redact(v, pattern) for k, v in value.items()}
    return value


def _text_columns(table: Table) -> list[str]:
    return [c.name for c in table.columns if isinstance(c.type, (String, Text, Unicode, JSON)) and not c.primary_key]


def _unique_columns(table: Table) -> set[str]:
    found = {c.name for c in table.columns if c.unique}
    for constraint in table.constraints:
        if constraint.__class__.__name__ == "UniqueConstraint":
            found |= {c.name for c in constraint.columns}  # type: ignore[attr-defined]
    return found


def search(s: Session, needles: Iterable[str]) -> dict[str, int]:
    """Where the needles still occur: ``table.column`` -> rows, over every text and JSON column of every table."""
    found: dict[str, int] = {}
    for table in m.Base.metadata.sorted_tables:
        for name in _text_columns(table):
            column = table.c[name]
            for needle in needles:
                hits = s.scalar(select(func.count()).select_from(table).where(
                    func.lower(cast(column, Text)).contains(needle.lower(), autoescape=True)))
                if hits:
                    found[f"{table.name}.{name}"] = found.get(f"{table.name}.{name}", 0) + int(hits)
    return found


def erase(s: Session, person: Person) -> dict[str, int]:
    """Remove the person's data (see the module docstring); what was removed, as counts."""
    counts: dict[str, int] = {}
    messages = list(person.message_ids)
    counts["attachments"] = _count(s, delete(m.Attachment).where(m.Attachment.message_id.in_(messages)))
    counts["messages"] = _count(s, update(m.Message).where(m.Message.id.in_(messages)).values(
        text="", full_text=None, subject=None, raw=None, sender_name=None, thread_refs=[]))
    for direction, column in (("in", "sender"), ("out", "recipient")):  # the person's end of each message
        s.execute(update(m.Message).where(m.Message.id.in_(messages), m.Message.direction == direction)
                  .values(**{column: ERASED}))
    counts["outbox"] = _count(s, update(m.Outbox).where(m.Outbox.message_id.in_(messages)).values(
        recipient=ERASED, payload={"erased": True}))
    counts["tickets"] = _count(s, update(m.Ticket).where(m.Ticket.id.in_(person.ticket_ids)).values(
        subject=None, thread_key=None))
    s.execute(update(m.WebhookEvent).where(m.WebhookEvent.ticket_id.in_(person.ticket_ids)).values(body=None))
    counts["identities"] = _count(s, delete(m.Identity).where(m.Identity.contact_id.in_(person.contact_ids))
                                     )
    for contact_id in person.contact_ids:
        s.execute(update(m.Contact).where(m.Contact.id == contact_id).values(
            name=f"[erased {contact_id}]", language=None, authorised=False))
    counts["contacts"] = len(person.contact_ids)
    if person.needles:
        needles = [n.lower().encode("utf-8") for n in person.needles]
        kept = [row_id for row_id, raw in s.execute(select(m.KeptMail.id, m.KeptMail.raw))
                if any(n in bytes(raw).lower() for n in needles)]
        counts["kept_mail"] = _count(s, delete(m.KeptMail).where(m.KeptMail.id.in_(kept)))
        counts["address_flags"] = _count(s, delete(m.AddressFlag).where(
            m.AddressFlag.address.in_(person.needles)))
        counts["mentions"] = _erase_mentions(s, person.needles)
    return counts


def _erase_mentions(s: Session, needles: Sequence[str]) -> int:
    """Every remaining occurrence of a needle in a text or JSON column replaced by ``[erased]``; how many
    values changed. A column under a unique constraint gets a value unique to its row instead."""
    pattern = re.compile("|".join(re.escape(n) for n in needles), re.IGNORECASE)
    changed = 0
    for table in m.Base.metadata.sorted_tables:
        names = _text_columns(table)
        if not names or not table.primary_key.columns:
            continue
        unique = _unique_columns(table)
        key = list(table.primary_key.columns)[0]
        condition = or_(*(func.lower(cast(table.c[n], Text)).contains(needle.lower(), autoescape=True)
                          for n in names for needle in needles))
        for row in s.execute(select(key, *(table.c[n] for n in names)).where(condition)).all():
            values = {}
            for name, value in zip(names, row[1:]):
                new = _redact(value, pattern)
                if new != value:
                    values[name] = f"{ERASED} {table.name} {row[0]}" if name in unique else new
            if values:
                s.execute(update(table).where(key == row[0]).values(**values))
                changed += len(values)
    return changed


def expire_raw(s: Session, before: datetime) -> dict[str, int]:
    """Raw mail, inbound media and mail kept aside from before ``before`` deleted; how many of each."""
    old_inbound = select(m.Message.id).where(m.Message.direction == "in", m.Message.at < before)
    return {
        "raw": _count(s, update(m.Message).where(m.Message.raw.is_not(None), m.Message.at < before)
                         .values(raw=None)),
        "media": _count(s, update(m.Attachment).where(m.Attachment.data.is_not(None),
                                                      m.Attachment.message_id.in_(old_inbound))
                           .values(data=None)),
        "kept_mail": _count(s, delete(m.KeptMail).where(m.KeptMail.received_at < before)),
    }


def log_action(s: Session, action: str, actor: str, at: datetime, identity: str | None,
               summary: dict[str, Any]) -> None:
    """Write one line of the privacy log."""
    s.add(m.PrivacyLog(at=at, action=action, actor=actor, subject_hash=subject_hash(identity) if identity else None,
                       summary=summary))


@dataclass(frozen=True)
class PrivacyLogRecord:
    at: datetime
    action: str
    actor: str
    subject_hash: str | None
    summary: dict[str, Any]


def privacy_log(s: Session) -> list[PrivacyLogRecord]:
    """The privacy log, oldest first."""
    return [PrivacyLogRecord(r.at, r.action, r.actor, r.subject_hash, dict(r.summary))
            for r in s.scalars(select(m.PrivacyLog).order_by(m.PrivacyLog.id))]


__all__ = ["ERASED", "Person", "PrivacyLogRecord", "api_requests_of", "contacts_of", "erase",
           "expire_raw", "find_person", "log_action", "privacy_log", "raw_of", "search", "subject_hash"]
