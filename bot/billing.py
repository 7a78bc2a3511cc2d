"""Paid service and billing (R18-R22): classification, quotes, hours, punch cards, invoices.

How it works
------------
Every staff action is one transaction, recorded in the ticket's audit trail.

- **Support or service** (R18): the intake's classification stands until staff
  change it (:meth:`Billing.classify`). Hours logged while a ticket is still
  undetermined, or marked as diagnosis, wait for the root cause
  (:meth:`Billing.record_cause`): a platform bug makes them free, a cause
  outside the platform makes them paid service, billed at once.
- **Quote** (R19, R22): :meth:`Billing.quote` sends the customer an hour
  estimate with the rate of the day, the 1-hour minimum and the total, over the
  ticket's own channel, and waits for the answer; the intake recognises a
  clear "akkoord"/"agreed"/"ja" (or "nee"/"no") with :func:`quote_answer`. The
  quote keeps its rate card: a later rate change does not move it.
- **Hours** (:meth:`Billing.log_hours`): on a support ticket they are free; on
  paid service they count only after the customer agreed (before that they are
  kept, ``not_agreed``). Billable hours are allocated by
  :func:`sla_engine.billing.allocate_hours`: Ondersteuning's monthly hours
  first, then the punch card, else ad hoc (or urgent); a request is billed at
  least the minimum of 1 hour (the shortfall is billed with its first hours).
- **Punch cards** (R20): bought prepaid and invoiced at once; one card per
  account that never expires; when it is used up a new block of the same size
  is invoiced at once and the customer and staff are told.
- **Invoices** (R21): lines go on the month's invoice (issued on the last day
  of the month, due 14 days later) unless a request's service total rises above
  1,000.00: then its open lines of the month are invoiced at once, separately,
  and staff are told. :meth:`Billing.statement` lists a month.

Money is ``Decimal`` rounded half-up to cents at each line; totals are sums of
lines, so they add up.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from babel.dates import format_date
from babel.numbers import format_decimal

from bot.desk import Desk, DeskError
from bot.i18n import Language
from bot.invoice_pdf import (
    WORDS,
    DocumentLine,
    InvoiceDocument,
    render_invoice,
    title_of,
)
from bot.texts import INVOICE_LINE_TEXTS, Texts, language_of, money_text
from channels.messages import ChannelName, utc_now
from sla_engine.billing import (
    ZERO,
    BillingTerms,
    Draw,
    PunchCard,
    RateCard,
    RateKind,
    allocate_hours,
    due_date,
    follow_quote,
    money,
    needs_separate_invoice,
    punch_card_price,
    quote_job,
    vat_of,
)
from sla_engine.billing import (
    hours as to_hours,
)
from sla_engine.errors import BillingError
from sla_engine.policy import Preset
from storage.billing import BillingRepository
from storage.database import Database, Session
from storage.direct import Direct
from storage.records import (
    AccountRecord,
    InvoiceKind,
    InvoiceLineRecord,
    InvoiceRecord,
    OutboundDraft,
    PunchCardRecord,
    QuoteRecord,
    QuoteState,
    TicketRecord,
)
from storage.repositories import AccountRepository, OutboxRepository, TicketRepository

KINDS = ("support", "service")
CAUSES = ("platform", "outside", "customer")  # customer: an outage caused in the customer's own domain (R17)
WORK_KINDS = {RateKind.MONTHLY.value, RateKind.PUNCH_CARD.value, RateKind.AD_HOC.value, RateKind.URGENT.value}
PAID_KINDS = {RateKind.AD_HOC.value, RateKind.URGENT.value}

# a clear answer to a quote: the reply starts with one of these words (and asks nothing)
_AGREE = re.compile(r"^(akkoord|accoord|agreed|agree|ja|yes|ok|oké|oke|okay|prima|goed|go)\b", re.IGNORECASE)
_DECLINE = re.compile(r"^(nee|no|niet akkoord|not agreed|geen akkoord|liever niet)\b", re.IGNORECASE)
# a customer asking for the balance: the whole message is one of these
BALANCE_WORDS = frozenset({"uren", "hours", "saldo", "balance", "mijn uren", "my hours", "strippenkaart",
                           "punch card", "tegoed"})

def quote_answer(text: str) -> QuoteState | None:
    """A customer's clear answer to a quote, from the first line of the reply; None when unclear."""
    first = next((line.strip() for line in text.strip().splitlines() if line.strip()), "")
    if not first or "?" in text:
        return None
    words = re.sub(r"[^\w\s'é-]", " ", first).strip()
    if _DECLINE.match(words):
        return QuoteState.DECLINED
    if _AGREE.match(words) and not re.search(r"\b(niet|not|geen)\b", words, re.IGNORECASE):
        return QuoteState.AGREED
    return None


def is_balance_request(text: str) -> bool:
    """True when the whole message asks for the hours balance ("uren", "hours", ...)."""
    return " ".join(re.sub(r"[^\w\s]", " ", text).lower().split()) in BALANCE_WORDS


def _hours_text(value: Decimal, language: Language) -> str:
    return format_decimal(value, format="#,##0.##", locale="nl_NL" if language == "nl" else "en_GB")


def _hours_or_blank(value: Decimal, language: Language) -> str:
    """Hours for a template's optional line: empty (the line left out) when there are none."""
    return _hours_text(value, language) if value > 0 else ""


def _card(record: PunchCardRecord | None) -> PunchCard | None:
    return PunchCard(record.block_hours, record.remaining, record.block_number) if record else None


def _quote_segments(quote: QuoteRecord) -> tuple[tuple[RateKind, Decimal, Decimal], ...]:
    """An agreed quote's hours by source, in the order the work uses them (kind, hours, rate)."""
    paid = RateKind.URGENT if quote.urgent else RateKind.AD_HOC
    parts = ((RateKind.MONTHLY, quote.monthly_hours, ZERO), (RateKind.PUNCH_CARD, quote.card_hours, ZERO),
             (paid, quote.paid_hours, quote.rate))
    return tuple(p for p in parts if p[1] > 0)


def _positive_hours(value: Decimal | str | float, refusal: str) -> Decimal:
    """``value`` as hours; a staff error when it is not a positive number."""
    try:
        result = to_hours(value)
    except BillingError as exc:
        raise DeskError(str(exc)) from None
    if result <= 0:
        raise DeskError(refusal)
    return result



@dataclass(frozen=True)
class QuoteResult:
    ref: str
    quote: QuoteRecord
    message_id: int


@dataclass(frozen=True)
class HoursResult:
    """What became of logged hours: their status and any lines, blocks or invoices they made."""

    ref: str
    entry_id: int
    status: str  # free | not_agreed | awaiting_cause | billed
    lines: tuple[InvoiceLineRecord, ...] = ()
    renewed_blocks: tuple[str, ...] = ()  # invoice numbers of new punch-card blocks
    separate_invoice: str | None = None


@dataclass(frozen=True)
class Balance:
    account: str
    month: str
    card: dict[str, Decimal | int] | None
    monthly: dict[str, Decimal] | None
    logged: Decimal
    billed: Decimal
    amount: Decimal


@dataclass(frozen=True)
class StatementInvoice:
    """An invoice on the month's statement: issued, or the month's invoice still to come (``draft``)."""

    number: str | None  # None: a draft, numbered when it is issued
    kind: str  # monthly | separate | punch_card
    issued_on: date
    due_on: date
    lines: tuple[InvoiceLineRecord, ...]
    vat: Decimal
    ticket: str | None = None
    delivery_state: str | None = None

    @property
    def draft(self) -> bool:
        return self.number is None

    @property
    def subtotal(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)

    @property
    def total(self) -> Decimal:
        """With VAT."""
        return self.subtotal + self.vat


def line_json(x: InvoiceLineRecord) -> dict[str, Any]:
    return {"date": x.day.isoformat(), "ticket": x.ticket_ref, "description": x.description,
            "hours": None if x.hours is None else str(x.hours), "rate": None if x.rate is None else str(x.rate),
            "amount": str(x.amount), "rate_kind": x.rate_kind}


@dataclass(frozen=True)
class Statement:
    """A month per account: its invoices (totals with VAT) and the hours used from the month or the punch card
    (usage: paid already, never invoiced again)."""

    month: str
    currency: str
    accounts: dict[str, tuple[StatementInvoice, ...]] = field(default_factory=dict)
    usage: dict[str, tuple[InvoiceLineRecord, ...]] = field(default_factory=dict)

    @property
    def total(self) -> Decimal:
        return sum((inv.total for invoices in self.accounts.values() for inv in invoices), ZERO)

    def names(self) -> list[str]:
        return sorted(set(self.accounts) | set(self.usage))

    def as_json(self) -> dict[str, Any]:
        return {
            "month": self.month, "currency": self.currency, "total": str(self.total),
            "accounts": [
                {"account": name, "total": str(sum((i.total for i in self.accounts.get(name, ())), ZERO)),
                 "invoices": [{"number": i.number, "draft": i.draft, "kind": i.kind, "ticket": i.ticket,
                               "issued_on": i.issued_on.isoformat(), "due_on": i.due_on.isoformat(),
                               "subtotal": str(i.subtotal), "vat": str(i.vat), "total": str(i.total),
                               "delivery_state": i.delivery_state, "lines": [line_json(x) for x in i.lines]}
                              for i in self.accounts.get(name, ())],
                 "usage": [line_json(x) for x in self.usage.get(name, ())]}
                for name in self.names()
            ],
        }


def month_bounds(month: str) -> tuple[date, date]:
    """``2026-11`` -> (2026-11-01, 2026-12-01)."""
    found = re.fullmatch(r"(\d{4})-(\d{2})", month.strip())
    if found is None or not 1 <= int(found.group(2)) <= 12:
        raise BillingError(f"a month is written YYYY-MM, not {month!r}")
    start = date(int(found.group(1)), int(found.group(2)), 1)
    end = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    return start, end


class Billing:
    """Staff's billing actions and the month's statement; see the module docstring."""

    def __init__(self, db: Database, preset: Preset, *, texts: Texts | None = None,
                 now: Callable[[], datetime] = utc_now, default_language: Language = "nl",
                 issuer_lines: tuple[str, ...] = ()) -> None:
        self.db = db
        self.preset = preset
        self.texts = texts or Texts()
        self.now = now
        self.desk = Desk(db, now)
        self.default_language = default_language
        self.issuer_lines = issuer_lines  # the sender's address, VAT and bank details on the invoice
        # the office calendar (opening hours, holidays) decides the working days invoices go out on
        self.calendar = preset.calendars.get("office") or next(iter(preset.calendars.values()))
        self.zone = self.calendar.zone

    @property
    def terms(self) -> BillingTerms:
        if self.preset.billing is None:
            raise DeskError(f"preset {self.preset.name} has no paid service: nothing to bill")
        return self.preset.billing

    def today(self) -> date:
        return self.now().astimezone(self.zone).date()

    # -- support or service (R18) ------------------------------------------------

    def classify(self, ref: str, kind: str, staff: str, *, reason: str | None = None) -> TicketRecord:
        """Staff confirm or change the intake's classification (R18), with their ``reason`` where they give one."""
        if kind not in KINDS:
            raise DeskError(f"a ticket is {' or '.join(KINDS)}, not {kind!r}")

        def work(s: Session) -> TicketRecord:
            tickets = TicketRepository(s)
            ticket = self._ticket(tickets, ref)
            now = self.now()
            tickets.update_ticket(ticket.id, kind=kind, kind_rule="staff", updated_at=now,
                                  kind_reasons=[f"set by {staff} (was {ticket.kind})",
                                                *([reason.strip()] if reason and reason.strip() else [])])
            if kind == "support":  # work that waited for an agreement is free after all
                repo = BillingRepository(s)
                repo.set_entry_status((e.id for e in repo.entries(ticket.id, "not_agreed")), "free")
            tickets.add_event("classified", now, ticket_id=ticket.id, actor=staff,
                              data={"kind": kind, "was": ticket.kind,
                                    **({"reason": reason.strip()} if reason and reason.strip() else {})})
            return tickets.get(ticket.id)

        return self.db.run(work)

    def record_cause(self, ref: str, cause: str, staff: str) -> tuple[TicketRecord, HoursResult | None]:
        """The root cause. R18: diagnosis on a platform bug is free, on an outside cause paid service. R17: an
        outage whose cause lay in the customer's own domain (``customer``) becomes a job at the urgent rate,
        at least the minimum (1 hour), billed at once."""
        if cause not in CAUSES:
            raise DeskError(f"the root cause is {', '.join(CAUSES[:-1])} or {CAUSES[-1]}, not {cause!r}")

        def work(s: Session) -> tuple[TicketRecord, HoursResult | None]:
            tickets, repo = TicketRepository(s), BillingRepository(s)
            ticket = self._ticket(tickets, ref)
            now = self.now()
            if cause == "customer":
                return self._outage_charged(s, ticket, staff)
            rule = next((r for r in self.preset.classification if r.root_cause == cause), None)
            kind = "support" if cause == "platform" else "service"
            tickets.update_ticket(ticket.id, root_cause=cause, kind=kind, updated_at=now,
                                  kind_rule=rule.name if rule else f"root_cause_{cause}",
                                  kind_reasons=[rule.reason if rule else f"root cause: {cause}", f"recorded by {staff}"])
            tickets.add_event("root_cause", now, ticket_id=ticket.id, actor=staff, data={"cause": cause})
            waiting = repo.entries(ticket.id, "awaiting_cause")
            result = None
            if cause == "platform" or not self._paid(ticket):
                repo.set_entry_status((e.id for e in waiting), "free")
            elif waiting:
                result = self._bill(s, tickets.get(ticket.id), [e.id for e in waiting],
                                    sum((e.hours for e in waiting), ZERO), None)
            return tickets.get(ticket.id), result

        return self.db.run(work)

    def _outage_charged(self, s: Session, ticket: TicketRecord, staff: str) -> tuple[TicketRecord, HoursResult]:
        """R17: the outage's cause lay in the customer's own domain; its hours so far (at least the minimum)
        are billed at the urgent rate, and so are hours logged on it later."""
        tickets, repo = TicketRepository(s), BillingRepository(s)
        if ticket.priority != "critical":
            raise DeskError(f"{ticket.ref} is not an outage (critical) ticket; its cause is platform or outside")
        self.terms  # noqa: B018 - a preset without rates cannot charge: say so before anything changes
        now = self.now()
        tickets.update_ticket(ticket.id, root_cause="customer", updated_at=now)
        tickets.add_event("root_cause", now, ticket_id=ticket.id, actor=staff,
                          data={"cause": "customer", "charged": "outage at the urgent rate (R17)"})
        waiting = [e for e in repo.entries(ticket.id) if e.status != "billed"]
        if not waiting:  # nothing logged yet: the minimum is billed now, on an entry of its own
            entry_id = repo.add_entry(ticket_id=ticket.id, staff=staff, hours=ZERO, activity="work",
                                      note="outage charge (R17)", status="free", billable=False, at=now)
            return tickets.get(ticket.id), self._bill(s, tickets.get(ticket.id), [entry_id], ZERO, None)
        return tickets.get(ticket.id), self._bill(s, tickets.get(ticket.id), [e.id for e in waiting],
                                                  sum((e.hours for e in waiting), ZERO), None)

    # -- quotes (R19, R20, R22) ------------------------------------------------------

    def quote(self, ref: str, estimate: Decimal | str | float, staff: str, *, urgent: bool = False) -> QuoteResult:
        """Send the customer what the work will cost (R20): the hours from the month's fixed hours, from the
        punch card and billed at the rate of the day (urgent: ad hoc at the urgent rate, the card left alone);
        work waits for the agreement (R19)."""
        terms = self.terms
        estimated = _positive_hours(estimate, "an estimate needs hours")

        def work(s: Session) -> QuoteResult:
            tickets, repo = TicketRepository(s), BillingRepository(s)
            ticket = self._ticket(tickets, ref)
            if not self._paid(ticket):
                raise DeskError(f"{ticket.ref}: plan {ticket.plan or '-'} has no paid service to quote")
            account = AccountRepository(s).get(ticket.account_id) if ticket.account_id else None
            card = terms.rate_on(self.today())
            monthly_left = self._monthly_left(repo, account, reserved_except=ticket.id)
            punch = repo.punch_card(account.id) if account else None
            made = quote_job(estimated, card, terms, monthly_remaining=monthly_left, punch_card=_card(punch),
                             urgent=urgent)
            now = self.now()
            quote_id = repo.add_quote(
                ticket_id=ticket.id, staff=staff, estimated_hours=made.estimated_hours,
                billed_hours=made.billed_hours, rate_kind=made.kind.value, rate=made.rate, total=made.total,
                urgent=urgent, rate_card=card.to_dict(), made_at=now, monthly_hours=made.monthly_hours,
                card_hours=made.card_hours, paid_hours=made.paid_hours, new_blocks=made.new_blocks,
                block_price=made.block_price)
            language = self._language(s, ticket, account)
            cur = terms.currency

            def h(value: Decimal) -> str:
                return _hours_or_blank(value, language)

            text = self.texts.render(
                "quote", language, contact_name=ticket.contact or "", ref=ticket.ref, company=self.preset.title,
                estimate=_hours_text(made.estimated_hours, language), billed=_hours_text(made.billed_hours, language),
                minimum=_hours_text(terms.minimum_hours, language), urgent=urgent,
                monthly_hours=h(made.monthly_hours), monthly_left=_hours_text(monthly_left, language),
                card_hours=h(made.card_hours), card_left=_hours_text(punch.remaining, language) if punch else "0",
                new_blocks=str(made.new_blocks) if made.new_blocks else "",
                block_hours=_hours_text(punch.block_hours, language) if punch else "",
                block_price=money_text(made.block_price, language, cur),
                paid_hours=h(made.paid_hours), rate=money_text(made.rate, language, cur),
                total=money_text(made.total, language, cur),
            ).text
            # a quote waits on the customer like a question does (R14)
            sent = self.desk.reply_in(s, ticket.ref, text, staff, clarify=True, purpose="quote")
            assert sent.message_id is not None
            repo.set_quote_message(quote_id, sent.message_id)
            tickets.add_event("quote_sent", now, ticket_id=ticket.id, actor=staff, message_id=sent.message_id,
                              data={"hours": str(made.estimated_hours), "rate_kind": made.kind.value,
                                    "monthly_hours": str(made.monthly_hours), "card_hours": str(made.card_hours),
                                    "paid_hours": str(made.paid_hours), "rate": str(made.rate),
                                    "total": str(made.total), "urgent": urgent})
            quote = repo.current_quote(ticket.id)
            assert quote is not None
            return QuoteResult(ticket.ref, quote, sent.message_id)

        return self.db.run(work)

    # -- hours --------------------------------------------------------------------

    def log_hours(self, ref: str, worked: Decimal | str | float, staff: str, *, diagnosis: bool = False,
                  note: str | None = None, at: datetime | None = None) -> HoursResult:
        """A time entry on ``ref``; billed at once when it is billable (see the module docstring)."""
        amount = _positive_hours(worked, "log a positive number of hours")

        def work(s: Session) -> HoursResult:
            tickets, repo = TicketRepository(s), BillingRepository(s)
            ticket = self._ticket(tickets, ref)
            activity = "diagnosis" if diagnosis or ticket.kind == "undetermined" else "work"
            quote = repo.current_quote(ticket.id)
            if ticket.root_cause == "customer" and ticket.priority == "critical":
                status = "billable"  # R17: an outage caused in the customer's own domain is charged
            elif not self._paid(ticket) or ticket.kind == "support" or (
                    activity == "diagnosis" and ticket.root_cause == "platform"):
                status = "free"
            elif activity == "diagnosis" and ticket.root_cause is None:
                status = "awaiting_cause"
            elif activity == "work" and (quote is None or quote.state != QuoteState.AGREED):
                status = "not_agreed"  # R19: work before the agreement is not billable
            else:
                status = "billable"
            entry_id = repo.add_entry(ticket_id=ticket.id, staff=staff, hours=amount, activity=activity, note=note,
                                      status="free" if status == "billable" else status, billable=False,
                                      quote_id=quote.id if quote and quote.state == QuoteState.AGREED else None,
                                      at=at or self.now())
            tickets.add_event("hours_logged", self.now(), ticket_id=ticket.id, actor=staff,
                              data={"hours": str(amount), "activity": activity, "status": status, "note": note})
            if status != "billable":
                return HoursResult(ticket.ref, entry_id, status)
            agreed = quote if quote and quote.state == QuoteState.AGREED and activity == "work" else None
            result = self._bill(s, ticket, [entry_id], amount, agreed)
            return HoursResult(ticket.ref, entry_id, "billed", result.lines, result.renewed_blocks,
                               result.separate_invoice)

        return self.db.run(work)

    def _bill(self, s: Session, ticket: TicketRecord, entry_ids: list[int], worked: Decimal,
              quote: QuoteRecord | None) -> HoursResult:
        """Bill ``worked`` hours of ``ticket`` and write their lines (R20, R21).

        With an agreed quote the hours follow it (its monthly hours, card hours and paid hours at its rate, in
        that order: the invoice matches the quote); hours beyond it are billed by the usual order (month, card,
        ad hoc at the quote's rate) and the customer is told at once, before any invoice. A job is billed at
        least the minimum (1 hour): the shortfall goes with its first hours."""
        terms = self.terms
        repo = BillingRepository(s)
        account = AccountRepository(s).get(ticket.account_id) if ticket.account_id else None
        if account is None:
            raise DeskError(f"{ticket.ref} has no account to bill; link it first")
        today = self.today()
        card = RateCard.from_dict(quote.rate_card) if quote else terms.rate_on(today)  # R22
        billed_entries = repo.entries(ticket.id, "billed")
        lines_before = repo.ticket_lines(ticket.id)
        worked_before = sum((e.hours for e in billed_entries), ZERO)
        billed_before = sum((x.hours or ZERO for x in lines_before if x.rate_kind in WORK_KINDS), ZERO)
        to_bill = max(worked_before + worked, terms.minimum_hours) - billed_before  # the 1-hour minimum per job
        repo.set_entry_status(entry_ids, "billed")
        if to_bill <= 0:
            return HoursResult(ticket.ref, entry_ids[-1], "billed")
        outage = ticket.priority == "critical" and ticket.root_cause == "customer"
        urgent = outage or bool(quote and quote.urgent)
        punch = repo.punch_card(account.id)
        state = _card(punch)
        draws: list[Draw] = []
        new_blocks: list[int] = []
        over = to_bill
        agreed = repo.agreed_quotes(ticket.id) if quote else []
        if agreed:
            segments = [seg for q in agreed for seg in _quote_segments(q)]
            taken, over = follow_quote(segments, billed_before, to_bill)
            for kind, size, rate in taken:
                if kind == RateKind.PUNCH_CARD and state is not None:
                    part = allocate_hours(size, card, terms, punch_card=state)
                    draws += part.draws
                    new_blocks += part.new_blocks
                    state = part.punch_card
                elif kind == RateKind.PUNCH_CARD:  # the card is gone: the agreed hours cost what was quoted
                    draws.append(Draw(RateKind.PUNCH_CARD, size, ZERO, ZERO))
                else:
                    draws.append(Draw(kind, size, rate, money(size * rate)))
        if over > 0:
            part = allocate_hours(over, card, terms, monthly_remaining=ZERO if outage else
                                  self._monthly_left(repo, account), punch_card=state, urgent=urgent)
            draws += part.draws
            new_blocks += part.new_blocks
            state = part.punch_card
        language = language_of(account.language, default=self.default_language)
        words = INVOICE_LINE_TEXTS[language]
        new_ids = []
        for draw in draws:
            description = words[draw.kind.value].format(ref=ticket.ref, hours=_hours_text(draw.hours, language),
                                                        block=draw.block_number)
            new_ids.append(repo.add_line(
                account_id=account.id, ticket_id=ticket.id, description=description, hours=draw.hours,
                rate=draw.rate if draw.kind.value in PAID_KINDS else None, amount=draw.amount, day=today,
                invoice=(InvoiceKind.MONTHLY if draw.amount > 0 else InvoiceKind.USAGE).value, rate_kind=draw.kind.value,
                block_number=draw.block_number, time_entry_id=entry_ids[-1]))
        renewed: list[str] = []
        if punch is not None and state is not None:
            repo.update_punch_card(punch.id, state.remaining, state.block_number)
            for block in new_blocks:
                renewed.append(self._invoice_block(s, account, punch.block_hours, block, ticket))
        if agreed and over > 0:
            self._tell_over_quote(s, ticket, account, agreed, over, draws, card)
        separate = self._separate_if_above(s, ticket, account)
        lines = tuple(x for x in repo.ticket_lines(ticket.id) if x.id in new_ids)
        return HoursResult(ticket.ref, entry_ids[-1], "billed", lines, tuple(renewed), separate)

    def _tell_over_quote(self, s: Session, ticket: TicketRecord, account: AccountRecord, agreed: list[QuoteRecord],
                         over: Decimal, draws: list[Draw], card: RateCard) -> None:
        """R20: staff logged more hours than quoted; the customer hears what they cost before any invoice."""
        quoted = sum((q.billed_hours for q in agreed), ZERO)
        beyond: dict[RateKind, Decimal] = {}
        left = over
        for draw in reversed(draws):  # the hours over the quote are the last ones billed
            used = min(draw.hours, left)
            beyond[draw.kind] = beyond.get(draw.kind, ZERO) + used
            left -= used
            if left <= 0:
                break
        paid_kind = next((k for k in beyond if k.value in PAID_KINDS), RateKind.AD_HOC)
        paid = beyond.get(paid_kind, ZERO)
        rate = card.rate(paid_kind)
        language = self._language(s, ticket, account)
        cur = self.terms.currency

        def h(value: Decimal) -> str:
            return _hours_or_blank(value, language)

        text = self.texts.render(
            "over_quote", language, contact_name=ticket.contact or "", ref=ticket.ref, company=self.preset.title,
            over=_hours_text(over, language), quoted=_hours_text(quoted, language),
            monthly_hours=h(beyond.get(RateKind.MONTHLY, ZERO)), card_hours=h(beyond.get(RateKind.PUNCH_CARD, ZERO)),
            paid_hours=h(paid), rate=money_text(rate, language, cur), amount=money_text(money(paid * rate), language, cur),
        ).text
        self.desk.send(s, ticket, text, "over_quote")
        TicketRepository(s).add_event("over_quote", self.now(), ticket_id=ticket.id, data={
            "quoted": str(quoted), "over": str(over), "billed": str(money(paid * rate))})

    def _invoice_block(self, s: Session, account: AccountRecord, block_hours: Decimal, block: int,
                       ticket: TicketRecord | None) -> str:
        """Invoice a punch-card block at once (prepaid, R20) and send it; tell the customer and staff. Its
        number."""
        terms = self.terms
        repo = BillingRepository(s)
        today, now = self.today(), self.now()
        card = terms.rate_on(today)
        price = punch_card_price(block_hours, card, terms)
        language = language_of(account.language, default=self.default_language)
        line_id = repo.add_line(
            account_id=account.id, ticket_id=None, description=INVOICE_LINE_TEXTS[language]["block"].format(
                block=block, hours=_hours_text(block_hours, language)), hours=block_hours, rate=card.punch_card,
            amount=price, day=today, invoice=InvoiceKind.PUNCH_CARD.value, rate_kind=None, block_number=block)
        issued = self._issue(s, account, InvoiceKind.PUNCH_CARD, [line_id], today, ticket=None)
        tickets = TicketRepository(s)
        data = {"account": account.name, "block": block, "hours": str(block_hours), "price": str(price),
                "invoice": issued.number, "due_on": issued.due_on.isoformat()}
        if block > 1 and ticket is not None:
            tickets.add_event("punch_card_renewed", now, ticket_id=ticket.id, data=data)
            text = self.texts.render(
                "punch_card_renewed", self._language(s, ticket, account), contact_name=ticket.contact or "",
                company=self.preset.title, block_hours=_hours_text(block_hours, language),
                price=money_text(price, language, terms.currency), invoice=issued.number,
                due_on=format_date(issued.due_on, "d MMMM y", locale=language)).text
            self.desk.send(s, ticket, text, "punch_card_renewed")
        else:
            tickets.add_event("punch_card_bought", now, data=data)
        return issued.number

    def _separate_if_above(self, s: Session, ticket: TicketRecord, account: AccountRecord) -> str | None:
        """R21: a job (one ticket's paid hours) above the threshold is invoiced at once, on its own; once it
        was, hours logged on it afterwards go on the monthly invoice as lines of that job."""
        terms = self.terms
        repo = BillingRepository(s)
        if repo.has_separate_invoice(ticket.id):
            return None
        lines = repo.ticket_lines(ticket.id)
        total = sum((x.amount for x in lines if x.rate_kind in PAID_KINDS), ZERO)
        open_lines = [x for x in lines if x.invoice == InvoiceKind.MONTHLY and x.invoice_id is None and x.amount > 0]
        if not needs_separate_invoice(total, terms) or not open_lines:
            return None
        issued = self._issue(s, account, InvoiceKind.SEPARATE, [x.id for x in open_lines], self.today(), ticket=ticket)
        TicketRepository(s).add_event("separate_invoice", self.now(), ticket_id=ticket.id, data={
            "invoice": issued.number, "amount": str(issued.subtotal), "job_total": str(total),
            "due_on": issued.due_on.isoformat(), "threshold": str(terms.separate_invoice_above)})
        return issued.number

    # -- invoices (R21): issued, rendered, sent -----------------------------------------

    def _issue(self, s: Session, account: AccountRecord, kind: InvoiceKind, line_ids: list[int], issued_on: date, *,
               ticket: TicketRecord | None, month: str | None = None) -> InvoiceRecord:
        """Issue one invoice of ``line_ids`` in the caller's transaction: its number (gap-free per year), its
        totals with VAT apart, its PDF, and its mail to the billing address queued in the same transaction
        (sent exactly once by the outbox). Never for 0.00: the caller only brings lines with an amount."""
        terms = self.terms
        repo = BillingRepository(s)
        due = due_date(issued_on, terms)
        invoice_id, number = repo.add_invoice(account.id, kind.value, issued_on, due, self.now(),
                                              ticket.id if ticket else None, month)
        repo.move_to_invoice(line_ids, invoice_id, kind.value)
        lines = repo.invoice_lines(invoice_id)
        subtotal = sum((x.amount for x in lines), ZERO)
        if subtotal <= 0:
            raise BillingError(f"invoice {number} would come to {subtotal}: an invoice is never issued for 0.00")
        vat = vat_of(subtotal, terms)
        card = repo.punch_card(account.id)
        doc = self._document(s, account, repo.invoice_by_number(number), lines)  # made once: the PDF and the mail
        repo.finish_invoice(invoice_id, subtotal=subtotal, vat=vat, total=subtotal + vat,
                            card_balance=card.remaining if card else None, pdf=render_invoice(doc))
        record = repo.invoice_by_number(number)
        assert record is not None
        self._send_invoice(s, account, record, doc)
        TicketRepository(s).add_event("invoice_issued", self.now(), ticket_id=ticket.id if ticket else None, data={
            "invoice": number, "kind": kind.value, "account": account.name, "subtotal": str(subtotal), "vat": str(vat),
            "total": str(subtotal + vat), "due_on": due.isoformat(), "month": month})
        final = repo.invoice_by_number(number)
        assert final is not None
        return final

    def _document(self, s: Session, account: AccountRecord, invoice: InvoiceRecord | None,
                  lines: list[InvoiceLineRecord]) -> InvoiceDocument:
        assert invoice is not None
        terms = self.terms
        repo = BillingRepository(s)
        usage: list[InvoiceLineRecord] = []
        if invoice.kind == InvoiceKind.MONTHLY and invoice.month:
            start, end = month_bounds(invoice.month)
            usage = [x for x in repo.account_lines(account.id, start, end) if x.invoice == InvoiceKind.USAGE]
        card = repo.punch_card(account.id)
        subtotal = sum((x.amount for x in lines), ZERO)
        vat = invoice.vat if invoice.vat is not None else vat_of(subtotal, terms)
        balance = invoice.card_balance if invoice.card_balance is not None else (card.remaining if card else None)

        def doc_line(x: InvoiceLineRecord) -> DocumentLine:
            return DocumentLine(x.description, x.hours, x.rate, x.amount, x.day)

        return InvoiceDocument(
            number=invoice.number, kind=invoice.kind, issued_on=invoice.issued_on, due_on=invoice.due_on,
            issuer=self.preset.title, issuer_lines=self.issuer_lines, account=account.name,
            recipient=self._billing_address(s, account), language=language_of(account.language,
                                                                             default=self.default_language),
            currency=terms.currency, lines=tuple(doc_line(x) for x in lines), subtotal=subtotal,
            vat_percent=terms.vat_percent, vat=vat, total=subtotal + vat, usage=tuple(doc_line(x) for x in usage),
            month=invoice.month, ticket_ref=invoice.ticket_ref,
            card_balance=balance if card else None, card_block_hours=card.block_hours if card else None)

    def _billing_address(self, s: Session, account: AccountRecord) -> str | None:
        """Where invoices go (R21): the account's billing address, else its contact person's e-mail."""
        if account.billing_email:
            return account.billing_email
        contacts = AccountRepository(s).contacts_of(account.id)
        person = next((c for c in contacts if c.role == "contact" and c.emails), None)
        person = person or next((c for c in contacts if c.emails), None)
        return person.emails[0] if person else None

    def _send_invoice(self, s: Session, account: AccountRecord, invoice: InvoiceRecord,
                      doc: InvoiceDocument | None = None) -> int | None:
        """Queue the invoice's mail with its PDF (the outbox sends it once, retried like every mail); the
        message id, None when the account has no e-mail address (staff are told)."""
        repo = BillingRepository(s)
        recipient = self._billing_address(s, account)
        now = self.now()
        if recipient is None:
            TicketRepository(s).add_event("invoice_not_sent", now, data={
                "invoice": invoice.number, "account": account.name,
                "reason": "the account has no billing_email and no contact with an e-mail address"})
            return None
        pdf = repo.invoice_pdf(invoice.id)
        assert pdf is not None
        language = language_of(account.language, default=self.default_language)
        doc = doc or self._document(s, account, invoice, repo.invoice_lines(invoice.id))
        person = next((c for c in AccountRepository(s).contacts_of(account.id) if c.role == "contact"), None)
        cur = self.terms.currency
        text = self.texts.render(
            "invoice", language, contact_name=person.name if person else account.name, number=invoice.number,
            company=self.preset.title, title=title_of(doc), total=money_text(doc.total, language, cur),
            vat=money_text(doc.vat, language, cur), due_on=format_date(invoice.due_on, "d MMMM y", locale=language),
            days=str((invoice.due_on - invoice.issued_on).days),
            card_left=_hours_text(doc.card_balance, language) if doc.card_balance is not None else "").text
        subject = f"{WORDS[language]['invoice']} {invoice.number} - {self.preset.title}"
        message_id = OutboxRepository(s).queue(OutboundDraft(
            channel=ChannelName.EMAIL.value, recipient=recipient, text=text, purpose="invoice",
            account_id=account.id, subject=subject, language=language, staff=None,
            files=((f"{invoice.number}.pdf", "application/pdf", pdf),)), now)
        repo.set_invoice_message(invoice.id, message_id)
        return message_id

    def issue_due(self, on: date | None = None) -> list[InvoiceRecord]:
        """Issue the monthly invoices that are due (R21): each account's lines of a month that ended, on the
        first working day after it (later when slabot was not running then), one invoice per account and
        month, none for 0.00. Safe to run often and from several workers: each runs in one transaction and a
        month's invoice exists once (a unique key). ``on``: issue as on that day (not in the future), e.g. to
        catch up."""
        today = self.today()
        if on is not None and on > today:
            raise DeskError(f"invoices are not issued ahead of time: {on} lies after today ({today})")
        today = on or today
        current = today.replace(day=1)

        def work(s: Session) -> list[InvoiceRecord]:
            repo = BillingRepository(s)
            groups: dict[tuple[int, str], list[InvoiceLineRecord]] = {}
            for x in repo.open_monthly_lines(current):
                groups.setdefault((x.account_id, f"{x.day:%Y-%m}"), []).append(x)
            issued: list[InvoiceRecord] = []
            accounts = AccountRepository(s)
            for (account_id, month), lines in sorted(groups.items(), key=lambda g: (g[0][1], g[0][0])):
                if self.invoice_day(month) > today or sum((x.amount for x in lines), ZERO) <= 0:
                    continue
                if repo.monthly_invoice_exists(account_id, month):
                    continue  # issued already: a line dated in it later waits for the next month's
                account = accounts.get(account_id)
                assert account is not None
                issued.append(self._issue(s, account, InvoiceKind.MONTHLY, [x.id for x in lines], today, ticket=None,
                                          month=month))
            return issued

        return self.db.run(work)

    def invoice_day(self, month: str) -> date:
        """The first working day after ``month`` (YYYY-MM) ends: when its invoice goes out."""
        _, end = month_bounds(month)
        day = end
        while not self.calendar.is_working_day(day):
            day += timedelta(days=1)
        return day

    def invoices(self, month: str | None = None) -> list[InvoiceRecord]:
        """The invoices issued (in ``month``, YYYY-MM), with the delivery state of their mail."""
        if month is None:
            start, end = date.min, date.max
        else:
            try:
                start, end = month_bounds(month)
            except BillingError as exc:
                raise DeskError(str(exc)) from None
        return self.db.run(lambda s: BillingRepository(s).invoices_between(start, end))

    def invoice(self, number: str) -> tuple[InvoiceRecord, tuple[InvoiceLineRecord, ...], bytes]:
        """One invoice: its record, its lines and its PDF as sent."""
        def work(s: Session) -> tuple[InvoiceRecord, tuple[InvoiceLineRecord, ...], bytes]:
            repo = BillingRepository(s)
            found = repo.invoice_by_number(number.strip())
            if found is None:
                raise DeskError(f"no invoice {number!r}")
            pdf = repo.invoice_pdf(found.id)
            assert pdf is not None
            return found, tuple(repo.invoice_lines(found.id)), pdf

        return self.db.run(work)

    def resend(self, number: str, staff: str) -> InvoiceRecord:
        """Send an invoice's mail again, with the same PDF (explicit: ``--resend``)."""
        def work(s: Session) -> InvoiceRecord:
            repo = BillingRepository(s)
            found = repo.invoice_by_number(number.strip())
            if found is None:
                raise DeskError(f"no invoice {number!r}")
            account = AccountRepository(s).get(found.account_id)
            assert account is not None
            if self._send_invoice(s, account, found) is None:
                raise DeskError(f"{account.name} has no billing_email and no contact with an e-mail address")
            TicketRepository(s).add_event("invoice_resent", self.now(), actor=staff, data={"invoice": found.number})
            again = repo.invoice_by_number(found.number)
            assert again is not None
            return again

        return self.db.run(work)

    # -- punch cards (R20) -------------------------------------------------------

    def buy_punch_card(self, account_name: str, block_hours: Decimal | str | float, staff: str) -> tuple[str, Decimal]:
        """A prepaid punch card for the account, invoiced at once; (invoice number, price)."""
        terms = self.terms
        try:
            size = to_hours(block_hours)
            price = punch_card_price(size, terms.rate_on(self.today()), terms)
        except BillingError as exc:
            raise DeskError(str(exc)) from None

        def work(s: Session) -> tuple[str, Decimal]:
            account = AccountRepository(s).by_name(account_name)
            if account is None:
                raise DeskError(f"no account {account_name!r}")
            repo = BillingRepository(s)
            existing = repo.punch_card(account.id)
            if existing is not None:
                raise DeskError(f"{account.name} has a punch card already ({existing.remaining} of "
                                f"{existing.block_hours} hours left); it renews itself when used up")
            repo.add_punch_card(account.id, size, self.now())
            number = self._invoice_block(s, account, size, 1, None)
            TicketRepository(s).add_event("punch_card_bought", self.now(), actor=staff,
                                          data={"account": account.name, "hours": str(size), "invoice": number})
            return number, price

        return self.db.run(work)

    # -- the customer's view ------------------------------------------------------

    def balance(self, account_name: str) -> Balance:
        def work(s: Session) -> Balance:
            account = AccountRepository(s).by_name(account_name)
            if account is None:
                raise DeskError(f"no account {account_name!r}")
            return self.balance_of(Direct.of(s), account)

        return self.db.run(work)

    def balance_of(self, d: Direct, account: AccountRecord) -> Balance:
        """The punch-card balance and this month's hours of ``account`` (also inside the intake)."""
        repo = BillingRepository(d)
        today = self.today()
        start = today.replace(day=1)
        end = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
        card = repo.punch_card(account.id)
        entries = repo.account_entries(account.id, self._instant(start), self._instant(end))
        lines = [x for x in repo.account_lines(account.id, start, end) if x.rate_kind in WORK_KINDS]
        monthly = None
        if self._monthly_hours(account):
            assert account.monthly_hours is not None
            left = self._monthly_left(repo, account)
            monthly = {"total": account.monthly_hours, "used": account.monthly_hours - left, "left": left}
        return Balance(
            account.name, start.strftime("%Y-%m"),
            {"remaining": card.remaining, "block_hours": card.block_hours, "block_number": card.block_number}
            if card else None,
            monthly, sum((e.hours for e in entries), ZERO), sum((x.hours or ZERO for x in lines), ZERO),
            sum((x.amount for x in repo.account_lines(account.id, start, end)), ZERO),
        )

    def balance_values(self, balance: Balance, language: Language, contact_name: str) -> dict[str, Any]:
        """What the ``balance`` template shows, written out in ``language``."""
        def h(value: Decimal | int) -> str:
            return _hours_text(Decimal(value), language)

        terms = self.preset.billing
        return {
            "contact_name": contact_name, "account": balance.account, "company": self.preset.title,
            "month": format_date(date.fromisoformat(balance.month + "-01"), "MMMM y", locale=language),
            "card": {k: h(v) for k, v in balance.card.items()} if balance.card else None,
            "monthly": {k: h(v) for k, v in balance.monthly.items()} if balance.monthly else None,
            "logged": h(balance.logged), "billed": h(balance.billed),
            "amount": money_text(balance.amount, language, terms.currency if terms else "EUR"),
        }

    # -- the month's statement (R21) ----------------------------------------------

    def statement(self, month: str) -> Statement:
        """Per account: the month's invoice (issued, or a draft of the lines waiting for it; none for 0.00), the
        invoices issued at once that month, and the hours used from the month's hours or the punch card."""
        terms = self.terms
        try:
            start, end = month_bounds(month)
        except BillingError as exc:
            raise DeskError(str(exc)) from None
        name = f"{start:%Y-%m}"

        def work(s: Session) -> Statement:
            repo = BillingRepository(s)
            per_account: dict[str, list[StatementInvoice]] = {}
            usage: dict[str, list[InvoiceLineRecord]] = {}
            waiting: dict[str, list[InvoiceLineRecord]] = {}
            for x in repo.lines_between(start, end):
                if x.invoice == InvoiceKind.USAGE:
                    usage.setdefault(x.account, []).append(x)
                elif x.invoice == InvoiceKind.MONTHLY and x.invoice_id is None:
                    waiting.setdefault(x.account, []).append(x)
            issued = [i for i in repo.invoices_for_month(name)]
            issued += [i for i in repo.invoices_between(start, end) if i.kind != "monthly"]
            for invoice in issued:
                per_account.setdefault(invoice.account, []).append(StatementInvoice(
                    invoice.number, invoice.kind, invoice.issued_on, invoice.due_on,
                    tuple(repo.invoice_lines(invoice.id)), invoice.vat or ZERO, invoice.ticket_ref,
                    invoice.delivery_state))
            day = self.invoice_day(name)
            for account, lines in waiting.items():
                subtotal = sum((x.amount for x in lines), ZERO)
                if subtotal > 0:
                    per_account.setdefault(account, []).append(StatementInvoice(
                        None, "monthly", day, due_date(day, terms), tuple(lines), vat_of(subtotal, terms)))
            return Statement(name, terms.currency,
                             {n: tuple(sorted(per_account[n], key=lambda i: (i.issued_on, i.number or "~")))
                              for n in sorted(per_account)},
                             {n: tuple(usage[n]) for n in sorted(usage)})

        return self.db.run(work)

    # -- helpers ------------------------------------------------------------------

    def _ticket(self, tickets: TicketRepository, ref: str) -> TicketRecord:
        ticket = tickets.by_ref(ref)
        if ticket is None:
            raise DeskError(f"no ticket {ref}")
        return ticket

    def _paid(self, ticket: TicketRecord) -> bool:
        """Whether the ticket's plan has paid service at all."""
        if self.preset.billing is None or ticket.plan is None:
            return False
        try:
            return self.preset.plan(ticket.plan).paid_service
        except Exception:  # noqa: BLE001 - a plan gone from the preset bills nothing
            return False

    def _monthly_hours(self, account: AccountRecord | None) -> bool:
        if account is None or not account.monthly_hours:
            return False
        try:
            return self.preset.plan(account.plan).monthly_hours
        except Exception:  # noqa: BLE001
            return False

    def _monthly_left(self, repo: BillingRepository, account: AccountRecord | None, *,
                      reserved_except: int | None = None) -> Decimal:
        """Ondersteuning's fixed hours left this month (0 for other plans). With ``reserved_except`` (a quote
        being made for that ticket) the hours other open quotes promised and not yet used count as used, so
        two quotes never promise the same hours."""
        if account is None or not self._monthly_hours(account):
            return ZERO
        assert account.monthly_hours is not None
        start = self.today().replace(day=1)
        end = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
        used = sum((x.hours or ZERO for x in repo.account_lines(account.id, start, end)
                    if x.rate_kind == RateKind.MONTHLY.value), ZERO)
        if reserved_except is not None:
            used += repo.reserved_monthly_hours(account.id, reserved_except)
        return max(account.monthly_hours - used, ZERO)

    def _instant(self, day: date) -> datetime:
        return datetime.combine(day, time(0), self.zone)

    def _language(self, s: Session, ticket: TicketRecord, account: AccountRecord | None) -> Language:
        contact = AccountRepository(s).contact(ticket.contact_id) if ticket.contact_id else None
        return language_of(contact.language if contact else None, account.language if account else None,
                           default=self.default_language)


__all__ = ["Balance", "Billing", "HoursResult", "QuoteResult", "Statement", "StatementInvoice", "is_balance_request",
           "month_bounds", "quote_answer"]


def statement_text(statement: Statement) -> str:
    """The statement as a plain-text table (``slabot billing statement``, the demo)."""
    rows = [f"Statement {statement.month} ({statement.currency}; totals with VAT)", ""]
    if not statement.names():
        rows.append("nothing billed or used this month")

    def line_row(x: InvoiceLineRecord) -> str:
        hours = "" if x.hours is None else f"{x.hours} h"
        rate = "" if x.rate is None else f"x {x.rate}"
        return f"    {x.day}  {x.description[:58]:<58} {hours:>8} {rate:>10} {x.amount:>10}"

    for name in statement.names():
        invoices = statement.accounts.get(name, ())
        rows.append(name)
        for inv in invoices:
            what = f"invoice {inv.number}" if inv.number else "invoice to come"
            sent = f", mail {inv.delivery_state}" if inv.delivery_state else ""
            rows.append(f"  {what} ({inv.kind.replace('_', ' ')}{', ' + inv.ticket if inv.ticket else ''}): "
                        f"{'to be issued' if inv.draft else 'issued'} {inv.issued_on}, due {inv.due_on}{sent}")
            rows.extend(line_row(x) for x in inv.lines)
            rows.append(f"    {'subtotal':<71} {inv.subtotal:>20}")
            rows.append(f"    {'VAT':<71} {inv.vat:>20}")
            rows.append(f"    {'total':<71} {inv.total:>20}")
        usage = statement.usage.get(name, ())
        if usage:
            rows.append("  used from the month's hours or the punch card (paid already, not invoiced):")
            rows.extend(line_row(x) for x in usage)
        rows.append(f"  {'account total':<73} {sum((i.total for i in invoices), Decimal(0)):>20}")
        rows.append("")
    rows.append(f"{'total':<75} {statement.total:>20}")
    return "\n".join(rows) + "\n"
