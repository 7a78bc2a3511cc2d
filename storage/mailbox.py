"""The e-mail intake's queries: mail checkpoints, flagged addresses, bounces, kept mail and the intake's events.

On plain statements (:class:`storage.direct.Direct`), so that they run inside
the transaction that stores a mail: the IMAP checkpoint moves with the stored
message, a bounce is stored with the flag it causes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from channels.messages import ChannelName, DeliveryState, InboundMessage, moves_forward
from storage import models as m
from storage.repositories import TicketRepository, Repository

EMAIL = ChannelName.EMAIL.value
_CHECKPOINTS = m.MailCheckpoint.__table__
_KEPT = m.KeptMail.__table__
_MESSAGES = m.Message.__table__
_FLAG = "(SELECT reason FROM address_flags WHERE channel = :c AND address = :a)"


@dataclass(frozen=True)
class MailCheckpointRecord:
    """How far a mailbox folder is read: its UIDVALIDITY and the last UID whose mail is committed."""

    id: int
    mailbox: str
    uidvalidity: int
    last_uid: int


@dataclass(frozen=True)
class SentMailRecord:
    """An e-mail slabot sent, as a bounce finds it by its Message-ID."""

    id: int
    ticket_id: int | None
    recipient: str | None


@dataclass(frozen=True)
class KeptMailRecord:
    """A mail that could not be read as one, kept aside with its raw bytes (``size`` of them)."""

    id: int
    received_at: datetime
    reprocessed_at: datetime | None
    source: str
    reason: str
    size: int


@dataclass(frozen=True)
class AddressGuard:
    """What holds back automatic replies to an address: its flag's reason, and its automatic replies lately."""

    flagged: str | None
    auto_replies: int


class MailboxRepository(Repository):
    """See the module docstring."""

    # -- checkpoints of an IMAP folder ------------------------------------------------------------

    def checkpoint(self, mailbox: str) -> MailCheckpointRecord | None:
        """The folder's checkpoint, or None before its first start."""
        row = self.direct.one("SELECT id, uidvalidity, last_uid FROM mail_checkpoints WHERE mailbox = :m",
                              {"m": mailbox})
        return None if row is None else MailCheckpointRecord(int(row[0]), mailbox, int(row[1]), int(row[2]))

    def start_checkpoint(self, mailbox: str, uidvalidity: int, now: datetime) -> None:
        """A checkpoint before the folder's first mail."""
        self.direct.insert(_CHECKPOINTS, {"mailbox": mailbox, "uidvalidity": uidvalidity, "last_uid": 0,
                                          "updated_at": now})

    def reset_checkpoint(self, checkpoint: MailCheckpointRecord, uidvalidity: int, now: datetime) -> None:
        """Back before the first mail under a new UIDVALIDITY (event ``mail_uidvalidity_changed``)."""
        self.direct.update(_CHECKPOINTS, checkpoint.id, {"uidvalidity": uidvalidity, "last_uid": 0,
                                                         "updated_at": now})
        self._event("mail_uidvalidity_changed", now, {"mailbox": checkpoint.mailbox, "old": checkpoint.uidvalidity,
                                                      "new": uidvalidity, "last_uid": checkpoint.last_uid})

    def advance(self, mailbox: str, uidvalidity: int, uid: int, now: datetime, *, to_mark: bool = True) -> None:
        """Move the checkpoint forward to ``uid``; ``to_mark`` records that the mail is still to be marked seen
        or moved (which survives a crash before that)."""
        d = self.direct
        d.execute("UPDATE mail_checkpoints SET last_uid = :u, updated_at = :t "
                  "WHERE mailbox = :m AND uidvalidity = :v AND last_uid < :u",
                  {"u": uid, "v": uidvalidity, "m": mailbox, "t": d.value(_CHECKPOINTS, "updated_at", now)})
        if to_mark:
            d.execute("INSERT INTO mail_unmarked (mailbox, uidvalidity, uid) VALUES (:m, :v, :u) "
                      "ON CONFLICT DO NOTHING", {"m": mailbox, "v": uidvalidity, "u": uid})

    def unmarked(self, mailbox: str, uidvalidity: int) -> list[int]:
        """The UIDs committed and not yet marked in this folder; those of an older UIDVALIDITY are dropped."""
        d = self.direct
        d.execute("DELETE FROM mail_unmarked WHERE mailbox = :m AND uidvalidity <> :v",
                  {"m": mailbox, "v": uidvalidity})
        rows = d.execute("SELECT uid FROM mail_unmarked WHERE mailbox = :m AND uidvalidity = :v ORDER BY uid",
                         {"m": mailbox, "v": uidvalidity}).fetchall()
        return [int(row[0]) for row in rows]

    def forget_marked(self, mailbox: str, marked: Iterable[tuple[int, int]]) -> None:
        """Drop the records of mail marked (or given up on): (uidvalidity, uid) pairs."""
        self.direct.execute_many("DELETE FROM mail_unmarked WHERE mailbox = :m AND uidvalidity = :v AND uid = :u",
                                 [{"m": mailbox, "v": uidvalidity, "u": uid} for uidvalidity, uid in marked])

    def skip(self, mailbox: str, uidvalidity: int, uid: int, now: datetime, *, source: str, error: str,
             rounds: int) -> None:
        """Move past a mail whose ingest kept failing; it stays in the folder, unseen (event ``mail_skipped``)."""
        self.advance(mailbox, uidvalidity, uid, now, to_mark=False)
        self._event("mail_skipped", now, {"mailbox": mailbox, "uidvalidity": uidvalidity, "uid": uid,
                                          "source": source, "error": error, "rounds": rounds, "staff_told": True})

    # -- flagged addresses and the reply guard ----------------------------------------------------

    def address_guard(self, address: str, since: datetime | None) -> AddressGuard:
        """The address's flag, and (when ``since`` is given) the automatic replies sent to it since then."""
        d = self.direct
        if since is None:
            return AddressGuard(d.scalar(f"SELECT {_FLAG}", {"c": EMAIL, "a": address}), 0)
        reason, count = d.one(
            f"SELECT {_FLAG}, (SELECT count(*) FROM messages WHERE {m.EMAIL_OUT} "
            "AND recipient = :a AND auto = :auto AND at >= :since)",
            {"c": EMAIL, "a": address, "auto": d.value(_MESSAGES, "auto", True),
             "since": d.value(_MESSAGES, "at", since)},
        ) or (None, 0)
        return AddressGuard(reason, int(count or 0))

    def flag(self, address: str, message_id: int, reason: str, now: datetime) -> bool:
        """Flag ``address`` (no automatic replies) for the bounce of ``message_id``; False when it was already."""
        d = self.direct
        if d.scalar("SELECT id FROM address_flags WHERE channel = :c AND address = :a",
                    {"c": EMAIL, "a": address}) is not None:
            return False
        d.insert(m.AddressFlag.__table__, {"channel": EMAIL, "address": address, "message_id": message_id,
                                           "flagged_at": now, "reason": reason})
        return True

    # -- bounces ----------------------------------------------------------------------------------

    def sent_mail(self, message_id: str) -> SentMailRecord | None:
        """The e-mail slabot sent with this Message-ID (without brackets), or None."""
        row = self.direct.one("SELECT id, ticket_id, recipient FROM messages WHERE channel = :c AND direction = 'out' "
                              "AND external_id = :e", {"c": EMAIL, "e": message_id})
        return None if row is None else SentMailRecord(int(row[0]), row[1], row[2])

    def received_mail(self, message_id: str) -> int | None:
        """The stored inbound e-mail with this Message-ID, or None."""
        return TicketRepository(self.direct).message_id_for(EMAIL, "in", message_id)

    def add_bounce(self, msg: InboundMessage, message_id: str, sent: SentMailRecord, reasons: Iterable[str],
                   now: datetime) -> int:
        """Store the delivery-status report ``msg`` on the ticket of the mail it bounces; its id."""
        return TicketRepository(self.direct).add_message(
            ticket_id=sent.ticket_id, direction="in", channel=EMAIL, external_id=message_id,
            sender=msg.sender.value, recipient=msg.recipient, subject=msg.subject, text=msg.text,
            full_text=msg.full_text, at=msg.received_at, auto=True, decision="bounce", reasons=list(reasons),
            delivery_state=DeliveryState.RECEIVED.value, raw=msg.raw, thread_refs=list(msg.thread_refs),
            created_at=now)

    def bounced(self, sent: SentMailRecord, bounce_id: int, *, status: str | None, permanent: bool,
                now: datetime) -> None:
        """The sent mail bounced: failed for good when ``permanent`` (event ``message_bounced``)."""
        tickets = TicketRepository(self.direct)
        if permanent and moves_forward(tickets.delivery_state(sent.id), DeliveryState.FAILED.value):
            tickets.set_delivery_state(sent.id, DeliveryState.FAILED.value)
        tickets.add_event("message_bounced", now, ticket_id=sent.ticket_id, message_id=sent.id,
                          data={"bounce": bounce_id, "status": status, "permanent": permanent, "staff_told": True})

    # -- mail kept aside --------------------------------------------------------------------------

    def keep(self, raw: bytes, source: str, reason: str, now: datetime) -> bool:
        """Keep a mail that cannot be read aside (event ``mail_kept_aside``); False when these bytes are kept
        already (a rescan, a retried pipe)."""
        d = self.direct
        if d.scalar("SELECT id FROM kept_mail WHERE raw = :raw", {"raw": raw}) is not None:
            return False
        kept = d.insert(_KEPT, {"source": source[:400], "reason": reason, "raw": raw, "received_at": now})
        self._event("mail_kept_aside", now, {"kept_mail": kept, "source": source, "reason": reason,
                                             "staff_told": True})
        return True

    def kept(self, *, everything: bool = False) -> list[KeptMailRecord]:
        """The mail kept aside that waits to be re-processed (``everything``: also the re-processed), by id."""
        d = self.direct
        where = "" if everything else " WHERE reprocessed_at IS NULL"
        rows = d.execute(f"SELECT id, received_at, reprocessed_at, source, reason, length(raw) FROM kept_mail{where} "
                         "ORDER BY id").fetchall()
        kept = []
        for kept_id, received, reprocessed, source, reason, size in rows:
            times = d.decode(_KEPT, ("received_at", "reprocessed_at"), (received, reprocessed))
            kept.append(KeptMailRecord(int(kept_id), times["received_at"], times["reprocessed_at"], source, reason,
                                       int(size)))
        return kept

    def kept_raw(self, kept_id: int) -> bytes | None:
        """The raw bytes of kept mail ``kept_id``, or None when there is none."""
        raw = self.direct.scalar("SELECT raw FROM kept_mail WHERE id = :i", {"i": kept_id})
        return None if raw is None else bytes(raw)

    def reprocessed(self, kept_id: int, now: datetime, *, outcome: str, ticket: str | None, repaired: bool) -> None:
        """Kept mail ``kept_id`` went through the intake again (event ``mail_reprocessed``)."""
        d = self.direct
        d.execute("UPDATE kept_mail SET reprocessed_at = :now WHERE id = :i AND reprocessed_at IS NULL",
                  {"now": d.value(_KEPT, "reprocessed_at", now), "i": kept_id})
        self._event("mail_reprocessed", now, {"kept_mail": kept_id, "outcome": outcome, "ticket": ticket,
                                              "repaired": repaired})

    def _event(self, kind: str, at: datetime, data: dict[str, Any]) -> None:
        self.direct.insert(m.Event.__table__, {"kind": kind, "at": at, "actor": "slabot", "data": data})


__all__ = ["AddressGuard", "KeptMailRecord", "MailCheckpointRecord", "MailboxRepository", "SentMailRecord"]
