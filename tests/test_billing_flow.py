"""Paid service end to end (R18-R22): classification, quotes answered by the customer, hours, punch cards,
Ondersteuning's monthly hours, separate invoices and the month's statement, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from bot.billing import Billing, HoursResult, quote_answer
from bot.desk import DeskError
from bot.intake import IntakePipeline, Outcome
from sla_engine.billing import RateCard
from sla_engine.policy import Preset
from storage.billing import BillingRepository
from storage.database import Database
from storage.records import AccountInput, InvoiceLineRecord
from storage.repositories import AccountRepository, TicketRepository
from helpers import MONDAY_10, at, contact, email, message_texts_out, preset, run_cli, ticket, whatsapp

PIET = "+31612345678"
D = Decimal


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Desk:
    """The intake and billing of one preset, on one clock."""

    def __init__(self, db: Database, the_preset: Preset | None = None) -> None:
        self.db = db
        self.clock = Clock(MONDAY_10)
        self.preset = the_preset or preset("mailcampaigns")
        self.intake = IntakePipeline(db, self.preset, now=self.clock)
        self.billing = Billing(db, self.preset, now=self.clock)
        self.sent = 0

    def account(self, name: str = "Bakkerij Jansen", plan: str = "licentie", *, phone: str = PIET,
                monthly_hours: Decimal | None = None) -> None:
        data = AccountInput(name=name, plan=plan, staff="anna", language="nl", monthly_hours=monthly_hours,
                            contacts=(contact("Piet Jansen", phone=phone),))
        self.db.run(lambda s: AccountRepository(s).upsert(data, self.clock.now))

    def write(self, text: str, phone: str = PIET) -> tuple[Outcome, str | None]:
        self.sent += 1
        result = self.intake.ingest(whatsapp(f"SM{self.sent:030d}", phone, text, received_at=self.clock.now))
        return result.outcome, result.ticket_ref

    def service_ticket(self, text: str = "Kunnen jullie helpen met de opmaak van onze nieuwsbrief?") -> str:
        outcome, ref = self.write(text)
        assert outcome is Outcome.NEW_TICKET and ref is not None
        return ref

    def agreed(self, ref: str, estimate: str = "2", *, urgent: bool = False) -> None:
        self.billing.quote(ref, estimate, "anna", urgent=urgent)
        outcome, joined = self.write("Akkoord!")
        assert (outcome, joined) == (Outcome.REPLY, ref)

    def hours(self, ref: str, worked: str, **kw: object) -> HoursResult:
        return self.billing.log_hours(ref, worked, "anna", **kw)  # type: ignore[arg-type]

    def lines(self, ref: str) -> list[InvoiceLineRecord]:
        record = ticket(self.db, ref)
        return self.db.run(lambda s: BillingRepository(s).ticket_lines(record.id))


@pytest.fixture
def desk(db: Database) -> Iterator[Desk]:
    yield Desk(db)


def amounts(lines: list[InvoiceLineRecord]) -> list[tuple[str | None, Decimal | None, Decimal | None, Decimal]]:
    return [(x.rate_kind, x.hours, x.rate, x.amount) for x in lines]


def with_rates(*cards: RateCard, base: Preset | None = None) -> Preset:
    the_preset = base or preset("mailcampaigns")
    assert the_preset.billing is not None
    return replace(the_preset, billing=replace(the_preset.billing, rates=cards))


def card(day: date, ad_hoc: str) -> RateCard:
    return RateCard(day, D(ad_hoc), D(36), D(10))


# -- the customer's answer to a quote ---------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("Akkoord", "agreed"), ("akkoord!", "agreed"), ("Ja, ga je gang", "agreed"), ("Agreed.", "agreed"),
    ("OK\n\nPiet", "agreed"), ("Nee, toch maar niet", "declined"), ("No thanks", "declined"),
    ("niet akkoord", "declined"), ("ja maar wat kost het per uur?", None), ("Hmm, even overleggen", None),
    ("", None), ("Goedemorgen, nog een vraag", None),
])
def test_a_clear_answer_to_a_quote(text: str, expected: str | None) -> None:
    assert quote_answer(text) == expected


def test_quote_with_the_rate_of_the_day_the_minimum_and_the_total_reaches_the_customer(desk: Desk) -> None:
    desk.account()
    ref = desk.service_ticket()
    result = desk.billing.quote(ref, "0.5", "anna")
    assert (result.quote.billed_hours, result.quote.rate, result.quote.total) == (D("1"), D("130.00"), D("130.00"))
    text = next(m for m in ticket(desk.db, ref).messages if m.purpose == "quote").text
    assert "0,5 uur" in text and "€\xa0130,00" in text and "minimum van 1 uur" in text and "akkoord" in text
    assert ticket(desk.db, ref).state == "waiting"  # waiting on the customer's answer (R14)
    urgent = desk.billing.quote(ref, "2.5", "anna", urgent=True).quote
    assert (urgent.rate_kind, urgent.rate, urgent.total) == ("urgent", D("176.80"), D("442.00"))


def test_work_counts_only_after_the_customer_agreed(desk: Desk) -> None:
    desk.account()
    ref = desk.service_ticket()
    desk.billing.quote(ref, "2", "anna")
    before = desk.hours(ref, "1.5", note="started early")
    assert before.status == "not_agreed" and desk.lines(ref) == []
    outcome, _ = desk.write("ja maar wat kost het per uur?")
    assert outcome is Outcome.REPLY
    assert desk.db.run(lambda s: BillingRepository(s).current_quote(ticket(desk.db, ref).id)).state == "proposed"
    desk.write("Akkoord, ga je gang")
    record = ticket(desk.db, ref)
    assert record.kind == "service" and record.state == "open"  # the answer resumed the clock
    assert [m.purpose for m in record.messages if m.direction == "out"][-1] == "quote_agreed"
    after = desk.hours(ref, "2")
    assert after.status == "billed"
    assert amounts(desk.lines(ref)) == [("ad_hoc", D("2.00"), D("130.00"), D("260.00"))]


def test_an_agreement_by_e_mail(desk: Desk) -> None:
    desk.db.run(lambda s: AccountRepository(s).upsert(AccountInput(
        name="Bakkerij Jansen", plan="licentie", language="nl",
        contacts=(contact("Piet Jansen", email="piet@bakkerij-jansen.nl"),)), desk.clock.now))
    opened = desk.intake.ingest(email("<q1@bakkerij-jansen.nl>", "piet@bakkerij-jansen.nl",
                                      "Kunnen jullie de opmaak van onze nieuwsbrief verbeteren?", subject="Opmaak"))
    assert opened.ticket_ref is not None
    desk.billing.quote(opened.ticket_ref, "1.5", "anna")
    answer = desk.intake.ingest(email("<a1@bakkerij-jansen.nl>", "piet@bakkerij-jansen.nl",
                                      "Akkoord.\n\nMet vriendelijke groet,\nPiet",
                                      subject=f"Re: Opmaak [{opened.ticket_ref}]"))
    assert (answer.outcome, answer.ticket_ref, answer.acknowledgement) == (Outcome.REPLY, opened.ticket_ref,
                                                                           "quote_agreed")
    assert desk.hours(opened.ticket_ref, "1.5").status == "billed"
    asked = desk.intake.ingest(email("<b1@bakkerij-jansen.nl>", "piet@bakkerij-jansen.nl", "", subject="Uren"))
    assert asked.outcome is Outcome.BALANCE


def test_a_declined_quote_bills_nothing(desk: Desk) -> None:
    desk.account()
    ref = desk.service_ticket()
    desk.billing.quote(ref, "3", "anna")
    desk.write("Nee, dank je")
    quote = desk.db.run(lambda s: BillingRepository(s).current_quote(ticket(desk.db, ref).id))
    assert quote is not None and quote.state == "declined"
    assert desk.hours(ref, "1").status == "not_agreed" and desk.lines(ref) == []


def test_the_one_hour_minimum_per_request(desk: Desk) -> None:
    desk.account()
    ref = desk.service_ticket()
    desk.agreed(ref, "0.5")
    assert amounts(list(desk.hours(ref, "0.5").lines)) == [("ad_hoc", D("1.00"), D("130.00"), D("130.00"))]
    assert desk.hours(ref, "0.25").lines == ()  # still inside the hour already billed
    assert amounts(list(desk.hours(ref, "0.5").lines)) == [("ad_hoc", D("0.25"), D("130.00"), D("32.50"))]


def test_urgent_ad_hoc_is_176_80(desk: Desk) -> None:
    desk.account()
    ref = desk.service_ticket()
    desk.agreed(ref, "1", urgent=True)
    assert amounts(list(desk.hours(ref, "1").lines)) == [("urgent", D("1.00"), D("176.80"), D("176.80"))]


def test_a_quote_made_before_a_rate_change_is_billed_at_its_rate(db: Database) -> None:
    desk = Desk(db, with_rates(card(date(2020, 1, 1), "130.00"), card(date(2026, 12, 1), "150.00")))
    desk.account()
    desk.clock.now = at(2026, 11, 30, 10)
    ref = desk.service_ticket()
    desk.agreed(ref, "2")
    desk.clock.now = at(2026, 12, 2, 10)
    assert amounts(list(desk.hours(ref, "2").lines)) == [("ad_hoc", D("2.00"), D("130.00"), D("260.00"))]
    desk.billing.desk.resolve(ref, "anna")
    later = desk.service_ticket("Nog een vraag over de opmaak van de mailing")
    assert desk.billing.quote(later, "1", "anna").quote.rate == D("150.00")  # a new quote: the new rate


# -- the diagnosis rule (R18) ------------------------------------------------------------------------


def test_diagnosis_on_a_platform_bug_is_free(desk: Desk) -> None:
    desk.account()
    ref = desk.service_ticket("Hoe kan het dat de mailing van gisteren half is aangekomen")  # undetermined
    assert ticket(desk.db, ref).kind == "undetermined"
    logged = desk.hours(ref, "2", note="logs doorgenomen")
    assert logged.status == "awaiting_cause"
    record, billed = desk.billing.record_cause(ref, "platform", "anna")
    assert billed is None and record.kind == "support" and record.root_cause == "platform"
    assert desk.lines(ref) == []
    assert desk.db.run(lambda s: BillingRepository(s).entries(record.id))[0].status == "free"
    assert desk.hours(ref, "1").status == "free"  # the fix of a platform bug is support


def test_diagnosis_of_a_cause_outside_the_platform_is_paid_service(desk: Desk) -> None:
    desk.account()
    ref = desk.service_ticket("Hoe kan het dat de mailing van gisteren half is aangekomen")
    desk.hours(ref, "1.5", diagnosis=True)
    record, billed = desk.billing.record_cause(ref, "outside", "anna")
    assert record.kind == "service" and record.kind_rule == "diagnosis_outside"
    assert billed is not None and amounts(list(billed.lines)) == [("ad_hoc", D("1.50"), D("130.00"), D("195.00"))]


def test_staff_change_the_classification(desk: Desk) -> None:
    desk.account()
    ref = desk.service_ticket()
    assert ticket(desk.db, ref).kind == "service"
    desk.billing.quote(ref, "1", "anna")
    assert desk.hours(ref, "1").status == "not_agreed"
    changed = desk.billing.classify(ref, "support", "anna")
    assert (changed.kind, changed.kind_rule) == ("support", "staff")
    assert desk.db.run(lambda s: BillingRepository(s).entries(changed.id))[0].status == "free"
    with pytest.raises(DeskError, match="support or service"):
        desk.billing.classify(ref, "gratis", "anna")


# -- punch cards (R20) -------------------------------------------------------------------------------


def test_a_punch_card_holds_at_least_five_hours_and_is_invoiced_at_once(desk: Desk) -> None:
    desk.account()
    with pytest.raises(DeskError, match="at least 5"):
        desk.billing.buy_punch_card("Bakkerij Jansen", "4", "anna")
    number, price = desk.billing.buy_punch_card("Bakkerij Jansen", "5", "anna")
    assert price == D("585.00")
    month = desk.billing.statement("2026-11")
    invoice = next(i for i in month.accounts["Bakkerij Jansen"] if i.number == number)
    assert (invoice.kind, invoice.subtotal, invoice.vat, invoice.total, invoice.issued_on, invoice.due_on) == (
        "punch_card", D("585.00"), D("122.85"), D("707.85"), date(2026, 11, 23), date(2026, 12, 7))
    with pytest.raises(DeskError, match="renews itself"):
        desk.billing.buy_punch_card("Bakkerij Jansen", "10", "anna")


def test_a_punch_card_running_out_mid_ticket_is_split_over_the_old_and_the_new_block(desk: Desk) -> None:
    desk.account()
    desk.billing.buy_punch_card("Bakkerij Jansen", "5", "anna")
    ref = desk.service_ticket()
    desk.agreed(ref, "7")
    quote = desk.db.run(lambda s: BillingRepository(s).current_quote(ticket(desk.db, ref).id))
    assert quote is not None and (quote.rate_kind, quote.rate) == ("punch_card", D("117.00"))
    assert amounts(list(desk.hours(ref, "4").lines)) == [("punch_card", D("4.00"), None, D("0.00"))]
    split = desk.hours(ref, "3")
    assert [(x.rate_kind, x.hours, x.amount) for x in split.lines] == [
        ("punch_card", D("1.00"), D("0.00")), ("punch_card", D("2.00"), D("0.00"))]
    assert [x.description for x in split.lines] == [f"{ref}: 1 uur van de strippenkaart (blok 1)",
                                                    f"{ref}: 2 uur van de strippenkaart (blok 2)"]
    assert len(split.renewed_blocks) == 1
    balance = desk.billing.balance("Bakkerij Jansen")
    assert balance.card == {"remaining": D("3.00"), "block_hours": D("5.00"), "block_number": 2}
    renewal = next(i for i in desk.billing.statement("2026-11").accounts["Bakkerij Jansen"]
                   if i.number == split.renewed_blocks[0])
    assert (renewal.kind, renewal.subtotal) == ("punch_card", D("585.00"))
    told = [m for m in ticket(desk.db, ref).messages if m.purpose == "punch_card_renewed"]
    assert len(told) == 1 and "€\xa0585,00" in told[0].text and told[0].auto


# -- Ondersteuning's monthly hours -------------------------------------------------------------------


def test_ondersteuning_hours_run_out_mid_month_then_ad_hoc_and_are_back_next_month(desk: Desk) -> None:
    desk.account(plan="ondersteuning", monthly_hours=D("4"))
    ref = desk.service_ticket()
    desk.agreed(ref, "3")
    quote = desk.db.run(lambda s: BillingRepository(s).current_quote(ticket(desk.db, ref).id))
    assert quote is not None and (quote.rate_kind, quote.total) == ("monthly", D("0.00"))
    assert amounts(list(desk.hours(ref, "3").lines)) == [("monthly", D("3.00"), None, D("0.00"))]
    desk.clock.now = at(2026, 11, 26, 10)
    assert amounts(list(desk.hours(ref, "2").lines)) == [
        ("monthly", D("1.00"), None, D("0.00")), ("ad_hoc", D("1.00"), D("130.00"), D("130.00"))]
    assert desk.billing.balance("Bakkerij Jansen").monthly == {"total": D("4.00"), "used": D("4.00"),
                                                               "left": D("0.00")}
    desk.clock.now = at(2026, 12, 1, 10)
    assert amounts(list(desk.hours(ref, "1").lines)) == [("monthly", D("1.00"), None, D("0.00"))]


# -- invoices (R21) ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("worked", "separate"), [("7.69", False), ("7.70", True)])
def test_a_request_above_1000_is_invoiced_at_once_separately(desk: Desk, worked: str, separate: bool) -> None:
    desk.account()
    ref = desk.service_ticket()
    desk.agreed(ref, "8")
    result = desk.hours(ref, worked)
    total = sum((x.amount for x in result.lines), D(0))
    assert total == (D("1001.00") if separate else D("999.70"))
    assert (result.separate_invoice is not None) is separate
    invoices = desk.billing.statement("2026-11").accounts["Bakkerij Jansen"]
    kinds = {i.kind: i for i in invoices}
    if separate:
        assert set(kinds) == {"separate"}
        invoice = kinds["separate"]
        assert (invoice.issued_on, invoice.due_on, invoice.ticket, invoice.subtotal, invoice.total) == (
            date(2026, 11, 23), date(2026, 12, 7), ref, D("1001.00"), D("1211.21"))
        ticket_id = ticket(desk.db, ref).id
        events = [e["kind"] for e in desk.db.run(lambda s: TicketRepository(s).events(ticket_id))]
        assert "separate_invoice" in events  # staff are told from the audit trail
    else:
        # the month's invoice, still to come: issued on the first working day after the month (R21)
        monthly = kinds["monthly"]
        assert set(kinds) == {"monthly"} and monthly.draft
        assert (monthly.issued_on, monthly.due_on) == (date(2026, 12, 1), date(2026, 12, 15))


def test_exactly_1000_stays_on_the_monthly_invoice(db: Database) -> None:
    desk = Desk(db, with_rates(card(date(2020, 1, 1), "125.00")))
    desk.account()
    ref = desk.service_ticket()
    desk.agreed(ref, "8")
    result = desk.hours(ref, "8")
    assert sum((x.amount for x in result.lines), D(0)) == D("1000.00") and result.separate_invoice is None
    assert desk.hours(ref, "0.01").separate_invoice is not None  # one cent above: invoiced at once


def test_the_statement_adds_up(desk: Desk, tmp_path: Path, db_url: str) -> None:
    desk.account()
    desk.account("Drukkerij De Vries", phone="+31687654321")
    desk.billing.buy_punch_card("Drukkerij De Vries", "5", "anna")
    first = desk.service_ticket()
    desk.agreed(first, "3")
    desk.hours(first, "1.1")
    desk.hours(first, "0.35")
    desk.billing.desk.resolve(first, "anna")
    desk.clock.now = at(2026, 11, 24, 11)
    other = desk.service_ticket("Kunnen jullie een automation flow opzetten?")
    desk.agreed(other, "9")
    desk.hours(other, "8")  # 1,040.00: a separate invoice at once
    desk.clock.now = at(2026, 11, 25, 11)
    outcome, third = desk.write("Graag hulp met het importeren van een contactlijst", phone="+31687654321")
    assert outcome is Outcome.NEW_TICKET and third is not None
    desk.billing.quote(third, "2", "anna")
    desk.write("ja", phone="+31687654321")
    desk.hours(third, "6")  # 5 h on block 1, 1 h on block 2: a new block invoiced
    statement = desk.billing.statement("2026-11")
    for invoices in statement.accounts.values():
        for invoice in invoices:
            assert invoice.subtotal == sum((x.amount for x in invoice.lines), D(0))
            assert invoice.total == invoice.subtotal + (invoice.subtotal * D("0.21")).quantize(D("0.01"), ROUND_HALF_UP)
            assert invoice.due_on == invoice.issued_on + timedelta(days=14)
            for x in invoice.lines:
                if x.rate is not None and x.hours is not None:
                    assert x.amount == (x.hours * x.rate).quantize(D("0.01"))
    subtotals = [D("130.00") * D("1.45"), D("1040.00"), D("585.00"), D("585.00")]
    assert statement.total == sum(x + (x * D("0.21")).quantize(D("0.01"), ROUND_HALF_UP) for x in subtotals)

    config = tmp_path / "slabot.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n')
    code, out, err = run_cli("--config", str(config), "billing", "statement", "--month", "2026-11", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["total"] == str(statement.total)
    assert D(data["total"]) == sum(D(a["total"]) for a in data["accounts"])
    for account in data["accounts"]:
        assert D(account["total"]) == sum(D(i["total"]) for i in account["invoices"])
    code, out, err = run_cli("--config", str(config), "billing", "statement", "--month", "2026-11", "--csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert sum(D(r["amount"]) for r in rows) == sum(subtotals, D(0))
    code, out, _ = run_cli("--config", str(config), "billing", "statement", "--month", "2026-11")
    assert code == 0 and "Bakkerij Jansen" in out and "1.040,00" not in out and "1040.00" in out
    code, _, err = run_cli("--config", str(config), "billing", "statement", "--month", "november")
    assert code != 0 and "YYYY-MM" in err


# -- the customer's view -----------------------------------------------------------------------------


def test_a_customer_asking_for_hours_gets_the_balance_and_no_ticket(desk: Desk) -> None:
    desk.account()
    desk.billing.buy_punch_card("Bakkerij Jansen", "10", "anna")
    ref = desk.service_ticket()
    desk.agreed(ref, "2")
    desk.hours(ref, "2.5")
    outcome, joined = desk.write("Uren?")
    assert outcome is Outcome.BALANCE and joined is None
    reply = message_texts_out(desk.db)[-1]
    assert reply.purpose == "balance" and reply.ticket_id is None
    assert "nog 7,5 van 10 uur" in reply.text and "2,5 uur" in reply.text


def test_billing_needs_a_preset_with_paid_service(db: Database) -> None:
    desk = Desk(db, preset("paynl"))
    desk.account(plan="business")
    outcome, ref = desk.write("Onze betalingen komen niet binnen")
    assert ref is not None
    with pytest.raises(DeskError, match="no paid service"):
        desk.billing.quote(ref, "1", "anna")
    assert desk.hours(ref, "1").status == "free"
    assert desk.write("uren")[0] is not Outcome.BALANCE  # nothing to show: an ordinary message


def test_the_billing_commands(desk: Desk, tmp_path: Path, db_url: str) -> None:
    desk.account()
    ref = desk.service_ticket()
    config = tmp_path / "slabot.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n')

    def cli(*argv: str) -> dict[str, object]:
        code, out, err = run_cli("--config", str(config), *argv, "--staff", "anna", "--json")
        assert code == 0, err
        return dict(json.loads(out))

    assert cli("tickets", "classify", ref, "service")["kind"] == "service"
    assert cli("billing", "punchcard", "Bakkerij Jansen", "5")["price"] == "585.00"
    quoted = cli("tickets", "quote", ref, "6")
    # 6 hours from the card with 5 left: the card's hours cost nothing more, one new block is bought (R20)
    assert (quoted["rate_kind"], quoted["rate"], quoted["total"], quoted["state"]) == (
        "punch_card", "117.00", "0.00", "proposed")
    assert (quoted["card_hours"], quoted["paid_hours"], quoted["new_blocks"]) == ("6.00", "0.00", 1)
    assert cli("hours", "log", ref, "1", "--note", "voor akkoord")["status"] == "not_agreed"
    desk.write("Akkoord")
    logged = cli("hours", "log", ref, "6", "--at", "2026-11-23T15:00")
    assert logged["status"] == "billed" and len(logged["renewed_blocks"]) == 1  # type: ignore[arg-type]
    balance = cli("billing", "balance", "Bakkerij Jansen")
    assert balance["punch_card"] == {"remaining": "4.00", "block_hours": "5.00", "block_number": "2"}
    code, _, err = run_cli("--config", str(config), "hours", "log", ref, "veel")
    assert code != 0 and "number" in err
    code, _, err = run_cli("--config", str(config), "tickets", "quote", "MC-99999", "1")
    assert code != 0 and "no ticket MC-99999" in err
    code, _, err = run_cli("--config", str(config), "billing", "balance", "Nobody")
    assert code != 0 and "no account" in err
