"""R19-R22: billing arithmetic for paid service, with the numbers taken from the preset."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from bot.presets import load_preset
from sla_engine.billing import (
    Allocation,
    BillingTerms,
    Draw,
    InvoiceLine,
    PunchCard,
    RateCard,
    RateKind,
    allocate_hours,
    billable_hours,
    due_date,
    hours,
    make_quote,
    money,
    monthly_invoices,
    needs_separate_invoice,
    punch_card_price,
    rates_table,
    separate_invoice,
)
from sla_engine.errors import BillingError

D = Decimal
TERMS = load_preset("mailcampaigns").billing
assert TERMS is not None
DAY = date(2026, 3, 2)
CARD = TERMS.rate_on(DAY)


def is_money(value: object) -> bool:
    """A ``Decimal`` with exactly two decimals (never a float)."""
    return isinstance(value, Decimal) and value.as_tuple().exponent == -2


def assert_no_floats(allocation: Allocation) -> None:
    assert isinstance(allocation.monthly_remaining, Decimal)
    assert is_money(allocation.new_block_price) or allocation.new_block_price == 0
    assert isinstance(allocation.amount, Decimal)
    for draw in allocation.draws:
        assert isinstance(draw.hours, Decimal)
        assert isinstance(draw.rate, Decimal)
        assert isinstance(draw.amount, Decimal)
    if allocation.punch_card is not None:
        assert isinstance(allocation.punch_card.remaining, Decimal)


# --- R20: the rates, from the preset ---------------------------------------------------------


def test_preset_terms() -> None:
    assert TERMS.currency == "EUR"
    assert TERMS.minimum_hours == D("1")
    assert TERMS.punch_card_minimum_hours == D("5")
    assert TERMS.separate_invoice_above == D("1000.00")
    assert TERMS.payment_term == timedelta(days=14)
    assert len(TERMS.rates) == 1
    assert TERMS.rates[0].effective_from == date(2020, 1, 1)


def test_rates_ad_hoc_urgent_and_punch_card() -> None:
    assert CARD.rate(RateKind.AD_HOC) == D("130.00")
    assert CARD.rate(RateKind.URGENT) == D("176.80")  # +36%
    assert CARD.rate(RateKind.PUNCH_CARD) == D("117.00")  # -10%
    assert CARD.rate(RateKind.MONTHLY) == 0  # Ondersteuning's hours are already paid
    for kind in (RateKind.AD_HOC, RateKind.URGENT, RateKind.PUNCH_CARD):
        assert is_money(CARD.rate(kind))
    assert str(CARD.urgent) == "176.80"
    assert str(CARD.punch_card) == "117.00"
    assert rates_table(CARD) == {"ad_hoc": D("130.00"), "urgent": D("176.80"), "punch_card": D("117.00")}


def test_punch_card_minimum_is_five_hours_585() -> None:
    price = punch_card_price(5, CARD, TERMS)
    assert price == D("585.00") and is_money(price)
    assert punch_card_price("10", CARD, TERMS) == D("1170.00")
    with pytest.raises(BillingError):
        punch_card_price(4, CARD, TERMS)
    with pytest.raises(BillingError):
        punch_card_price("4.99", CARD, TERMS)


def test_rate_card_round_trips_through_dict() -> None:
    assert RateCard.from_dict(CARD.to_dict()) == CARD


# --- R19: quotes with the 1-hour minimum -----------------------------------------------------


@pytest.mark.parametrize(
    ("estimate", "billed", "total"),
    [
        ("0.25", "1", "130.00"),  # below the minimum: 1 hour
        ("0", "1", "130.00"),
        ("1", "1", "130.00"),
        ("2.5", "2.5", "325.00"),
        (2.5, "2.5", "325.00"),  # a float estimate goes through str
        (D("7.75"), "7.75", "1007.50"),
    ],
)
def test_quote_ad_hoc_with_one_hour_minimum(estimate: object, billed: str, total: str) -> None:
    quote = make_quote(estimate, CARD, TERMS, RateKind.AD_HOC)  # type: ignore[arg-type]
    assert quote.billed_hours == D(billed)
    assert quote.total == D(total)
    assert quote.rate == D("130.00")
    assert quote.rate_card == CARD
    assert isinstance(quote.estimated_hours, Decimal)
    assert is_money(quote.total)


def test_quote_urgent_and_punch_card() -> None:
    assert make_quote("1", CARD, TERMS, RateKind.URGENT).total == D("176.80")
    assert make_quote("0.5", CARD, TERMS, RateKind.URGENT).total == D("176.80")  # 1-hour minimum
    assert make_quote("5", CARD, TERMS, RateKind.PUNCH_CARD).total == D("585.00")


def test_billable_hours() -> None:
    assert billable_hours(D("0.25"), TERMS) == D("1")
    assert billable_hours(D("3.5"), TERMS) == D("3.5")
    with pytest.raises(BillingError):
        billable_hours(D("-1"), TERMS)


def test_hours_helper() -> None:
    assert hours(1.1) == D("1.1")  # not 1.100000000000000088817841970012523...
    assert hours("0.125") == D("0.125")
    with pytest.raises(BillingError):
        hours("-0.5")


# --- money: half-up to cents, Decimal everywhere ---------------------------------------------


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("1.005", "1.01"),  # half-up, where half-even would give 1.00
        ("1.015", "1.02"),
        ("1.0049", "1.00"),
        ("2.675", "2.68"),
        ("14.625", "14.63"),  # 0.125h * 117.00
        ("16.25", "16.25"),  # 0.125h * 130.00
        ("-1.005", "-1.01"),  # half away from zero
        (130, "130.00"),
    ],
)
def test_money_rounds_half_up_to_cents(amount: object, expected: str) -> None:
    result = money(amount)  # type: ignore[arg-type]
    assert result == D(expected)
    assert str(result) == expected
    assert is_money(result)


def test_fractional_hours_round_half_up() -> None:
    assert money(D("0.125") * CARD.ad_hoc) == D("16.25")
    assert money(D("0.125") * CARD.punch_card) == D("14.63")
    # 1.125h at the punch-card rate is 131.625: half-up to 131.63 (half-even would give 131.62)
    assert make_quote("1.125", CARD, TERMS, RateKind.PUNCH_CARD).total == D("131.63")
    # 0.125h of ad hoc work after the monthly hours: rounded per line
    allocation = allocate_hours("0.125", CARD, TERMS)
    assert allocation.draws == (Draw(RateKind.AD_HOC, D("0.125"), D("130.00"), D("16.25")),)
    allocation = allocate_hours("0.0625", CARD, TERMS, urgent=True)  # 11.05
    assert allocation.amount == D("11.05")
    allocation = allocate_hours("0.05", CARD, TERMS, urgent=True)  # 8.84
    assert allocation.amount == D("8.84")


# --- R22: a quote keeps the rate of the day it was made --------------------------------------


def test_rate_change_quote_keeps_rate_of_its_day() -> None:
    old = RateCard(date(2020, 1, 1), D("130.00"), D("36"), D("10"))
    new = RateCard(date(2027, 1, 1), D("140.00"), D("36"), D("10"))
    terms = BillingTerms(rates=(new, old))  # given out of order: kept sorted
    assert terms.rates == (old, new)

    assert terms.rate_on(date(2026, 12, 15)) == old
    assert terms.rate_on(date(2026, 12, 31)) == old
    assert terms.rate_on(date(2027, 1, 1)) == new
    assert terms.rate_on(date(2027, 1, 20)) == new
    assert new.urgent == D("190.40") and new.punch_card == D("126.00")

    quoted_on = date(2026, 12, 15)
    quote = make_quote("2", terms.rate_on(quoted_on), terms, RateKind.AD_HOC)
    assert quote.rate == D("130.00") and quote.total == D("260.00")

    # Billed in January 2027: the line uses the quote's rate, not the new card.
    billed_on = date(2027, 1, 20)
    assert terms.rate_on(billed_on).ad_hoc == D("140.00")
    line = InvoiceLine("acme", "MC-1", "service", quote.billed_hours, quote.rate, quote.total, billed_on)
    invoice = monthly_invoices([line], date(2027, 1, 31), terms)[0]
    assert invoice.total == D("260.00")
    assert quote.rate_card == old

    # A quote made on the new card's day gets the new rate.
    assert make_quote("2", terms.rate_on(date(2027, 1, 1)), terms, RateKind.AD_HOC).total == D("280.00")


def test_no_rate_card_before_the_first() -> None:
    with pytest.raises(BillingError):
        TERMS.rate_on(date(2019, 12, 31))
    with pytest.raises(BillingError):
        BillingTerms(rates=())


# --- R20: where hours come from --------------------------------------------------------------


def test_monthly_hours_first_then_ad_hoc() -> None:
    allocation = allocate_hours("3.5", CARD, TERMS, monthly_remaining=D("2"))
    assert allocation.draws == (
        Draw(RateKind.MONTHLY, D("2"), D("0"), D("0")),
        Draw(RateKind.AD_HOC, D("1.5"), D("130.00"), D("195.00")),
    )
    assert allocation.amount == D("195.00")
    assert allocation.monthly_remaining == 0
    assert allocation.punch_card is None
    assert allocation.new_blocks == () and allocation.new_block_price == 0
    assert_no_floats(allocation)


def test_monthly_hours_cover_everything() -> None:
    allocation = allocate_hours("1.5", CARD, TERMS, monthly_remaining=D("4"))
    assert allocation.draws == (Draw(RateKind.MONTHLY, D("1.5"), D("0"), D("0")),)
    assert allocation.amount == 0
    assert allocation.monthly_remaining == D("2.5")


def test_monthly_hours_then_punch_card() -> None:
    card = PunchCard(D("5"), D("3"))
    allocation = allocate_hours("4", CARD, TERMS, monthly_remaining=D("2"), punch_card=card)
    assert [(d.kind, d.hours) for d in allocation.draws] == [
        (RateKind.MONTHLY, D("2")),
        (RateKind.PUNCH_CARD, D("2")),
    ]
    assert allocation.amount == 0
    assert allocation.punch_card == PunchCard(D("5"), D("1"), 1)
    assert allocation.new_blocks == ()


def test_punch_card_running_out_mid_ticket() -> None:
    card = PunchCard(D("5"), D("1.5"))
    allocation = allocate_hours("4", CARD, TERMS, punch_card=card)
    assert allocation.draws == (
        Draw(RateKind.PUNCH_CARD, D("1.5"), D("0"), D("0"), 1),
        Draw(RateKind.PUNCH_CARD, D("2.5"), D("0"), D("0"), 2),
    )
    assert allocation.new_blocks == (2,)
    assert allocation.new_block_price == D("585.00")
    assert allocation.punch_card == PunchCard(D("5"), D("2.5"), 2)
    assert allocation.amount == 0  # prepaid: the new block is invoiced, not the hours
    assert_no_floats(allocation)


def test_exactly_using_up_a_card_triggers_a_new_block() -> None:
    allocation = allocate_hours("2", CARD, TERMS, punch_card=PunchCard(D("5"), D("2")))
    assert allocation.draws == (Draw(RateKind.PUNCH_CARD, D("2"), D("0"), D("0"), 1),)
    assert allocation.new_blocks == (2,)
    assert allocation.new_block_price == D("585.00")
    assert allocation.punch_card == PunchCard(D("5"), D("5"), 2)


def test_a_long_ticket_can_use_several_new_blocks() -> None:
    allocation = allocate_hours("12", CARD, TERMS, punch_card=PunchCard(D("5"), D("1")))
    assert [(d.block_number, d.hours) for d in allocation.draws] == [(1, D("1")), (2, D("5")), (3, D("5")), (4, D("1"))]
    assert allocation.new_blocks == (2, 3, 4)
    assert allocation.new_block_price == D("1755.00")
    assert allocation.punch_card == PunchCard(D("5"), D("4"), 4)


def test_a_bigger_block_is_renewed_at_its_own_size() -> None:
    allocation = allocate_hours("1", CARD, TERMS, punch_card=PunchCard(D("10"), D("1"), 3))
    assert allocation.new_blocks == (4,)
    assert allocation.new_block_price == D("1170.00")
    assert allocation.punch_card == PunchCard(D("10"), D("10"), 4)


def test_invalid_punch_cards_are_refused() -> None:
    with pytest.raises(BillingError):
        PunchCard(D("0"), D("0"))  # would renew empty blocks forever
    with pytest.raises(BillingError):
        PunchCard(D("5"), D("-1"))  # would draw more hours than were worked


def test_urgent_ad_hoc() -> None:
    allocation = allocate_hours("1", CARD, TERMS, urgent=True)
    assert allocation.draws == (Draw(RateKind.URGENT, D("1"), D("176.80"), D("176.80")),)
    allocation = allocate_hours("2.5", CARD, TERMS, urgent=True)
    assert allocation.amount == D("442.00")


def test_no_punch_card_and_no_monthly_hours_is_ad_hoc() -> None:
    allocation = allocate_hours("2.5", CARD, TERMS)
    assert allocation.draws == (Draw(RateKind.AD_HOC, D("2.5"), D("130.00"), D("325.00")),)
    assert allocation.amount == D("325.00")
    assert allocation.monthly_remaining == 0
    assert allocation.punch_card is None
    assert_no_floats(allocation)


def test_zero_hours_bill_nothing() -> None:
    allocation = allocate_hours("0", CARD, TERMS, monthly_remaining=D("2"), punch_card=PunchCard(D("5"), D("1")))
    assert allocation.draws == ()
    assert allocation.amount == 0
    assert allocation.monthly_remaining == D("2")
    assert allocation.new_blocks == ()


def test_float_hours_are_taken_exactly() -> None:
    allocation = allocate_hours(1.1, CARD, TERMS)
    assert allocation.draws[0].hours == D("1.1")
    assert allocation.amount == D("143.00")
    assert_no_floats(allocation)


# --- R21: monthly invoice or separate invoice, 14 days -----------------------------------------


@pytest.mark.parametrize(
    ("total", "separate"),
    [
        ("999.99", False),
        ("1000", False),
        ("1000.00", False),  # exactly 1,000.00 stays on the monthly invoice
        ("1000.004", False),  # rounds to 1000.00
        ("1000.005", True),  # rounds half-up to 1000.01
        ("1000.01", True),
        ("1007.50", True),
    ],
)
def test_separate_invoice_threshold(total: str, separate: bool) -> None:
    assert needs_separate_invoice(D(total), TERMS) is separate


def test_quotes_on_both_sides_of_the_threshold() -> None:
    # 7.69h * 130.00 = 999.70 stays monthly; 7.70h = 1001.00 goes separate
    assert not needs_separate_invoice(make_quote("7.69", CARD, TERMS, RateKind.AD_HOC).total, TERMS)
    assert needs_separate_invoice(make_quote("7.70", CARD, TERMS, RateKind.AD_HOC).total, TERMS)


def test_due_date_is_fourteen_days_after_the_invoice_date() -> None:
    assert due_date(date(2026, 3, 31), TERMS) == date(2026, 4, 14)
    assert due_date(date(2026, 12, 31), TERMS) == date(2027, 1, 14)


def line(account: str, ref: str, amount: str, day: date = date(2026, 3, 10)) -> InvoiceLine:
    return InvoiceLine(account, ref, "service", D("1"), D(amount), D(amount), day)


def test_monthly_invoices_group_lines_per_account() -> None:
    lines = [
        line("zeta", "MC-1", "130.00"),
        line("acme", "MC-2", "16.25"),
        line("zeta", "MC-3", "0.01"),
        line("acme", "MC-4", "585.00"),
        line("acme", "MC-5", "14.63"),
    ]
    month_end = date(2026, 3, 31)
    invoices = monthly_invoices(lines, month_end, TERMS)
    assert [inv.account for inv in invoices] == ["acme", "zeta"]
    acme, zeta = invoices
    assert [ln.reference for ln in acme.lines] == ["MC-2", "MC-4", "MC-5"]
    assert [ln.reference for ln in zeta.lines] == ["MC-1", "MC-3"]
    assert acme.total == D("615.88") and is_money(acme.total)
    assert zeta.total == D("130.01")
    for invoice in invoices:
        assert invoice.total == sum((ln.amount for ln in invoice.lines), D("0"))
        assert invoice.issued_on == month_end
        assert invoice.due_on == date(2026, 4, 14)
        assert invoice.separate is False
    assert sum((inv.total for inv in invoices), D("0")) == sum((ln.amount for ln in lines), D("0"))


def test_monthly_invoice_totals_add_up_exactly() -> None:
    # Many small amounts that would drift as floats: 0.1 * 30 lines
    lines = [line("acme", f"MC-{i}", "0.10") for i in range(30)]
    (invoice,) = monthly_invoices(lines, date(2026, 3, 31), TERMS)
    assert invoice.total == D("3.00")
    assert isinstance(invoice.total, Decimal)


def test_monthly_invoices_of_no_lines() -> None:
    assert monthly_invoices([], date(2026, 3, 31), TERMS) == ()


def test_separate_invoice() -> None:
    quote = make_quote("8", CARD, TERMS, RateKind.AD_HOC)
    assert quote.total == D("1040.00")
    assert needs_separate_invoice(quote.total, TERMS)
    issued = date(2026, 3, 12)
    big = InvoiceLine("acme", "MC-9", "service", quote.billed_hours, quote.rate, quote.total, issued)
    invoice = separate_invoice([big], issued, TERMS)
    assert invoice.separate is True
    assert invoice.account == "acme"
    assert invoice.issued_on == issued
    assert invoice.due_on == date(2026, 3, 26)
    assert invoice.lines == (big,)
    assert invoice.total == D("1040.00") and is_money(invoice.total)
    with pytest.raises(BillingError):
        separate_invoice([], issued, TERMS)


def test_hours_that_are_not_a_number_are_a_billing_error() -> None:
    from sla_engine.billing import hours
    from sla_engine.errors import BillingError

    with pytest.raises(BillingError, match="must be a number"):
        hours("abc")
    with pytest.raises(BillingError):
        hours("NaN")
