"""The platform intake API's storage: its bearer keys (hashed), its requests by ``external_id``, and the replies
it gave in its own answer.

A key is stored as the SHA-256 of its text (the key is random and long, so a fast hash is as good as a slow one
here, and a lookup is one indexed read); ``last_used_at`` is moved at most once a minute. A request filed with an
``external_id`` keeps the hash of its body and the answer given, written in the intake's transaction, so that a
retry is answered the same and a different body under a used id is told apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import models as m
from storage.direct import Direct
from storage.records import OutboundDraft
from storage.repositories import TicketRepository

TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is moved when it is older than this
ANSWER_PREFIX = "answer:"  # the channel id of the reply given in the API's answer: "answer:" + the request's


@dataclass(frozen=True)
class ApiKeyRecord:
    """A key as ``api-keys list`` shows it: never the key itself."""

    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class StoredRequest:
    """A request filed before under an ``external_id``: its body's hash and the answer it got."""

    body_hash: str
    answer: dict[str, Any]


def _key(row: m.ApiKey) -> ApiKeyRecord:
    return ApiKeyRecord(row.name, row.prefix, row.created_at, row.last_used_at, row.revoked_at)


class ApiKeyRepository:
    """The API's bearer keys."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, name: str, key_hash: str, prefix: str, now: datetime) -> bool:
        """Store a new key named ``name``; False when the name is taken (a revoked key's name too)."""
        if self.session.scalar(select(m.ApiKey.id).where(m.ApiKey.name == name)) is not None:
            return False
        self.session.add(m.ApiKey(name=name, key_hash=key_hash, prefix=prefix, created_at=now))
        self.session.flush()
        return True

    def all(self) -> list[ApiKeyRecord]:
        return [_key(row) for row in self.session.scalars(select(m.ApiKey).order_by(m.ApiKey.name))]

    def revoke(self, name: str, now: datetime) -> bool:
        """Revoke the key ``name``; False when there is no such key (or it was revoked before)."""
        row = self.session.scalar(select(m.ApiKey).where(m.ApiKey.name == name, m.ApiKey.revoked_at.is_(None)))
        if row is None:
            return False
        row.revoked_at = now
        return True


def key_by_hash(direct: Direct, key_hash: str, now: datetime) -> str | None:
    """The name of the live key with this hash, its use recorded (at most once a minute); None: no such key."""
    row = direct.one("SELECT id, name, last_used_at FROM api_keys WHERE key_hash = :h AND revoked_at IS NULL",
                     {"h": key_hash})
    if row is None:
        return None
    last = direct.decode(m.ApiKey.__table__, ("last_used_at",), (row[2],))["last_used_at"]
    if last is None or now - last >= TOUCH_EVERY:
        direct.update(m.ApiKey.__table__, int(row[0]), {"last_used_at": now})
    return str(row[1])


def stored_request(direct: Direct, external_id: str) -> StoredRequest | None:
    """The request filed before under ``external_id``, or None."""
    row = direct.one("SELECT body_hash, answer FROM api_requests WHERE external_id = :e", {"e": external_id})
    if row is None:
        return None
    values = direct.decode(m.ApiRequest.__table__, ("body_hash", "answer"), row)
    return StoredRequest(str(values["body_hash"]), dict(values["answer"]))


def store_request(direct: Direct, external_id: str, body_hash: str, answer: dict[str, Any], key_name: str,
                  message_id: int | None, now: datetime) -> None:
    """Keep a request's body hash and answer, in the transaction that ingested it."""
    direct.insert(m.ApiRequest.__table__, {"external_id": external_id, "body_hash": body_hash, "answer": answer,
                                           "key_name": key_name, "message_id": message_id, "created_at": now})


def store_answer(direct: Direct, draft: OutboundDraft, reply_to: int, now: datetime) -> int:
    """The automatic reply to a request made through the API: its answer carries it, so it is stored as delivered
    and nothing is queued; its channel id is ``answer:`` and the request's. The message's id."""
    request_id = direct.scalar("SELECT external_id FROM messages WHERE id = :id", {"id": reply_to})
    return TicketRepository(direct).add_message(
        ticket_id=draft.ticket_id, account_id=draft.account_id, contact_id=draft.contact_id, direction="out",
        channel=draft.channel, external_id=f"{ANSWER_PREFIX}{request_id}", sender=None, recipient=draft.recipient,
        subject=draft.subject, text=draft.text, at=now, auto=draft.auto, staff=draft.staff, purpose=draft.purpose,
        delivery_state="delivered", reasons=[], thread_refs=[], created_at=now, attachments=[],
    )


def answer_of(direct: Direct, channel: str, external_id: str) -> tuple[str, str, str | None] | None:
    """The reply given in the API's answer to the request ``external_id``: (purpose, text, ticket ref), or None."""
    row = direct.one("SELECT msg.purpose, msg.text, t.ref FROM messages msg LEFT JOIN tickets t ON t.id = "
                     "msg.ticket_id WHERE msg.channel = :c AND msg.direction = 'out' AND msg.external_id = :e",
                     {"c": channel, "e": f"{ANSWER_PREFIX}{external_id}"})
    return None if row is None else (str(row[0] or ""), str(row[1] or ""), row[2])


def contact_email(direct: Direct, kind: str, value: str) -> str | None:
    """The first e-mail address of the contact with this identity (``email``: the address itself when known)."""
    if kind == "email":
        return value
    found = direct.scalar("SELECT e.value FROM identities i JOIN identities e ON e.contact_id = i.contact_id "
                          "AND e.kind = 'email' WHERE i.kind = :k AND i.value = :v ORDER BY e.id LIMIT 1",
                          {"k": kind, "v": value})
    return None if found is None else str(found)


__all__ = ["ANSWER_PREFIX", "ApiKeyRecord", "ApiKeyRepository", "StoredRequest", "answer_of", "contact_email",
           "key_by_hash", "store_answer", "store_request", "stored_request"]
