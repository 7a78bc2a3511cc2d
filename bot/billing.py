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
from bot.texts import INVOICE_LINE_TEXTS, Texts, language_of, money_text
from channels.messages import utc_now
from sla_engine.billing import (
    ZERO,
    BillingTerms,
    PunchCard,
    RateCard,
    RateKind,
    allocate_hours,
    due_date,
    make_quote,
    needs_separate_invoice,
    punch_card_price,
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
    InvoiceLineRecord,
    QuoteRecord,
    QuoteState,
    TicketRecord,
)
from storage.repositories import AccountRepository, TicketRepository

KINDS = ("support", "service")
CAUSES = ("platform", "outside")
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
    number: str
    kind: str  # monthly | separate | punch_card
    issued_on: date
    due_on: date
    lines: tuple[InvoiceLineRecord, ...]
    ticket: str | None = None

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)


@dataclass(frozen=True)
class Statement:
    month: str
    currency: str
    accounts: dict[str, tuple[StatementInvoice, ...]] = field(default_factory=dict)

    @property
    def total(self) -> Decimal:
        return sum((inv.total for invoices in self.accounts.values() for inv in invoices), ZERO)

    def as_json(self) -> dict[str, Any]:
        def line(x: InvoiceLineRecord) -> dict[str, Any]:
            return {"date": x.day.isoformat(), "ticket": x.ticket_ref, "description": x.description,
                    "hours": None if x.hours is None else str(x.hours), "rate": None if x.rate is None else str(x.rate),
                    "amount": str(x.amount), "rate_kind": x.rate_kind}

        return {
            "month": self.month, "currency": self.currency, "total": str(self.total),
            "accounts": [
                {"account": name, "total": str(sum((i.total for i in invoices), ZERO)),
                 "invoices": [{"number": i.number, "kind": i.kind, "ticket": i.ticket,
                               "issued_on": i.issued_on.isoformat(), "due_on": i.due_on.isoformat(),
                               "total": str(i.total), "lines": [line(x) for x in i.lines]} for i in invoices]}
                for name, invoices in self.accounts.items()
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
                 now: Callable[[], datetime] = utc_now, default_language: Language = "nl") -> None:
        self.db = db
        self.preset = preset
        self.texts = texts or Texts()
        self.now = now
        self.desk = Desk(db, now)
        self.default_language = default_language
        self.zone = next(iter(preset.calendars.values())).zone

    @property
    def terms(self) -> BillingTerms:
        if self.preset.billing is None:
            raise DeskError(f"preset {self.preset.name} has no paid service: nothing to bill")
        return self.preset.billing

    def today(self) -> date:
        return self.now().astimezone(self.zone).date()

    # -- support or service (R18) ------------------------------------------------

    def classify(self, ref: str, kind: str, staff: str) -> TicketRecord:
        """Staff confirm or change the intake's classification."""
        if kind not in KINDS:
            raise DeskError(f"a ticket is {' or '.join(KINDS)}, not {kind!r}")

        def work(s: Session) -> TicketRecord:
            tickets = TicketRepository(s)
            ticket = self._ticket(tickets, ref)
            now = self.now()
            tickets.update_ticket(ticket.id, kind=kind, kind_rule="staff", updated_at=now,
                                  kind_reasons=[f"set by {staff} (was {ticket.kind})"])
            if kind == "support":  # work that waited for an agreement is free after all
                repo = BillingRepository(s)
                repo.set_entry_status((e.id for e in repo.entries(ticket.id, "not_agreed")), "free")
            tickets.add_event("classified", now, ticket_id=ticket.id, actor=staff,
                              data={"kind": kind, "was": ticket.kind})
            return tickets.get(ticket.id)

        return self.db.run(work)

    def record_cause(self, ref: str, cause: str, staff: str) -> tuple[TicketRecord, HoursResult | None]:
        """The root cause (R18): diagnosis on a platform bug is free, on an outside cause paid service."""
        if cause not in CAUSES:
            raise DeskError(f"the root cause is {' or '.join(CAUSES)}, not {cause!r}")

        def work(s: Session) -> tuple[TicketRecord, HoursResult | None]:
            tickets, repo = TicketRepository(s), BillingRepository(s)
            ticket = self._ticket(tickets, ref)
            now = self.now()
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

    # -- quotes (R19, R22) --------------------------------------------------------

    def quote(self, ref: str, estimate: Decimal | str | float, staff: str, *, urgent: bool = False) -> QuoteResult:
        """Send the customer an hour estimate at the rate of the day; work waits for the agreement."""
        terms = self.terms
        estimated = _positive_hours(estimate, "an estimate needs hours")

        def work(s: Session) -> QuoteResult:
            tickets, repo = TicketRepository(s), BillingRepository(s)
            ticket = self._ticket(tickets, ref)
            if not self._paid(ticket):
                raise DeskError(f"{ticket.ref}: plan {ticket.plan or '-'} has no paid service to quote")
            account = AccountRepository(s).get(ticket.account_id) if ticket.account_id else None
            card = terms.rate_on(self.today())
            monthly_left = self._monthly_left(repo, account)
            punch = repo.punch_card(account.id) if account else None
            billed = max(estimated, terms.minimum_hours)
            if monthly_left >= billed:
                kind = RateKind.MONTHLY
            elif punch is not None:
                kind = RateKind.PUNCH_CARD
            else:
                kind = RateKind.URGENT if urgent else RateKind.AD_HOC
            made = make_quote(estimated, card, terms, kind)
            now = self.now()
            quote_id = repo.add_quote(ticket_id=ticket.id, staff=staff, estimated_hours=made.estimated_hours,
                                      billed_hours=made.billed_hours, rate_kind=kind.value, rate=made.rate,
                                      total=made.total, urgent=urgent, rate_card=card.to_dict(), made_at=now)
            language = self._language(s, ticket, account)
            cur = terms.currency
            text = self.texts.render(
                "quote", language, contact_name=ticket.contact or "", ref=ticket.ref, company=self.preset.title,
                estimate=_hours_text(made.estimated_hours, language), billed=_hours_text(made.billed_hours, language),
                kind=kind.value, rate=money_text(made.rate, language, cur), total=money_text(made.total, language, cur),
                minimum=_hours_text(terms.minimum_hours, language), urgent=urgent,
                monthly_left=_hours_text(monthly_left, language),
                card_left=_hours_text(punch.remaining, language) if punch else "0",
            ).text
            # a quote waits on the customer like a question does (R14)
            sent = self.desk.reply_in(s, ticket.ref, text, staff, clarify=True, purpose="quote")
            assert sent.message_id is not None
            repo.set_quote_message(quote_id, sent.message_id)
            tickets.add_event("quote_sent", now, ticket_id=ticket.id, actor=staff, message_id=sent.message_id,
                              data={"hours": str(made.estimated_hours), "rate_kind": kind.value,
                                    "rate": str(made.rate), "total": str(made.total)})
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
            if not self._paid(ticket) or ticket.kind == "support" or (
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
        """Allocate ``worked`` billable hours of ``ticket`` and write their lines (R20, R21)."""
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
        to_bill = max(worked_before + worked, terms.minimum_hours) - billed_before  # the 1-hour minimum per request
        repo.set_entry_status(entry_ids, "billed")
        if to_bill <= 0:
            return HoursResult(ticket.ref, entry_ids[-1], "billed")
        punch = repo.punch_card(account.id)
        allocation = allocate_hours(
            to_bill, card, terms, monthly_remaining=self._monthly_left(repo, account),
            punch_card=PunchCard(punch.block_hours, punch.remaining, punch.block_number) if punch else None,
            urgent=bool(quote and quote.urgent),
        )
        language = language_of(account.language, default=self.default_language)
        words = INVOICE_LINE_TEXTS[language]
        new_ids = []
        for draw in allocation.draws:
            description = words[draw.kind.value].format(ref=ticket.ref, hours=_hours_text(draw.hours, language),
                                                        block=draw.block_number)
            new_ids.append(repo.add_line(
                account_id=account.id, ticket_id=ticket.id, description=description, hours=draw.hours,
                rate=draw.rate if draw.kind.value in PAID_KINDS else None, amount=draw.amount, day=today,
                invoice="monthly", rate_kind=draw.kind.value, block_number=draw.block_number,
                time_entry_id=entry_ids[-1]))
        renewed: list[str] = []
        if punch is not None and allocation.punch_card is not None:
            repo.update_punch_card(punch.id, allocation.punch_card.remaining, allocation.punch_card.block_number)
            for block in allocation.new_blocks:
                renewed.append(self._invoice_block(s, account, punch.block_hours, block, ticket))
        separate = self._separate_if_above(s, ticket, account, today)
        lines = tuple(x for x in repo.ticket_lines(ticket.id) if x.id in new_ids)
        return HoursResult(ticket.ref, entry_ids[-1], "billed", lines, tuple(renewed), separate)

    def _invoice_block(self, s: Session, account: AccountRecord, block_hours: Decimal, block: int,
                       ticket: TicketRecord | None) -> str:
        """Invoice a punch-card block at once (prepaid, R20); tell the customer and staff. Its number."""
        terms = self.terms
        repo = BillingRepository(s)
        today, now = self.today(), self.now()
        card = terms.rate_on(today)
        price = punch_card_price(block_hours, card, terms)
        due = due_date(today, terms)
        invoice_id, number = repo.add_invoice(account.id, "punch_card", today, due, now,
                                              ticket.id if ticket else None)
        language = language_of(account.language, default=self.default_language)
        repo.add_line(account_id=account.id, ticket_id=None, description=INVOICE_LINE_TEXTS[language]["block"].format(
            block=block, hours=_hours_text(block_hours, language)), hours=block_hours, rate=card.punch_card,
            amount=price, day=today, invoice="punch_card", rate_kind=None, block_number=block, invoice_id=invoice_id)
        tickets = TicketRepository(s)
        data = {"account": account.name, "block": block, "hours": str(block_hours), "price": str(price),
                "invoice": number, "due_on": due.isoformat()}
        if block > 1 and ticket is not None:
            tickets.add_event("punch_card_renewed", now, ticket_id=ticket.id, data=data)
            text = self.texts.render(
                "punch_card_renewed", self._language(s, ticket, account), contact_name=ticket.contact or "",
                company=self.preset.title, block_hours=_hours_text(block_hours, language),
                price=money_text(price, language, terms.currency), invoice=number,
                due_on=format_date(due, "d MMMM y", locale=language)).text
            self.desk.send(s, ticket, text, "punch_card_renewed")
        else:
            tickets.add_event("punch_card_bought", now, data=data)
        return number

    def _separate_if_above(self, s: Session, ticket: TicketRecord, account: AccountRecord, today: date) -> str | None:
        """R21: a request whose service total rises above the threshold is invoiced at once, separately."""
        terms = self.terms
        repo = BillingRepository(s)
        lines = repo.ticket_lines(ticket.id)
        total = sum((x.amount for x in lines if x.rate_kind in PAID_KINDS), ZERO)
        month_start = today.replace(day=1)
        open_lines = [x for x in lines if x.invoice == "monthly" and x.invoice_id is None and x.day >= month_start]
        if not needs_separate_invoice(total, terms) or not open_lines:
            return None
        due = due_date(today, terms)
        invoice_id, number = repo.add_invoice(account.id, "separate", today, due, self.now(), ticket.id)
        repo.move_to_invoice([x.id for x in open_lines], invoice_id, "separate")
        amount = sum((x.amount for x in open_lines), ZERO)
        TicketRepository(s).add_event("separate_invoice", self.now(), ticket_id=ticket.id, data={
            "invoice": number, "amount": str(amount), "request_total": str(total), "due_on": due.isoformat(),
            "threshold": str(terms.separate_invoice_above)})
        return number

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
        """Per account: the month's invoice (its ``monthly`` lines) and the invoices issued at once that month."""
        terms = self.terms
        try:
            start, end = month_bounds(month)
        except BillingError as exc:
            raise DeskError(str(exc)) from None
        month_end = end - timedelta(days=1)

        def work(s: Session) -> Statement:
            repo = BillingRepository(s)
            per_account: dict[str, list[StatementInvoice]] = {}
            monthly: dict[str, list[InvoiceLineRecord]] = {}
            for x in repo.lines_between(start, end):
                if x.invoice == "monthly" and x.invoice_id is None:
                    monthly.setdefault(x.account, []).append(x)
            for name, lines in monthly.items():
                number = f"{start:%Y-%m}/{lines[0].account_id}"
                per_account.setdefault(name, []).append(StatementInvoice(
                    number, "monthly", month_end, due_date(month_end, terms), tuple(lines)))
            for invoice in repo.invoices_between(start, end):
                per_account.setdefault(invoice.account, []).append(StatementInvoice(
                    invoice.number, invoice.kind, invoice.issued_on, invoice.due_on,
                    tuple(repo.invoice_lines(invoice.id)), invoice.ticket_ref))
            return Statement(f"{start:%Y-%m}", terms.currency,
                             {name: tuple(per_account[name]) for name in sorted(per_account)})

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

    def _monthly_left(self, repo: BillingRepository, account: AccountRecord | None) -> Decimal:
        """Ondersteuning's fixed hours left this month (0 for other plans)."""
        if account is None or not self._monthly_hours(account):
            return ZERO
        assert account.monthly_hours is not None
        start = self.today().replace(day=1)
        end = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
        used = sum((x.hours or ZERO for x in repo.account_lines(account.id, start, end)
                    if x.rate_kind == RateKind.MONTHLY.value), ZERO)
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
    rows = [f"Statement {statement.month} ({statement.currency})", ""]
    if not statement.accounts:
        rows.append("no billable lines this month")
    for name, invoices in statement.accounts.items():
        rows.append(name)
        for inv in invoices:
            rows.append(f"  invoice {inv.number} ({inv.kind}{', ' + inv.ticket if inv.ticket else ''}): issued "
                        f"{inv.issued_on}, due {inv.due_on}")
            for x in inv.lines:
                hours = "" if x.hours is None else f"{x.hours} h"
                rate = "" if x.rate is None else f"x {x.rate}"
                rows.append(f"    {x.day}  {x.description[:58]:<58} {hours:>8} {rate:>10} {x.amount:>10}")
            rows.append(f"    {'total':<71} {inv.total:>20}")
        rows.append(f"  {'account total':<73} {sum((i.total for i in invoices), Decimal(0)):>20}")
        rows.append("")
    rows.append(f"{'total':<75} {statement.total:>20}")
    return "\n".join(rows) + "\n"
