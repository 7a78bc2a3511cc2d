"""Requests "via het platform" (channel ``platform``): the host product files requests for its users.

How it works
------------
The host product calls ``POST /api/v1/requests`` (:mod:`bot.web.api`) with a bearer key made by
``slabot api-keys create`` (:class:`ApiKeys`: shown once, stored as its SHA-256). :meth:`PlatformIntake.file`
turns the request into an :class:`~channels.messages.InboundMessage` received now (R23: the clock starts when
the request arrives) and hands it to the one intake pipeline, so it gets the decisions of every other channel
(R1-R8). The automatic reply goes back in the API's answer (the request's own channel, R7), stored as
delivered. The request's ``external_id`` and the hash of its body are kept with the answer in the intake's
transaction: the same body again is answered the same (200) and stores nothing; another body under that id is a
conflict (409).

Staff replies on a platform ticket are queued on the ``platform`` channel; :class:`PlatformSender` hands them to
the host product's webhook when an endpoint takes ``message.created`` (the event carries the message), else
mails them to the contact's e-mail address.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import secrets
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.intake import IntakePipeline, IntakeResult, Outcome
from bot.texts import language_of, reply_subject
from bot.views import local_iso, ticket_show_json
from channels.identity import Identity, email_identity, phone_identity
from channels.messages import (
    ChannelName,
    DeliveryState,
    InboundMessage,
    NeedsStaffError,
    OutboundMessage,
    Sender,
    SendReceipt,
    TemporarySendError,
    utc_now,
)
from storage.database import Database, DatabaseUnavailable, Session
from storage.direct import Direct
from storage.platform import (
    ApiKeyRecord,
    ApiKeyRepository,
    answer_of,
    contact_email,
    key_by_hash,
    store_request,
    stored_request,
)
from storage.repositories import TicketRepository

PLATFORM = ChannelName.PLATFORM.value
KEY_PREFIX = "slabot_"


class PlatformError(Exception):
    """A request the platform intake cannot take (answered 409 by the API)."""


def hash_key(key: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def body_hash(fields: dict[str, Any]) -> str:
    """The hash of a request's fields, whatever the order and spacing of its JSON."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


class ApiKeys:
    """``slabot api-keys create|list|revoke`` and the check of every API call."""

    def __init__(self, db: Database, now: Callable[[], datetime] = utc_now) -> None:
        self.db = db
        self.now = now

    def create(self, name: str) -> str | None:
        """A new key named ``name``, to be shown once (only its hash is stored); None when the name is taken."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        added = self.db.run(lambda s: ApiKeyRepository(s).add(name, hash_key(key), key[:len(KEY_PREFIX) + 6],
                                                                self.now()))
        return key if added else None

    def all(self) -> list[ApiKeyRecord]:
        return self.db.run(lambda s: ApiKeyRepository(s).all())

    def revoke(self, name: str) -> bool:
        return self.db.run(lambda s: ApiKeyRepository(s).revoke(name, self.now()))

    async def authenticate(self, key: str) -> str | None:
        """:meth:`check` off the event loop."""
        return await asyncio.to_thread(self.check, key)

    def check(self, key: str) -> str | None:
        """The name of the live key ``key``, its use recorded; None for an unknown or revoked key."""
        if not key.startswith(KEY_PREFIX):
            return None
        digest = hash_key(key)
        return self.db.run_direct(lambda d: key_by_hash(d, digest, self.now()))


@dataclass(frozen=True)
class PlatformRequest:
    """A request as the API took it, checked: who it is from, what it says, and its idempotency key."""

    sender: Identity
    subject: str | None
    text: str
    external_id: str | None
    language: str | None = None
    critical: bool = False
    priority: str | None = None  # R25: a priority by name, or the user's urgency and impact answers
    urgency: str | None = None
    impact: str | None = None

    @classmethod
    def of(cls, email: str | None, phone: str | None, subject: str | None, text: str, external_id: str | None,
           language: str | None = None, critical: bool = False, priority: str | None = None,
           urgency: str | None = None, impact: str | None = None) -> PlatformRequest:
        """From the request's fields; :class:`channels.identity.IdentityError` for an address or number that
        is not one."""
        sender = email_identity(email) if email else phone_identity(phone or "")
        return cls(sender, subject, text, external_id, language, critical, priority, urgency, impact)

    def fields(self) -> dict[str, Any]:
        found = {"contact": {self.sender.kind.value: self.sender.value}, "subject": self.subject, "text": self.text,
                 "external_id": self.external_id, "language": self.language, "critical": self.critical}
        # the R25 answers only when given: a retry of a request made before they existed keeps its hash
        found.update({k: v for k, v in (("priority", self.priority), ("urgency", self.urgency),
                                        ("impact", self.impact)) if v is not None})
        return found


@dataclass(frozen=True)
class Filed:
    """What the API answers: 201 (stored now), 200 (the same request again) or 409 (another body, same id)."""

    status: int
    answer: dict[str, Any]


class PlatformIntake:
    """Requests from the host product into the intake pipeline, each stored once."""

    def __init__(self, db: Database, pipeline: IntakePipeline, now: Callable[[], datetime] = utc_now, *,
                 writer: Executor | None = None) -> None:
        """``writer``: where the intake's transactions run (on SQLite the thread the webhooks' intake shares with
        the outbox dispatcher, see :mod:`storage.writer`); by default a thread of asyncio's."""
        self.db = db
        self.pipeline = pipeline
        self.now = now
        self.writer = writer

    async def submit(self, request: PlatformRequest, key_name: str) -> Filed:
        """:meth:`file` off the event loop, committed before it returns."""
        return await asyncio.get_running_loop().run_in_executor(self.writer, self.file, request, key_name)

    async def ticket(self, ref: str) -> dict[str, Any] | None:
        """A ticket as ``tickets show --json`` prints it, or None when there is no such ticket."""
        def work(s: Session) -> dict[str, Any] | None:
            tickets = TicketRepository(s)
            found = tickets.by_ref(ref, with_messages=True)
            return None if found is None else ticket_show_json(found, tickets.events(found.id))

        return await asyncio.to_thread(self.db.run, work)

    def file(self, request: PlatformRequest, key_name: str) -> Filed:
        """Ingest ``request`` (its ``external_id`` makes a retry safe); the answer and its status."""
        digest = body_hash(request.fields())
        if request.external_id is not None:
            before = self.db.read_direct(lambda d: stored_request(d, request.external_id or ""))
            if before is not None:
                return self._again(before.body_hash, before.answer, digest, request.external_id)
        external_id = request.external_id or f"api-{uuid.uuid4()}"
        message = InboundMessage(
            ChannelName.PLATFORM, external_id, request.sender, self.now(), request.text, subject=request.subject,
            critical=request.critical, language=request.language, priority=request.priority,
            urgency=request.urgency, impact=request.impact,
            raw=json.dumps(request.fields(), ensure_ascii=False).encode("utf-8"))
        answers: list[dict[str, Any]] = []

        def keep(direct: Direct, result: IntakeResult) -> None:
            if result.outcome is Outcome.DUPLICATE:
                return  # the same id arrived at the same moment: its answer is the other one's
            answer = self._answer(direct, result, external_id)
            store_request(direct, external_id, digest, answer, key_name, result.message_id, self.now())
            answers.append(answer)

        result = self.pipeline.ingest(message, also=keep)
        if answers:
            return Filed(201, answers[-1])  # the last attempt of the transaction is the one committed
        stored = self.db.read_direct(lambda d: stored_request(d, external_id))
        if stored is None:  # a message under that id came in without an answer kept (cannot happen by the API)
            raise PlatformError(f"a request {external_id!r} is stored already ({result.outcome.value})")
        return self._again(stored.body_hash, stored.answer, digest, external_id)

    @staticmethod
    def _again(stored_hash: str, answer: dict[str, Any], digest: str, external_id: str) -> Filed:
        if stored_hash != digest:
            raise PlatformError(f"external_id {external_id!r} was used for another request")
        return Filed(200, answer)

    def _answer(self, direct: Direct, result: IntakeResult, external_id: str) -> dict[str, Any]:
        """The 201 body: the SPEC's keys, read back in the intake's transaction."""
        tickets = TicketRepository(direct)
        ticket_id = tickets.id_for_ref(result.ticket_ref) if result.ticket_ref else None
        ticket = tickets.get(ticket_id) if ticket_id is not None else None
        reply = answer_of(direct, PLATFORM, external_id)
        return {
            "ref": result.ticket_ref,
            "decision": ticket.decision if ticket is not None else result.outcome.value,
            "first_response_due": local_iso(ticket.first_response_due if ticket else None),
            "resolution_due_min": local_iso(ticket.resolution_due_min if ticket else None),
            "resolution_due_max": local_iso(ticket.resolution_due_max if ticket else None),
            "acknowledgement": {"purpose": reply[0], "text": reply[1]} if reply is not None else None,
            "state": ticket.state.value if ticket is not None else None,
            "reasons": list(result.reasons),
        }


class PlatformSender:
    """The ``platform`` channel's sender: a message to a platform ticket's contact goes to the host product's
    webhook when one takes ``message.created`` (that event carries it), else to the contact's e-mail."""

    def __init__(self, db: Database, email: Sender | None, *, by_webhook: bool) -> None:
        self.db = db
        self.email = email
        self.by_webhook = by_webhook

    async def send(self, message: OutboundMessage) -> SendReceipt:
        if self.by_webhook:
            return SendReceipt(f"webhook:{message.outbox_id}", DeliveryState.SENT)
        kind = "email" if "@" in message.recipient else "phone"
        try:
            address = await asyncio.to_thread(self.db.read_direct,
                                              lambda d: contact_email(d, kind, message.recipient))
        except DatabaseUnavailable as exc:  # nothing has gone out: it may go later
            raise TemporarySendError(f"cannot read the contact's e-mail address: {exc}") from exc
        if address is None:
            raise NeedsStaffError(f"{message.recipient} has no e-mail address and no webhook takes message.created")
        if self.email is None:
            raise TemporarySendError("e-mail is off: the reply to a platform ticket waits for [email] smtp_host")
        language = language_of(message.extra.get("language"))
        subject = message.subject or reply_subject(None, message.extra.get("ticket_ref"), language)
        return await self.email.send(dataclasses.replace(message, channel=ChannelName.EMAIL, recipient=address,
                                                         subject=subject))


__all__ = ["ApiKeys", "Filed", "PlatformError", "PlatformIntake", "PlatformRequest", "PlatformSender",
           "body_hash", "hash_key"]
