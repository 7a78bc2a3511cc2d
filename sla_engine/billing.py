"""Billing arithmetic for paid service (R19-R22), on ``Decimal`` money.

Money is rounded half-up to cents at each line; totals are sums of rounded
lines, so they always add up. Rates and thresholds come from the preset
(:class:`BillingTerms`), never from code; a quote keeps the rate card of the
day it was made (R22).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from sla_engine.errors import BillingError

CENT = Decimal("0.01")
ZERO = Decimal("0")
HUNDRED = Decimal("100")


def money(amount: Decimal | int | str) -> Decimal:
    """``amount`` rounded half-up to cents."""
    return Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)


def hours(value: Decimal | int | str | float) -> Decimal:
    """An hour count as a ``Decimal`` (floats go through ``str`` so 1.1 stays 1.1)."""
    try:
        result = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except ArithmeticError:
        raise BillingError(f"hours must be a number, not {value!r}") from None
    if not result.is_finite() or result < 0:
        raise BillingError(f"hours cannot be negative: {value}")
    return result


class RateKind(StrEnum):
    """Where a billed hour comes from."""

    MONTHLY = "monthly"  # Ondersteuning's fixed monthly hours, already paid
    PUNCH_CARD = "punch_card"
    AD_HOC = "ad_hoc"
    URGENT = "urgent"


@dataclass(frozen=True)
class RateCard:
    """The rates in force from ``effective_from`` on (R20)."""

    effective_from: date
    ad_hoc: Decimal
    urgent_surcharge_percent: Decimal
    punch_card_discount_percent: Decimal

    @property
    def urgent(self) -> Decimal:
        """Ad hoc plus the urgent surcharge (130.00 + 36% = 176.80)."""
        return money(self.ad_hoc * (HUNDRED + self.urgent_surcharge_percent) / HUNDRED)

    @property
    def punch_card(self) -> Decimal:
        """Ad hoc minus the punch-card discount (130.00 - 10% = 117.00)."""
        return money(self.ad_hoc * (HUNDRED - self.punch_card_discount_percent) / HUNDRED)

    def rate(self, kind: RateKind) -> Decimal:
        """The hourly rate of ``kind``."""
        return {
            RateKind.MONTHLY: ZERO,
            RateKind.PUNCH_CARD: self.punch_card,
            RateKind.AD_HOC: money(self.ad_hoc),
            RateKind.URGENT: self.urgent,
        }[kind]

    def to_dict(self) -> dict[str, str]:
        return {
            "effective_from": self.effective_from.isoformat(),
            "ad_hoc": str(self.ad_hoc),
            "urgent_surcharge_percent": str(self.urgent_surcharge_percent),
            "punch_card_discount_percent": str(self.punch_card_discount_percent),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> RateCard:
        return cls(
            date.fromisoformat(data["effective_from"]),
            Decimal(data["ad_hoc"]),
            Decimal(data["urgent_surcharge_percent"]),
            Decimal(data["punch_card_discount_percent"]),
        )


@dataclass(frozen=True)
class BillingTerms:
    """A preset's billing rules: rate history, minimums, invoice threshold, payment term."""

    rates: tuple[RateCard, ...]
    minimum_hours: Decimal = Decimal(1)
    punch_card_minimum_hours: Decimal = Decimal(5)
    separate_invoice_above: Decimal = Decimal(1000)
    payment_term: timedelta = timedelta(days=14)
    currency: str = "EUR"
    vat_percent: Decimal = Decimal(21)  # rates are without VAT; the invoice shows it apart

    def __post_init__(self) -> None:
        if not self.rates:
            raise BillingError("billing terms need at least one rate card")
        object.__setattr__(self, "rates", tuple(sorted(self.rates, key=lambda r: r.effective_from)))

    def rate_on(self, day: date) -> RateCard:
        """The rate card in force on ``day`` (R22: the rate of the day)."""
        current = None
        for card in self.rates:
            if card.effective_from <= day:
                current = card
        if current is None:
            raise BillingError(f"no rate card is in force on {day}; the first starts {self.rates[0].effective_from}")
        return current


@dataclass(frozen=True)
class Quote:
    """An hour estimate announced before paid work starts (R19)."""

    estimated_hours: Decimal
    billed_hours: Decimal
    kind: RateKind
    rate: Decimal
    total: Decimal
    rate_card: RateCard


@dataclass(frozen=True)
class JobQuote:
    """What a job of ``estimated_hours`` will cost the customer (R19-R20): the hours by source, in the order
    they are used (the month's fixed hours, the punch card, then billed at ``rate``), and the total billed.

    ``new_blocks`` punch-card blocks are bought on the way (each ``block_price``, prepaid, invoiced at once).
    """

    estimated_hours: Decimal
    billed_hours: Decimal  # the estimate with the 1-hour minimum
    monthly_hours: Decimal
    card_hours: Decimal
    paid_hours: Decimal
    paid_kind: RateKind  # ad_hoc or urgent: the rate of the paid hours
    rate: Decimal
    total: Decimal  # paid_hours x rate: what the work costs on the invoice
    new_blocks: int
    block_price: Decimal
    rate_card: RateCard

    @property
    def kind(self) -> RateKind:
        """The main source: monthly or punch card when they cover the whole job, else the paid rate."""
        if self.paid_hours > 0:
            return self.paid_kind
        return RateKind.MONTHLY if self.card_hours == 0 else RateKind.PUNCH_CARD

    def segments(self) -> tuple[tuple[RateKind, Decimal, Decimal], ...]:
        """The hours by source in the order the work uses them: (kind, hours, rate)."""
        parts = ((RateKind.MONTHLY, self.monthly_hours, ZERO), (RateKind.PUNCH_CARD, self.card_hours, ZERO),
                 (self.paid_kind, self.paid_hours, self.rate))
        return tuple(p for p in parts if p[1] > 0)


def quote_job(
    estimate: Decimal | str | float,
    card: RateCard,
    terms: BillingTerms,
    *,
    monthly_remaining: Decimal = ZERO,
    punch_card: PunchCard | None = None,
    urgent: bool = False,
) -> JobQuote:
    """Quote a job exactly as :func:`allocate_hours` will bill it (R20): the 1-hour minimum, Ondersteuning's
    monthly hours first, then the punch card (not for urgent work: the card buys normal hours), then ad hoc or
    urgent at ``card``'s rate (R22: the quote keeps it)."""
    estimated = hours(estimate)
    billed = billable_hours(estimated, terms)
    allocation = allocate_hours(billed, card, terms, monthly_remaining=monthly_remaining, punch_card=punch_card,
                                urgent=urgent)
    paid_kind = RateKind.URGENT if urgent else RateKind.AD_HOC

    def total_of(kind: RateKind) -> Decimal:
        return sum((d.hours for d in allocation.draws if d.kind == kind), ZERO)

    paid, on_card = total_of(paid_kind), total_of(RateKind.PUNCH_CARD)
    # the rate of the main source: the paid hours' rate, else the card's (prepaid), else none (monthly hours)
    rate = card.rate(paid_kind if paid > 0 else RateKind.PUNCH_CARD if on_card > 0 else RateKind.MONTHLY)
    block_price = punch_card_price(punch_card.block_hours, card, terms) if punch_card is not None else ZERO
    return JobQuote(estimated, billed, total_of(RateKind.MONTHLY), on_card, paid, paid_kind,
                    rate, money(paid * rate), len(allocation.new_blocks), block_price, card)


def follow_quote(
    segments: Sequence[tuple[RateKind, Decimal, Decimal]], already: Decimal, worked: Decimal
) -> tuple[tuple[tuple[RateKind, Decimal, Decimal], ...], Decimal]:
    """Bill ``worked`` more hours of a job whose agreed quotes give ``segments`` (kind, hours, rate) and of
    which ``already`` hours were billed: the parts of the quotes they fill, in order, and the hours beyond
    them (over the quote: billed by :func:`allocate_hours`, the customer told first)."""
    skip, left = hours(already), hours(worked)
    taken: list[tuple[RateKind, Decimal, Decimal]] = []
    for kind, size, rate in segments:
        room = size - min(skip, size)
        skip -= min(skip, size)
        used = min(room, left)
        if used > 0:
            taken.append((kind, used, rate))
            left -= used
    return tuple(taken), left


def vat_of(subtotal: Decimal, terms: BillingTerms) -> Decimal:
    """The VAT on an invoice's subtotal, to the cent, half up (shown apart on the invoice)."""
    return money(subtotal * terms.vat_percent / HUNDRED)


def billable_hours(worked: Decimal, terms: BillingTerms) -> Decimal:
    """Hours billed for a service request: at least the minimum (1 hour)."""
    return max(hours(worked), terms.minimum_hours)


def make_quote(estimate: Decimal | str | float, card: RateCard, terms: BillingTerms, kind: RateKind) -> Quote:
    """Quote ``estimate`` hours at ``kind``'s rate on ``card``, with the 1-hour minimum."""
    billed = billable_hours(hours(estimate), terms)
    rate = card.rate(kind)
    return Quote(hours(estimate), billed, kind, rate, money(billed * rate), card)


def punch_card_price(block_hours: Decimal | int | str, card: RateCard, terms: BillingTerms) -> Decimal:
    """The prepaid price of a punch card (at least 5 hours: 585.00)."""
    size = hours(block_hours)
    if size < terms.punch_card_minimum_hours:
        raise BillingError(
            f"a punch card holds at least {terms.punch_card_minimum_hours} hours, not {size}"
        )
    return money(size * card.punch_card)


@dataclass(frozen=True)
class PunchCard:
    """A punch card's state: its block size and the hours left in the current block."""

    block_hours: Decimal
    remaining: Decimal
    block_number: int = 1

    def __post_init__(self) -> None:
        if self.block_hours <= 0:
            raise BillingError(f"a punch card block must hold hours, not {self.block_hours}")
        if self.remaining < 0:
            raise BillingError(f"a punch card cannot have negative hours left: {self.remaining}")


@dataclass(frozen=True)
class Draw:
    """A part of a time entry billed from one source."""

    kind: RateKind
    hours: Decimal
    rate: Decimal
    amount: Decimal
    block_number: int | None = None


@dataclass(frozen=True)
class Allocation:
    """How hours were billed, and what changed: monthly hours left, the card, new blocks."""

    draws: tuple[Draw, ...]
    monthly_remaining: Decimal
    punch_card: PunchCard | None
    new_blocks: tuple[int, ...] = ()
    new_block_price: Decimal = ZERO

    @property
    def amount(self) -> Decimal:
        """What is billed now for the hours (prepaid and monthly hours cost nothing more)."""
        return sum((d.amount for d in self.draws), ZERO)


def allocate_hours(
    worked: Decimal | str | float,
    card: RateCard,
    terms: BillingTerms,
    *,
    monthly_remaining: Decimal = ZERO,
    punch_card: PunchCard | None = None,
    urgent: bool = False,
) -> Allocation:
    """Bill ``worked`` hours: monthly hours first, then the punch card, else ad hoc (R20).

    A punch card used up to 100% gets a new block of the same size at once
    (invoiced at the punch-card rate); the hours go on from the new block.
    Urgent work is ad hoc work at the urgent rate, also on an account with a
    card: the card buys normal hours and is left alone.
    """
    left = hours(worked)
    draws: list[Draw] = []
    monthly = hours(monthly_remaining)
    if monthly > 0 and left > 0:
        used = min(monthly, left)
        draws.append(Draw(RateKind.MONTHLY, used, ZERO, ZERO))
        monthly -= used
        left -= used
    new_blocks: list[int] = []
    state = punch_card
    if state is not None and not urgent:
        while left > 0:
            used = min(state.remaining, left)
            if used > 0:
                draws.append(Draw(RateKind.PUNCH_CARD, used, ZERO, ZERO, state.block_number))
            left -= used
            state = replace(state, remaining=state.remaining - used)
            if state.remaining == 0:
                state = PunchCard(state.block_hours, state.block_hours, state.block_number + 1)
                new_blocks.append(state.block_number)
    if left > 0:
        kind = RateKind.URGENT if urgent else RateKind.AD_HOC
        rate = card.rate(kind)
        draws.append(Draw(kind, left, rate, money(left * rate)))
    price = money(len(new_blocks) * punch_card_price(state.block_hours, card, terms)) if new_blocks and state else ZERO
    return Allocation(tuple(draws), monthly, state, tuple(new_blocks), price)


@dataclass(frozen=True)
class InvoiceLine:
    """One billable line: a request's paid service, a punch-card block, ..."""

    account: str
    reference: str
    description: str
    hours: Decimal
    rate: Decimal
    amount: Decimal
    day: date


@dataclass(frozen=True)
class Invoice:
    """An invoice: the month's collected lines, or one large request on its own (R21)."""

    account: str
    issued_on: date
    due_on: date
    lines: tuple[InvoiceLine, ...]
    separate: bool = False
    total: Decimal = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", sum((line.amount for line in self.lines), ZERO))


def due_date(issued_on: date, terms: BillingTerms) -> date:
    """The payment due date (R21: 14 days after the invoice date)."""
    return issued_on + terms.payment_term


def needs_separate_invoice(request_total: Decimal, terms: BillingTerms) -> bool:
    """True when a request's amount lies above the threshold (1,000.00 exactly stays monthly)."""
    return money(request_total) > terms.separate_invoice_above


def monthly_invoices(
    lines: Iterable[InvoiceLine], month_end: date, terms: BillingTerms
) -> tuple[Invoice, ...]:
    """Group a month's lines into one invoice per account, issued at ``month_end``; an account whose lines
    come to 0.00 (only hours from the month or the punch card) gets none (R21)."""
    per_account: dict[str, list[InvoiceLine]] = {}
    for line in lines:
        per_account.setdefault(line.account, []).append(line)
    invoices = (Invoice(account, month_end, due_date(month_end, terms), tuple(items))
                for account, items in sorted(per_account.items()))
    return tuple(invoice for invoice in invoices if invoice.total > 0)


def separate_invoice(lines: Sequence[InvoiceLine], issued_on: date, terms: BillingTerms) -> Invoice:
    """One request above the threshold, invoiced at once (R21)."""
    if not lines:
        raise BillingError("a separate invoice needs at least one line")
    return Invoice(lines[0].account, issued_on, due_date(issued_on, terms), tuple(lines), separate=True)


def rates_table(card: RateCard) -> dict[str, Any]:
    """The rates of a card for display."""
    return {"ad_hoc": money(card.ad_hoc), "urgent": card.urgent, "punch_card": card.punch_card}
