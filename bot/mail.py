"""E-mail into the intake: raw RFC 5322 bytes in, a decision out, nothing lost.

Both intake modes end here: the IMAP intake (:mod:`bot.imap`) and
the MTA pipe mode (``slabot ingest email``). :meth:`MailIntake.ingest_raw`

- parses the mail (:mod:`channels.email.parse`); a mail that cannot be read at
  all is kept aside with its raw bytes (``kept_mail``) and staff are told;
- drops slabot's own mail coming back (its From address, or a Message-ID
  slabot sent);
- links a delivery-status bounce to the message it bounces (marked failed,
  staff told) and flags the address, so no automatic reply goes there again;
  a staff reply that bounced for good no longer counts as the response (R8,
  :func:`bot.desk.reply_failed`);
- hands everything else to the intake pipeline, where automatic mail
  (auto-replies, lists, bounces) is stored without an answer, and where a
  guard holds back automatic replies: to a flagged address, and beyond
  ``auto_replies_per_hour`` to one address (an autoresponder ping-pong ends
  there);
- takes mail up to ``max_message_bytes`` (``[email] max_message_bytes``): a
  larger one is kept aside with its header block only (the rest is never read
  into memory where the caller can help it: IMAP, the pipe, a folder) and its
  sender gets a polite note in Dutch and English naming the limit, once, under
  the same rules as any automatic reply (:meth:`MailIntake.ingest_too_large`);
- acknowledges only mail received after the cut-off (``acknowledge_max_age``):
  old mail found on a first start, or an archive imported through the pipe, is
  stored without writing to anyone. Received means when the desk's side got
  it (R23): the IMAP INTERNALDATE, else the topmost Received header, else the
  moment it is piped in or read; the sender's Date header is never the clock.

A folder of ``.eml`` files (``slabot ingest email DIR``) goes through
:func:`ingest_files`: the same steps, with the files parsed ahead in reader
processes and a person's mails stored several to a transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from bot.desk import reply_failed
from bot.intake import IntakePipeline, IntakeResult, Outcome, ReplyGuard
from bot.texts import reply_subject, size_text
from channels.email.folder import READERS, FileRead, TooLarge, Unreadable, read_ahead, read_mail
from channels.email.parse import ParsedMail, header_block
from channels.identity import normalise_email
from channels.messages import ChannelName, InboundMessage, utc_now
from storage.database import Database
from storage.direct import Direct
from storage.mailbox import MailboxRepository
from storage.records import OutboundDraft
from storage.repositories import OutboxRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MailResult:
    """What became of one raw mail."""

    outcome: str  # an intake Outcome value, or kept_aside | too_large | own_mail | bounce
    reasons: tuple[str, ...]
    message_id: str | None = None  # the mail's Message-ID
    ticket_ref: str | None = None
    intake: IntakeResult | None = None



Also = Callable[[Direct], None]


class _MailGuards:
    """Both guards in one statement: the address's flag, and its automatic replies in the last hour."""

    def __init__(self, auto_replies_per_hour: int, now: Callable[[], datetime]) -> None:
        self.auto_replies_per_hour = auto_replies_per_hour
        self.now = now

    def check(self, direct: Direct, msg: InboundMessage) -> str | None:
        if msg.channel is not ChannelName.EMAIL:
            return None
        address = msg.sender.value
        capped = self.auto_replies_per_hour > 0
        guard = MailboxRepository(direct).address_guard(address, self.now() - timedelta(hours=1) if capped else None)
        if guard.flagged is not None:
            return f"{address} is flagged ({guard.flagged})"
        if capped and guard.auto_replies >= self.auto_replies_per_hour:
            return (f"{guard.auto_replies} automatic replies to {address} in the last hour "
                    f"(at most {self.auto_replies_per_hour}): a mail loop is held here")
        return None


def mail_reply_guards(auto_replies_per_hour: int = 5,
                      now: Callable[[], datetime] = utc_now) -> tuple[ReplyGuard, ...]:
    """The intake pipeline's guards for e-mail: no automatic reply to a flagged address, none beyond the cap."""
    return (_MailGuards(auto_replies_per_hour, now).check,)


def _mail_result(parsed: ParsedMail, result: IntakeResult) -> MailResult:
    if result.outcome is Outcome.OWN_MESSAGE:
        return MailResult("own_mail", result.reasons, parsed.message_id)
    reasons = result.reasons
    if parsed.automatic_reason:
        reasons = (*reasons, f"automatic mail: {parsed.automatic_reason}")
    return MailResult(result.outcome.value, reasons, parsed.message_id, result.ticket_ref, result)


class MailIntake:
    """Raw mail into tickets, replies and acknowledgements (see the module docstring).

    Its pipeline should carry :func:`mail_reply_guards`.
    """

    def __init__(self, db: Database, pipeline: IntakePipeline, *, own_addresses: tuple[str, ...] = (),
                 acknowledge_max_age: timedelta | None = timedelta(days=1),
                 max_message_bytes: int | None = None, now: Callable[[], datetime] = utc_now) -> None:
        self.db = db
        self.max_message_bytes = max_message_bytes  # None: no cap
        self.pipeline = pipeline
        self.own_addresses = frozenset(normalise_email(a) for a in own_addresses if a)
        self.acknowledge_max_age = acknowledge_max_age
        self.now = now

    # -- one mail ---------------------------------------------------------------------

    def ingest_raw(self, raw: bytes, *, source: str = "mail", acknowledge: bool | None = None,
                   also: Also | None = None, received_at: datetime | None = None) -> MailResult:
        """Store one raw mail and what it causes; ``also`` runs in the same transaction (the IMAP checkpoint).

        ``received_at``: when the desk's mailbox received it (IMAP INTERNALDATE); without it, the topmost
        Received header's date, else now (R23). Never the sender's Date header: not for the SLA clock, not
        for the acknowledgement cut-off. A mail over ``max_message_bytes`` goes to :meth:`ingest_too_large`.
        """
        if self.max_message_bytes is not None and len(raw) > self.max_message_bytes:
            return self.ingest_too_large(header_block(raw), len(raw), source=source, also=also,
                                         received_at=received_at)
        read = read_mail(raw, self.now, received_at=received_at)
        return self.ingest_read(raw, read, source=source, acknowledge=acknowledge, also=also)

    def ingest_read(self, raw: bytes, read: ParsedMail | Unreadable | TooLarge, *, source: str = "mail",
                    acknowledge: bool | None = None, also: Also | None = None) -> MailResult:
        """:meth:`ingest_raw` for a mail already read by :func:`read_mail` (perhaps in another process)."""
        if isinstance(read, TooLarge):
            return self.ingest_too_large(raw, read.size, source=source, also=also)
        if isinstance(read, Unreadable):
            if read.traceback is not None:
                log.error("mail from %s could not be parsed\n%s", source, read.traceback.rstrip())
            return self._keep_aside(raw, source, read.reason, also)
        parsed = read
        msg = parsed.message
        if self._is_own(parsed):
            def skip(direct: Direct) -> None:
                if also is not None:
                    also(direct)
            self.db.run_direct(skip)
            return MailResult("own_mail", (f"slabot's own mail came back ({msg.sender.value}); dropped",),
                              parsed.message_id)
        if parsed.bounce is not None:
            linked = self._bounce(parsed, source, also)
            if linked is not None:
                return linked
        if acknowledge is None:
            acknowledge = self._recent(msg.received_at)
        result = self.pipeline.ingest(msg, acknowledge=acknowledge,
                                      also=(lambda d, _r: also(d)) if also is not None else None)
        return _mail_result(parsed, result)

    # -- several mails at once ----------------------------------------------------------

    def ingest_many(self, mails: Sequence[tuple[bytes, ParsedMail | Unreadable | TooLarge, str]]
                    ) -> Iterator[MailResult]:
        """Each of ``mails`` (raw, read, source) stored once, in order; each result once it is committed.

        A person's mail (not slabot's own, not a bounce) goes in with the ones
        next to it in one transaction: a bulk import spends less on commits. When
        such a transaction fails, nothing of it is stored and its mails go in one
        by one, so the one that fails raises alone and the ones before it are
        stored. The rest (unreadable, too large, own, bounces) go through
        :meth:`ingest_read`, in their place in the order.
        """
        group: list[tuple[bytes, ParsedMail, str]] = []
        for raw, read, source in mails:
            if isinstance(read, ParsedMail) and read.bounce is None and not self._is_own(read):
                group.append((raw, read, source))
                continue
            yield from self._ingest_together(group)
            group = []
            yield self.ingest_read(raw, read, source=source)
        yield from self._ingest_together(group)

    def _ingest_together(self, group: Sequence[tuple[bytes, ParsedMail, str]]) -> Iterator[MailResult]:
        """A person's mails in one transaction; one by one when that fails."""
        def work(direct: Direct) -> list[MailResult]:
            return [_mail_result(parsed, self.pipeline.ingest_in(
                        direct, parsed.message, acknowledge=self._recent(parsed.message.received_at)))
                    for _, parsed, _ in group]

        if len(group) > 1:
            try:
                results = self.db.run_direct(work)
            except Exception:  # all rolled back: one by one, where the failing mail raises alone
                log.debug("%d mails stored together failed; storing them one by one", len(group), exc_info=True)
            else:
                yield from results
                return
        for raw, parsed, source in group:
            yield self.ingest_read(raw, parsed, source=source)

    def _recent(self, received_at: datetime) -> bool:
        return self.acknowledge_max_age is None or self.now() - received_at <= self.acknowledge_max_age

    def _is_own(self, parsed: ParsedMail) -> bool:
        """From slabot's own address (a Message-ID slabot sent is caught by the pipeline: OWN_MESSAGE)."""
        return parsed.message.sender.value in self.own_addresses and not parsed.bounce

    def _keep_aside(self, raw: bytes, source: str, reason: str, also: Also | None) -> MailResult:
        now = self.now()

        def work(direct: Direct) -> bool:
            if also is not None:
                also(direct)
            return MailboxRepository(direct).keep(raw, source, reason, now)  # the same bytes again: kept once

        if not self.db.run_direct(work):
            return MailResult("kept_aside", (f"cannot be read as a mail ({reason}): already kept aside",))
        log.warning("mail from %s kept aside: %s", source, reason)
        return MailResult("kept_aside", (f"cannot be read as a mail ({reason}): kept aside for staff",))

    def ingest_too_large(self, head: bytes, size: int, *, source: str = "mail", also: Also | None = None,
                         received_at: datetime | None = None) -> MailResult:
        """A mail of ``size`` bytes, over ``max_message_bytes``, of which only ``head`` (its header block) was read.

        Kept aside for staff with its headers (``slabot mail kept``), and its sender told, in Dutch and English,
        the limit: unless it is automatic mail, slabot's own, old mail (the acknowledgement cut-off), or the
        reply guards hold the answer back (a flagged address, the cap per hour). The same headers again are kept
        and answered once.
        """
        limit = self.max_message_bytes or size
        reason = f"{size} bytes, more than max_message_bytes ({limit} bytes): only its headers are kept"
        read = read_mail(head, self.now, received_at=received_at)
        now = self.now()

        def work(direct: Direct) -> tuple[bool, OutboundDraft | None]:
            if also is not None:
                also(direct)
            if not MailboxRepository(direct).keep(head, source, reason, now):
                return False, None
            reply = self._size_note(direct, read, size, limit)
            if reply is not None:
                OutboxRepository(direct).queue(reply, now)
            return True, reply

        kept, reply = self.db.run_direct(work)
        message_id = read.message_id if isinstance(read, ParsedMail) else None
        if not kept:
            return MailResult("too_large", (f"too large ({reason}): already kept aside",), message_id)
        log.warning("mail from %s kept aside: %s", source, reason)
        answered = (f"{reply.recipient} told the limit" if reply is not None
                    else "no reply (automatic, own or old mail, or held back by a guard)")
        return MailResult("too_large", (f"too large ({reason}): kept aside for staff", answered), message_id)

    def _size_note(self, direct: Direct, read: ParsedMail | Unreadable, size: int, limit: int
                   ) -> OutboundDraft | None:
        """The polite note to the sender of a mail over the limit, in Dutch and English; None when none may go."""
        if not isinstance(read, ParsedMail) or self._is_own(read) or read.automatic_reason or read.bounce:
            return None
        msg = read.message
        if not self._recent(msg.received_at) or any(guard(direct, msg) for guard in self.pipeline.reply_guards):
            return None
        texts, company = self.pipeline.texts, self.pipeline.preset.title
        text = "\n---\n\n".join(
            texts.render("mail_too_large", language, subject=msg.subject, size=size_text(size, language),
                         limit=size_text(limit, language), company=company).text for language in ("nl", "en"))
        return OutboundDraft(ChannelName.EMAIL.value, msg.sender.value, text, "mail_too_large",
                             subject=reply_subject(msg.subject, None, "nl"), in_reply_to=read.message_id,
                             references=(read.message_id,))

    def _bounce(self, parsed: ParsedMail, source: str, also: Also | None) -> MailResult | None:
        """Link a bounce to the message it bounces; None when that message is not slabot's."""
        bounce = parsed.bounce
        assert bounce is not None
        now = self.now()

        def work(direct: Direct) -> MailResult | None:
            mailbox = MailboxRepository(direct)
            original = mailbox.sent_mail(bounce.original_message_id.strip("<>")) if bounce.original_message_id else None
            if original is None:
                return None
            if mailbox.received_mail(parsed.message_id) is not None:
                if also is not None:
                    also(direct)
                return MailResult("duplicate", ("this bounce is already stored",), parsed.message_id)
            reasons = [f"a delivery-status report for {bounce.original_message_id} ({bounce.status or 'no status'})"]
            in_id = mailbox.add_bounce(parsed.message, parsed.message_id, original, reasons, now)
            if bounce.permanent:
                flag = f"bounced {now.date().isoformat()}: {bounce.status or 'permanent failure'}"
                for address in bounce.recipients or ((original.recipient,) if original.recipient else ()):
                    if mailbox.flag(address, original.id, flag, now):
                        reasons.append(f"{address} flagged: no automatic replies until staff clear it")
            mailbox.bounced(original, in_id, status=bounce.status, permanent=bounce.permanent, now=now)
            if bounce.permanent:  # a staff reply that bounced is no response (R8)
                reply_failed(direct, original.id, now)
            if also is not None:
                also(direct)
            return MailResult("bounce", tuple(reasons), parsed.message_id)

        return self.db.run_direct(work)


# -- a folder of .eml files -----------------------------------------------------------

MAILS_PER_TRANSACTION = 16  # a folder import's mails stored together, and read ahead as one chunk


def ingest_files(intake: MailIntake, paths: Sequence[Path], *, readers: int = READERS
                 ) -> Iterator[tuple[Path, MailResult | OSError]]:
    """Each file of a folder import, in order: its result once committed, or the OSError that kept it unread.

    How it works: the files are read and parsed ahead, a chunk at a time, by
    ``readers`` forked processes (:func:`channels.email.folder.read_ahead`: when
    there is more than one chunk, more than one core, and no other thread in
    this process) while this process stores the chunks in file order,
    each chunk in one transaction (:meth:`MailIntake.ingest_many`). An error while
    storing is raised after the results of the files before it: the file it
    stopped at is the first one not yielded, and the files after it are not
    tried.
    """
    chunks = [paths[i:i + MAILS_PER_TRANSACTION] for i in range(0, len(paths), MAILS_PER_TRANSACTION)]
    ahead = read_ahead(chunks, readers, intake.now, intake.max_message_bytes)
    try:
        for chunk, reads in zip(chunks, ahead):
            yield from _store_chunk(intake, chunk, reads)
    finally:
        ahead.close()  # the readers stop now, also when storing failed


def _store_chunk(intake: MailIntake, chunk: Sequence[Path], reads: Sequence[FileRead]
                 ) -> Iterator[tuple[Path, MailResult | OSError]]:
    """A chunk's mails stored in order; a file that could not be read is reported in its place."""
    run: list[tuple[Path, bytes, ParsedMail | Unreadable | TooLarge]] = []
    for path, read in zip(chunk, reads):
        if isinstance(read, OSError):
            yield from _store_run(intake, run)
            run = []
            yield path, read
        else:
            run.append((path, *read))
    yield from _store_run(intake, run)


def _store_run(intake: MailIntake, run: Sequence[tuple[Path, bytes, ParsedMail | Unreadable | TooLarge]]
               ) -> Iterator[tuple[Path, MailResult]]:
    results = intake.ingest_many([(raw, read, str(path)[:400]) for path, raw, read in run])
    return zip((path for path, _, _ in run), results)


__all__ = ["MailIntake", "MailResult", "ingest_files", "mail_reply_guards"]
