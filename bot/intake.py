"""The intake pipeline: one inbound message in, one decision out, in ONE transaction.

How it works
------------
:meth:`IntakePipeline.ingest` takes a normalised :class:`InboundMessage` and,
inside a single database transaction:

0. makes it storable: NUL characters, which no PostgreSQL text can hold, are removed from every text
   it carries (:func:`channels.messages.storable`), and its reasons say so;
1. de-duplicates on (channel, external id): a message seen before changes nothing;
2. threads it (R6): a reply to a message slabot saw or sent, the ticket
   reference in the subject (only from the ticket's contact person), or the
   same WhatsApp number while a ticket is open;
3. resolves the sender (R1-R5): the ticket's contact person, someone else on
   the thread (R3), an unauthorised third party (R2), an unknown sender (R4),
   or a contact writing on a channel the plan does not include (R5; the outage line, R17, is open to every plan);
4. asks ``sla_engine`` for the deadlines and the support/service classification;
5. stores ticket, message and attachments, queues the acknowledgement in the
   outbox, and plans the staff reminders.

If anything fails, nothing of it is stored. The same message delivered twice at
once is stored once: the database's unique key on (channel, direction,
external id) decides, and the loser of the race reports a duplicate. Two
different messages from one WhatsApp number (or phone) arriving at once, in one
process or in two workers on one PostgreSQL database, are decided one after the
other: the transaction first takes the lock of that number's thread
(:meth:`storage.repositories.TicketRepository.lock_thread`), so the second joins
the ticket the first opened instead of opening another.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from bot.billing import Billing, is_balance_request, quote_answer
from bot.i18n import Language, format_span, format_when
from bot.texts import (
    Texts,
    channel_list,
    language_of,
    opening_hours,
    reply_subject,
    resolution_phrase,
)
from channels.messages import ChannelName, DeliveryState, InboundMessage, storable, utc_now, without_nul
from sla_engine.classification import ClassificationInput, Kind, classify
from sla_engine.deadlines import (
    Pause,
    first_response_due,
    reminder_schedule,
    resolution_window,
)
from sla_engine.errors import PolicyError
from sla_engine.policy import (
    Channel,
    Plan,
    Preset,
    Priority,
    SlaTerms,
    queue_rank,
    takes_request,
)
from sla_engine.priority import Line, PriorityDecision, PriorityInput, decide_priority
from storage.billing import BillingRepository
from storage.database import Database, DuplicateError, is_unique_violation
from storage.direct import Direct
from storage.platform import store_answer
from storage.records import (
    CALLBACK_SPEC,
    OPEN_STATES,
    AccountRecord,
    ContactRecord,
    OutboundDraft,
    QuoteState,
    TicketRecord,
    TicketState,
    follow_up_spec,
)
from storage.repositories import (
    AccountRepository,
    OutboxRepository,
    ReminderRepository,
    Thread,
    TicketRepository,
)


THREADED_BY_NUMBER = frozenset({ChannelName.WHATSAPP, ChannelName.PHONE})  # R6: the number threads, not a header


class Outcome(StrEnum):
    """What the intake decided."""

    NEW_TICKET = "new_ticket"
    REPLY = "reply"  # joined an open ticket (R6)
    DUPLICATE = "duplicate"
    NOT_CONTACT_PERSON = "not_contact_person"  # R3
    THIRD_PARTY_REFUSED = "third_party_refused"  # R2
    UNKNOWN_SENDER = "unknown_sender"  # R4
    CHANNEL_NOT_IN_PLAN = "channel_not_in_plan"  # R5
    OWN_MESSAGE = "own_message"  # a message slabot sent, coming back (a mail loop): dropped
    BALANCE = "balance"  # a contact asked for the hours balance ("uren"/"hours"): answered, no ticket


@dataclass(frozen=True)
class IntakeResult:
    """The decision, with what it stored and why."""

    outcome: Outcome
    ticket_ref: str | None = None
    message_id: int | None = None
    acknowledgement: str | None = None  # the purpose of the queued reply, if any
    reasons: tuple[str, ...] = ()
    kind: str | None = None
    first_response_due: datetime | None = None
    response_due: datetime | None = None  # the current response deadline: a follow-up question's (R24)


@dataclass
class _Work:
    """What one ingest decided, filled in while it runs."""

    msg: InboundMessage
    reasons: list[str] = field(default_factory=list)
    no_reply: str | None = None  # why no automatic reply may go out, if one may not


ReplyGuard = Callable[[Direct, InboundMessage], "str | None"]
"""Asked once per message inside the ingest's transaction: a reason to send no automatic reply, or None."""


REF_PATTERN = r"\b({prefix})-(\d{{3,}})\b"


@lru_cache(maxsize=16)
def _ref_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(REF_PATTERN.format(prefix=re.escape(prefix)), re.IGNORECASE)


def _ref_in(subject: str | None, prefix: str) -> str | None:
    if not subject:
        return None
    found = _ref_pattern(prefix).search(subject)
    return f"{found.group(1).upper()}-{found.group(2)}" if found else None



class IntakePipeline:
    """Turns inbound messages into tickets, replies and queued acknowledgements."""

    def __init__(
        self,
        db: Database,
        preset: Preset,
        texts: Texts | None = None,
        *,
        default_language: Language = "nl",
        now: Callable[[], datetime] = utc_now,
        reply_guards: tuple[ReplyGuard, ...] = (),
    ) -> None:
        self.db = db
        self.preset = preset
        self.texts = texts or Texts()
        self.default_language = default_language
        self.now = now
        self.reply_guards = reply_guards  # e.g. e-mail's cap on automatic replies per address
        # the terms of a plan on a day (and their snapshot as the tickets table stores it) and the rates of the
        # day, made once: every ticket of that plan and day shares them
        self._terms: dict[tuple[str, date, str | None], tuple[SlaTerms, Any]] = {}
        self._rates: dict[tuple[str, date, str], dict[str, str] | None] = {}

    # -- entry point ---------------------------------------------------------

    def ingest(self, msg: InboundMessage, *, acknowledge: bool = True,
               also: Callable[[Direct, IntakeResult], None] | None = None) -> IntakeResult:
        """Store ``msg`` and everything it causes, all or nothing; see the module docstring.

        ``acknowledge=False`` stores and decides as usual but queues no automatic reply (old mail
        found on a first start). ``also`` runs in the same transaction after the decision, duplicates
        included (the IMAP intake moves its checkpoint there).
        """
        def work(direct: Direct) -> IntakeResult:
            result = self._ingest(direct, msg, acknowledge)
            if also is not None:
                also(direct, result)
            return result

        try:
            return self.db.run_direct(work)
        except Exception as exc:
            if not isinstance(exc, DuplicateError) and not is_unique_violation(exc):
                raise
            # lost a race with a concurrent delivery of the same message: it is stored once
            def duplicate(direct: Direct) -> IntakeResult | None:
                existing = TicketRepository(direct).message_id_for(msg.channel.value, "in",
                                                                   without_nul(msg.external_id))
                if existing is None:
                    return None
                result = IntakeResult(Outcome.DUPLICATE, message_id=existing,
                                      reasons=("the same message was delivered twice at once; stored once",))
                if also is not None:
                    also(direct, result)
                return result

            found = self.db.run_direct(duplicate)
            if found is None:
                raise
            return found

    def ingest_in(self, direct: Direct, msg: InboundMessage, *, acknowledge: bool = True) -> IntakeResult:
        """:meth:`ingest`'s decision and writes inside the caller's transaction, so that a bulk import can
        commit several messages at once. The :class:`DuplicateError` of a concurrent delivery of the same message
        is the caller's to handle (roll back, then :meth:`ingest` one by one)."""
        return self._ingest(direct, msg, acknowledge)

    # -- the decision ----------------------------------------------------------

    def _ingest(self, s: Direct, msg: InboundMessage, acknowledge: bool = True) -> IntakeResult:
        msg = storable(msg)
        tickets, accounts = TicketRepository(s), AccountRepository(s)
        channel = msg.channel.value
        # what the decision reads, asked at once: on PostgreSQL one round trip for all of it (storage.direct)
        if msg.channel in THREADED_BY_NUMBER:  # one conversation's messages in turn, across processes too
            locked = tickets.ask_lock_thread(channel, msg.sender.value)
        else:  # the same message delivered twice at once: decided once
            locked = tickets.ask_lock_message(channel, msg.external_id)
        # (and the ids a new ticket takes, so that its rows are written without waiting for them)
        stored = tickets.ask_stored_as(channel, msg.external_id, reserve=True)
        found = accounts.ask_find(msg.sender.kind.value, msg.sender.value)
        ways = self._ask_thread(tickets, msg)
        locked()
        existing, direction = stored()
        if existing is not None and direction == "in":
            return IntakeResult(Outcome.DUPLICATE, message_id=existing,
                                reasons=(f"{channel} message {msg.external_id} is already stored",))
        if existing is not None:
            return IntakeResult(Outcome.OWN_MESSAGE, message_id=existing,
                                reasons=(f"{channel} message {msg.external_id} is one slabot sent; dropped",))
        matches = found()
        work = _Work(msg)
        work.reasons.extend(msg.notes)  # what the channel changed to store it
        if not acknowledge:
            work.no_reply = "received before the acknowledgement cut-off (old mail)"
        elif not msg.automatic:
            work.no_reply = next((r for r in (guard(s, msg) for guard in self.reply_guards) if r), None)

        if (self.preset.billing is not None and matches and not msg.automatic and matches[0][0].may_open_requests
                and is_balance_request(msg.text or msg.subject or "")):
            return self._balance(s, *matches[0], work)

        joined = self._thread(ways, work)
        if joined is not None:
            thread = joined.ticket
            if thread.contact_id is not None and any(c.id == thread.contact_id for c, _ in matches):
                return self._reply(s, joined, matches, work)
            if thread.state == TicketState.UNVERIFIED and thread.thread_key == msg.sender.value:
                return self._reply(s, joined, matches, work)
            known, known_account = matches[0] if matches else (None, None)
            return self._not_contact_person(s, thread, work, known, known_account)

        if not matches:
            return self._unknown_sender(s, work)
        contact, account = matches[0]
        if len({a.id for c, a in matches if c.may_open_requests}) > 1:
            work.reasons.append(
                f"{msg.sender.value} is a contact of several accounts; taken as {account.name} (the first)"
            )
        if not contact.may_open_requests:
            return self._third_party(s, contact, account, work)
        try:
            plan = self.preset.plan(account.plan)
        except PolicyError as exc:
            work.reasons.append(f"account {account.name}: {exc}")
            return self._unknown_sender(s, work, account=account, contact=contact)
        if not takes_request(plan, Channel(channel), critical=msg.critical, outage_line=self.preset.critical):
            return self._channel_not_in_plan(s, contact, account, plan, work)
        if Channel(channel) not in plan.channels:
            work.reasons.append(f"the outage line is open to every plan (R5, R17): plan {plan.name} does not "
                                f"include {channel}, the critical request is taken")
        return self._new_ticket(s, contact, account, plan, work)

    def _ask_thread(self, tickets: TicketRepository,
                    msg: InboundMessage) -> list[tuple[Callable[[], Thread | None], str]]:
        """The ways this message may belong to a ticket (R6), in the order they count, each asked now: a reply to a
        message of the ticket, its reference in the subject, the same number while the ticket is open."""
        channel = msg.channel.value
        ways = []
        if msg.thread_refs:
            ways.append((tickets.ask_ticket_for_thread(channel, msg.thread_refs),
                         "a reply to a message of this ticket (In-Reply-To/References)"))
        ref = _ref_in(msg.subject, self.preset.ref_prefix)
        if ref:
            ways.append((tickets.ask_ticket_for_ref(ref), f"the reference {ref} in the subject"))
        if msg.channel in THREADED_BY_NUMBER:
            # a critical incident never disappears into an open normal ticket (R17 over R6), but a second call
            # about it joins the outage ticket it is about
            ways.append((tickets.ask_open_ticket_for_key(channel, msg.sender.value,
                                                         Priority.CRITICAL.value if msg.critical else None),
                         f"the same {channel} number while the ticket is open"))
        return ways

    def _thread(self, ways: list[tuple[Callable[[], Thread | None], str]], work: _Work) -> Thread | None:
        """The open ticket this message belongs to (R6), if any: the first of the ways :meth:`_ask_thread` asked
        that names a ticket."""
        found, how = None, ""
        for answer, how in ways:
            found = answer()
            if found is not None:
                break
        if found is None:
            return None
        ticket = found.ticket
        if ticket.state not in OPEN_STATES:
            work.reasons.append(f"{ticket.ref} is {ticket.state}: a new request instead of a reply")
            return None
        work.reasons.append(f"joins {ticket.ref}: {how}")
        return found

    # -- outcomes --------------------------------------------------------------

    def _reply(self, s: Direct, thread: Thread, matches: list[tuple[ContactRecord, AccountRecord]],
               work: _Work) -> IntakeResult:
        ticket, tickets = thread.ticket, TicketRepository(s)
        msg, now = work.msg, self.now()
        message_id = self._store_message(tickets, msg, ticket.id, ticket.account_id, ticket.contact_id,
                                         Outcome.REPLY, work)
        if ticket.state == TicketState.WAITING and ticket.waiting_since is not None and not msg.automatic:
            # an auto-reply (out of office) is not the customer's answer: the clock stays paused (R14)
            self._resume(tickets, ticket, msg.received_at, work)
        answered = self._quote_answer(s, thread, message_id, matches, work)
        due = self._follow_up(s, ticket, message_id, answered, work)
        tickets.add_event("customer_reply", now, ticket_id=ticket.id, message_id=message_id,
                          data={"reasons": work.reasons})
        return IntakeResult(Outcome.REPLY, ticket.ref, message_id, answered, tuple(work.reasons), ticket.kind,
                            ticket.first_response_due, due)

    def _follow_up(self, s: Direct, ticket: TicketRecord, message_id: int, quote_answer: str | None,
                   work: _Work) -> datetime | None:
        """R24: the customer asks again on a ticket staff answered. The ticket gets a response deadline on the
        plan's first-response terms from the message's arrival (none on a plan without a guarantee), R16's
        reminders for it, and a ``follow_up`` event the staff chat announces; no acknowledgement goes out. While
        an earlier follow-up question waits, its deadline stands. The current response deadline."""
        msg, now = work.msg, self.now()
        if (msg.automatic or ticket.first_responded_at is None or quote_answer is not None
                or msg.channel is ChannelName.PHONE):
            # an auto-reply, the first question still open, a yes/no to a quote, or a call: a missed one has its
            # callback reminder, an answered one is a conversation with staff
            return ticket.response_due
        tickets = TicketRepository(s)
        due = ticket.response_due
        if ticket.followup_at is not None:
            work.reasons.append(f"a follow-up question; the one of {ticket.followup_at.isoformat()} still waits "
                                "for staff, its response deadline stands (R24)")
        else:
            terms = SlaTerms.from_dict(ticket.terms) if ticket.terms else None
            due = first_response_due(msg.received_at, terms) if terms is not None else None
            work.reasons.append(f"a follow-up question after staff answered: response due {due.isoformat()} (R24)"
                                if due else "a follow-up question after staff answered; no guaranteed response time")
            tickets.update_ticket(ticket.id, response_due=due, followup_at=msg.received_at, updated_at=now)
            reminders = ReminderRepository(s)
            reminders.cancel_deadline_reminders(ticket.id, now, CALLBACK_SPEC)
            if terms is not None:
                reminders.plan(ticket.id, ((follow_up_spec(r.spec, message_id), r.at, r.escalate)
                                           for r in reminder_schedule(msg.received_at, terms, due=due)))
        tickets.add_event("follow_up", now, ticket_id=ticket.id, message_id=message_id,
                          data={"response_due": due.isoformat() if due else None, "message": message_id,
                                "reasons": work.reasons})
        return due

    def _quote_answer(self, s: Direct, thread: Thread, message_id: int,
                      matches: list[tuple[ContactRecord, AccountRecord]], work: _Work) -> str | None:
        """The contact person's answer to an open quote (R19): agreed, declined, or left to staff. The quote is read
        only where the ticket's lookup found one proposed (no round trip of its own otherwise)."""
        msg, ticket = work.msg, thread.ticket
        repo = BillingRepository(s)
        asked = thread.quote is QuoteState.PROPOSED and not msg.automatic and self.preset.billing is not None
        quote = repo.current_quote(ticket.id) if asked else None
        if quote is None or quote.state != QuoteState.PROPOSED:
            return None
        answer = quote_answer(msg.text)
        if answer is None:
            work.reasons.append(f"a reply to the open quote of {ticket.ref}, but not a clear yes or no: staff decide")
            return None
        if not repo.answer_quote(quote.id, answer, self.now(), message_id):
            return None
        work.reasons.append(f"the contact person {answer} to the quote of {quote.estimated_hours} hours (R19)")
        tickets = TicketRepository(s)
        if answer == QuoteState.AGREED and ticket.kind != "service":
            tickets.update_ticket(ticket.id, kind="service", kind_rule="quote_agreed",
                                  kind_reasons=["the customer agreed to a quote for paid service"])
        tickets.add_event(f"quote_{answer}", self.now(), ticket_id=ticket.id, message_id=message_id,
                          data={"quote": quote.id, "hours": str(quote.estimated_hours), "total": str(quote.total)})
        contact, account = next(((c, a) for c, a in matches if c.id == ticket.contact_id), (None, None))
        language = self._language(contact, account, work.msg)
        reply = self._reply_for(work, f"quote_{answer}", language, ref=ticket.ref,
                                contact_name=contact.name if contact else "",
                                estimate=f"{quote.estimated_hours.normalize():f}")
        self._queue(s, reply, message_id, ticket.id, ticket.account_id, ticket.contact_id, ref=ticket.ref)
        return reply.purpose if reply else None

    def _balance(self, s: Direct, contact: ContactRecord, account: AccountRecord, work: _Work) -> IntakeResult:
        """A contact asked for the hours balance: the punch card and this month's hours, no ticket."""
        tickets = TicketRepository(s)
        work.reasons.append(f"{contact.name} of {account.name} asked for the hours balance: answered, no ticket")
        message_id = self._store_message(tickets, work.msg, None, account.id, contact.id, Outcome.BALANCE, work)
        billing = Billing(self.db, self.preset, texts=self.texts, now=self.now)
        language = self._language(contact, account, work.msg)
        reply = self._reply_for(work, "balance", language,
                                **billing.balance_values(billing.balance_of(s, account), language, contact.name))
        self._queue(s, reply, message_id, None, account.id, contact.id)
        tickets.add_event("balance_asked", self.now(), message_id=message_id, data={"account": account.name})
        return IntakeResult(Outcome.BALANCE, None, message_id, reply.purpose if reply else None, tuple(work.reasons))

    def _resume(self, tickets: TicketRepository, ticket: TicketRecord, at: datetime, work: _Work) -> None:
        """The customer answered a clarification: the resolution clock runs again (R14)."""
        pauses = [*ticket.pauses[:-1], (ticket.pauses[-1][0], at)] if ticket.pauses else [(ticket.waiting_since, at)]
        values: dict[str, Any] = {
            "state": TicketState.OPEN.value, "waiting_since": None,
            "pauses": [[p.isoformat(), e.isoformat() if e else None] for p, e in pauses],  # type: ignore[union-attr]
        }
        if ticket.terms:
            terms = SlaTerms.from_dict(ticket.terms)
            window = resolution_window(ticket.received_at, terms,
                                       pauses=[Pause(p, e) for p, e in pauses],  # type: ignore[arg-type]
                                       needs_release=ticket.needs_release, as_of=at)
            values["resolution_due_min"], values["resolution_due_max"] = window.earliest, window.latest
            work.reasons.append(f"waiting on the customer ended; {window.reason}")
        tickets.update_ticket(ticket.id, **values)

    def _not_contact_person(self, s: Direct, ticket: TicketRecord, work: _Work,
                            known: ContactRecord | None = None, account: AccountRecord | None = None) -> IntakeResult:
        tickets = TicketRepository(s)
        msg = work.msg
        work.reasons.append(f"{msg.sender.value} is not the contact person of {ticket.ref} (R3): kept for staff")
        message_id = self._store_message(tickets, msg, ticket.id, ticket.account_id, None,
                                         Outcome.NOT_CONTACT_PERSON, work)
        language = self._language(known, account, work.msg)
        reply = self._reply_for(work, "not_contact_person", language, ref=ticket.ref)
        self._queue(s, reply, message_id, ticket.id, None, None)
        tickets.add_event("not_contact_person", self.now(), ticket_id=ticket.id, message_id=message_id,
                          data={"sender": msg.sender.value})
        return IntakeResult(Outcome.NOT_CONTACT_PERSON, ticket.ref, message_id, reply.purpose if reply else None,
                            tuple(work.reasons))

    def _third_party(self, s: Direct, contact: ContactRecord, account: AccountRecord, work: _Work) -> IntakeResult:
        tickets = TicketRepository(s)
        work.reasons.append(f"{contact.name} is a third party not authorised on {account.name} (R2): "
                            "refused politely, no ticket, message kept for staff")
        message_id = self._store_message(tickets, work.msg, None, account.id, contact.id,
                                         Outcome.THIRD_PARTY_REFUSED, work)
        reply = self._reply_for(work, "third_party", self._language(contact, account, work.msg))
        self._queue(s, reply, message_id, None, account.id, contact.id)
        tickets.add_event("third_party_refused", self.now(), message_id=message_id, data={"account": account.name})
        return IntakeResult(Outcome.THIRD_PARTY_REFUSED, None, message_id, reply.purpose if reply else None,
                            tuple(work.reasons))

    def _channel_not_in_plan(self, s: Direct, contact: ContactRecord, account: AccountRecord, plan: Plan,
                             work: _Work) -> IntakeResult:
        tickets = TicketRepository(s)
        msg = work.msg
        work.reasons.append(f"plan {plan.name} does not include {msg.channel.value} (R5): kept, no SLA clock")
        message_id = self._store_message(tickets, msg, None, account.id, contact.id,
                                         Outcome.CHANNEL_NOT_IN_PLAN, work)
        language = self._language(contact, account, work.msg)
        reply = self._reply_for(
            work, "channel_not_in_plan", language, contact_name=contact.name, plan=plan.title,
            channel=channel_list(frozenset({Channel(msg.channel.value)}), language),
            channels=channel_list(plan.channels, language),
        )
        self._queue(s, reply, message_id, None, account.id, contact.id)
        tickets.add_event("channel_not_in_plan", self.now(), message_id=message_id,
                          data={"account": account.name, "plan": plan.name})
        return IntakeResult(Outcome.CHANNEL_NOT_IN_PLAN, None, message_id, reply.purpose if reply else None,
                            tuple(work.reasons))

    def _unknown_sender(self, s: Direct, work: _Work, *, account: AccountRecord | None = None,
                        contact: ContactRecord | None = None) -> IntakeResult:
        tickets = TicketRepository(s)
        msg = work.msg
        if account is None:
            work.reasons.append(f"{msg.sender.value} matches no contact (R4): unverified ticket for staff to link")
        ref = tickets.next_ref(self.preset.ref_prefix)
        priority = Priority.CRITICAL if msg.critical else Priority.NORMAL
        ticket_id = tickets.add_ticket(
            ref=ref, account_id=account.id if account else None, contact_id=contact.id if contact else None,
            channel=msg.channel.value, thread_key=msg.sender.value, subject=msg.subject, kind=Kind.UNDETERMINED.value,
            priority=priority.value, state=TicketState.UNVERIFIED.value, plan=None,
            queue_priority=queue_rank(None, priority), terms=None, received_at=msg.received_at,
            decision=Outcome.UNKNOWN_SENDER.value, reasons=list(work.reasons), kind_reasons=[], pauses=[],
            created_at=self.now(), updated_at=self.now(),
        )
        message_id = self._store_message(tickets, msg, ticket_id, None, None, Outcome.UNKNOWN_SENDER, work)
        reply = self._reply_for(work, "unknown_sender", self._language(contact, account, work.msg), ref=ref,
                                sender=msg.sender.value)
        self._queue(s, reply, message_id, ticket_id, None, None, ref=ref)
        tickets.add_event("ticket_opened", self.now(), ticket_id=ticket_id, message_id=message_id,
                          data={"decision": Outcome.UNKNOWN_SENDER.value, "reasons": work.reasons})
        return IntakeResult(Outcome.UNKNOWN_SENDER, ref, message_id, reply.purpose if reply else None, tuple(work.reasons))

    def _priority(self, plan: Plan, msg: InboundMessage, work: _Work) -> PriorityDecision | None:
        """The request's priority by the preset's rule table (R25), the one the plan serves it at; None where
        the preset has no priorities."""
        preset = self.preset
        if not preset.priorities or preset.default_priority is None:
            return None
        if msg.priority is not None and msg.priority.strip().lower() in preset.priority_names:
            decision = PriorityDecision(msg.priority.strip().lower(), "asked",
                                        (f"the request asked for priority {msg.priority}",))
        else:
            line = Line.OUTAGE if msg.critical and preset.critical is not None else Line.GENERAL
            text = msg.subject + "\n" + msg.text if msg.subject else msg.text
            decision = decide_priority(PriorityInput(text, msg.channel.value, line, msg.urgency, msg.impact),
                                       preset.priority_rules, preset.default_priority)
        served, why = preset.served(plan, decision.priority)
        assert served is not None
        reasons = (*decision.reasons, why) if why else decision.reasons
        work.reasons.append(f"priority {served}: {'; '.join(reasons)}")
        return PriorityDecision(served, decision.rule, reasons)

    def _terms_for(self, plan: Plan, msg: InboundMessage, priority: str | None,
                   tickets: TicketRepository) -> tuple[SlaTerms, Any]:
        """The ticket's SLA terms and their snapshot (R22), the latter converted for storing."""
        key = (plan.name, msg.received_at.astimezone(self._zone()).date(), priority)
        found = self._terms.get(key)
        if found is None:
            if len(self._terms) >= 1024:
                self._terms.clear()
            terms = self.preset.terms(plan, key[1], priority)
            found = self._terms[key] = (terms, tickets.terms_value(terms.to_dict()))
        return found

    def _rates_for(self, plan: Plan, at: datetime, language: Language) -> dict[str, str] | None:
        key = (plan.name, at.astimezone(self._zone()).date(), language)
        if key not in self._rates:
            if len(self._rates) >= 1024:
                self._rates.clear()
            self._rates[key] = Texts.rates(self.preset, plan, at, language)
        return self._rates[key]

    def _new_ticket(self, s: Direct, contact: ContactRecord, account: AccountRecord, plan: Plan,
                    work: _Work) -> IntakeResult:
        tickets, msg, now = TicketRepository(s), work.msg, self.now()
        decided = self._priority(plan, msg, work)
        terms, snapshot = self._terms_for(plan, msg, decided.priority if decided else None, tickets)
        due = first_response_due(msg.received_at, terms)
        window = resolution_window(msg.received_at, terms)
        verdict = classify(
            ClassificationInput(msg.subject + "\n" + msg.text if msg.subject else msg.text,
                                msg.received_at.astimezone(self._zone()).date(), account.templates_delivered),
            self.preset.classification, template_window=self.preset.template_window,
            default=Kind(self.preset.default_kind),
        )
        priority = Priority.CRITICAL if msg.critical else Priority.NORMAL
        work.reasons.append(f"{contact.name} is a contact person of {account.name} (plan {plan.name})")
        work.reasons.append(
            f"first response due {due.isoformat()}" if due else "no first-response guarantee (plan without SLA)"
        )
        ref = tickets.next_ref(self.preset.ref_prefix)
        ticket_id = tickets.add_ticket(
            ref=ref, account_id=account.id, contact_id=contact.id, channel=msg.channel.value,
            thread_key=msg.sender.value, subject=msg.subject, kind=verdict.kind.value, kind_rule=verdict.rule,
            kind_reasons=list(verdict.reasons), priority=priority.value, state=TicketState.OPEN.value, plan=plan.name,
            queue_priority=queue_rank(plan, priority), terms=snapshot, received_at=msg.received_at,
            first_response_due=due, response_due=due, resolution_due_min=window.earliest,
            resolution_due_max=window.latest,
            decision=Outcome.NEW_TICKET.value, reasons=list(work.reasons), pauses=[], created_at=now, updated_at=now,
            sla_priority=decided.priority if decided else None, priority_rule=decided.rule if decided else None,
            priority_reasons=list(decided.reasons) if decided else None,
        )
        message_id = self._store_message(tickets, msg, ticket_id, account.id, contact.id, Outcome.NEW_TICKET, work)
        ReminderRepository(s).plan(ticket_id, ((r.spec, r.at, r.escalate)
                                               for r in reminder_schedule(msg.received_at, terms, due=due)))
        language = self._language(contact, account, work.msg)
        reply = self._acknowledgement(work, terms, terms.plan, ref, contact, account, due, window.earliest,
                                      window.latest, verdict.kind, verdict.reasons, language)
        self._queue(s, reply, message_id, ticket_id, account.id, contact.id, ref=ref)
        tickets.add_event("ticket_opened", now, ticket_id=ticket_id, message_id=message_id,
                          data={"decision": Outcome.NEW_TICKET.value, "reasons": work.reasons,
                                "kind": verdict.kind.value, "kind_rule": verdict.rule})
        return IntakeResult(Outcome.NEW_TICKET, ref, message_id, reply.purpose if reply else None, tuple(work.reasons),
                            verdict.kind.value, due, due)

    # -- helpers ---------------------------------------------------------------

    def _zone(self) -> ZoneInfo:
        return next(iter(self.preset.calendars.values())).zone

    def _language(self, contact: ContactRecord | None, account: AccountRecord | None,
                  msg: InboundMessage | None = None) -> Language:
        return language_of(msg.language if msg else None,  # asked for with the request (the platform API)
                           contact.language if contact else None, account.language if account else None,
                           default=self.default_language)

    def _store_message(self, tickets: TicketRepository, msg: InboundMessage, ticket_id: int | None,
                       account_id: int | None, contact_id: int | None, outcome: Outcome, work: _Work) -> int:
        return tickets.add_message(
            ticket_id=ticket_id, account_id=account_id, contact_id=contact_id, direction="in",
            channel=msg.channel.value, external_id=msg.external_id, sender=msg.sender.value,
            recipient=msg.recipient, sender_name=msg.sender_name, subject=msg.subject, text=msg.text,
            full_text=msg.full_text, at=msg.received_at, auto=msg.automatic, decision=outcome.value,
            reasons=list(work.reasons), delivery_state=DeliveryState.RECEIVED.value,
            thread_refs=list(msg.thread_refs), raw=msg.raw or None, created_at=self.now(),
            # an attachment whose bytes are in the raw message is not stored a second time
            attachments=[{"filename": a.filename, "content_type": a.content_type, "size": a.size, "url": a.url,
                          "data": None if a.in_raw and msg.raw else a.data,
                          "fetched": a.data is not None or a.in_raw} for a in msg.attachments],
        )

    def _acknowledgement(self, work: _Work, terms: SlaTerms, plan: Plan, ref: str, contact: ContactRecord,
                         account: AccountRecord, due: datetime | None, earliest: datetime | None,
                         latest: datetime | None, kind: Kind, kind_reasons: tuple[str, ...],
                         language: Language) -> OutboundDraft | None:
        msg = work.msg
        common: dict[str, Any] = {
            "ref": ref, "contact_name": contact.name, "plan": plan.title, "company": self.preset.title,
            "opening_hours": opening_hours(self.preset.service_calendar(plan), language),
            "staff": account.staff if plan.staff_role else None,
            "kind": kind.value, "kind_reason": kind_reasons[0] if kind_reasons else "",
            "rates": self._rates_for(plan, msg.received_at, language),
        }
        if msg.critical and self.preset.critical is not None:  # only a preset with a 24/7 outage line
            # R7: on-call is paged and the outage line may cost; no deadline (the SLA gives none for an outage).
            # ``due`` stays None for a template of an earlier slabot that still asks for it.
            return self._reply_for(work, "critical", language, due=None,
                                   outage_charge=self.preset.critical.outage_charge_warning, **common)
        if msg.answered:  # a call staff took is itself the response (R8): no deadline to promise
            return self._reply_for(work, "call_answered", language, sla=plan.sla and due is not None,
                                   resolution=resolution_phrase(plan, earliest, latest, language), **common)
        if not plan.sla or due is None:
            return self._reply_for(work, "accepted_no_sla", language, **common)
        target = plan.first_response
        assert target is not None
        # R25: a target of the preset's matrix names its priority
        level = self.preset.priority(terms.priority) if terms.priority and plan.cell(terms.priority) else None
        return self._reply_for(
            work, "accepted", language, due=format_when(due, language), priority=level.title if level else None,
            target=format_span(target.duration, language, target.clock.value),
            resolution=resolution_phrase(plan, earliest, latest, language), **common,
        )

    def _reply_for(self, work: _Work, purpose: str, language: Language, **values: Any) -> OutboundDraft | None:
        """The automatic reply for ``purpose``, or None when the message is automatic itself or replies are held."""
        msg = work.msg
        if msg.automatic:
            work.reasons.append("an automatic message: no automatic reply")
            return None
        if work.no_reply is not None:
            work.reasons.append(f"no automatic reply: {work.no_reply}")
            return None
        values.setdefault("company", self.preset.title)
        rendered = self.texts.render(purpose, language, **values)
        subject = reply_subject(msg.subject, values.get("ref"), language) if msg.channel is ChannelName.EMAIL else None
        in_reply_to = msg.external_id if msg.channel is ChannelName.EMAIL else None
        return OutboundDraft(msg.channel.value, msg.sender.value, rendered.text, purpose, subject=subject,
                             language=language, in_reply_to=in_reply_to,
                             references=(in_reply_to,) if in_reply_to else ())

    def _reachable(self, s: Direct, reply: OutboundDraft, contact_id: int | None, ref: str | None) -> OutboundDraft:
        """A phone caller cannot be written to by phone: the reply goes by e-mail to a known contact who has an
        address, else by WhatsApp to the calling number (R17: the caller hears of the outage charge too)."""
        address = AccountRepository(s).identity(contact_id, "email") if contact_id is not None else None
        if address is not None:
            return replace(reply, channel=ChannelName.EMAIL.value, recipient=address,
                           subject=reply_subject(None, ref, language_of(reply.language)), in_reply_to=None,
                           references=())
        return replace(reply, channel=ChannelName.WHATSAPP.value)

    def _queue(self, s: Direct, reply: OutboundDraft | None, in_reply_to_id: int, ticket_id: int | None,
               account_id: int | None, contact_id: int | None, *, ref: str | None = None) -> None:
        """Store the outbound message and its outbox row, in the ingest's transaction."""
        if reply is None:
            return
        if reply.channel == ChannelName.PHONE.value:
            reply = self._reachable(s, reply, contact_id, ref)
        if reply.channel == ChannelName.PLATFORM.value:  # the API's answer carries it (R7: on its own channel)
            store_answer(s, replace(reply, ticket_id=ticket_id, account_id=account_id, contact_id=contact_id),
                         in_reply_to_id, self.now())
            return
        OutboxRepository(s).queue(replace(reply, ticket_id=ticket_id, ticket_ref=ref, account_id=account_id,
                                          contact_id=contact_id, reply_to_message=in_reply_to_id), self.now())
