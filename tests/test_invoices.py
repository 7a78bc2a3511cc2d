"""Billing that matches what the customer agreed (R19-R22), and invoices sent as PDF by e-mail (R21), on SQLite
and PostgreSQL: quotes with the month's hours and the punch card, urgent work, per-job invoices, no 0.00
invoices, the invoice's PDF read back, its mail through a real SMTP server on loopback, and the commands."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import date
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from helpers import at, contact, email, run_cli, ticket, whatsapp
from pypdf import PdfReader
from smtpsink import smtp_sink
from test_billing_flow import PIET, Desk

from bot.billing import Billing
from bot.desk import DeskError
from bot.intake import IntakePipeline, Outcome
from bot.outbox import OutboxDispatcher
from bot.presets import load_preset
from channels.email.smtp import SmtpSender, SmtpSettings
from storage.billing import BillingRepository
from storage.database import Database
from storage.records import AccountInput, InvoiceRecord
from storage.repositories import AccountRepository

D = Decimal
FROM = "facturen@mailcampaigns.example"


@pytest.fixture
def desk(db: Database) -> Desk:
    return Desk(db)


def pdf_text(data: bytes) -> str:
    """The text of a PDF, as a text extractor reads it (words joined by single spaces)."""
    return " ".join(" ".join((page.extract_text() or "").split()) for page in PdfReader(io.BytesIO(data)).pages)


def add_account(desk: Desk, name: str, phone: str, *, plan: str = "licentie", monthly_hours: str | None = None,
                billing_email: str | None = None, mail: str | None = None, language: str = "nl") -> None:
    data = AccountInput(name=name, plan=plan, staff="anna", language=language,
                        monthly_hours=D(monthly_hours) if monthly_hours else None, billing_email=billing_email,
                        contacts=(contact(f"Contact {name}", phone=phone, email=mail),))
    desk.db.run(lambda s: AccountRepository(s).upsert(data, desk.clock.now))


def job(desk: Desk, phone: str, estimate: str, *, urgent: bool = False, text: str = "Kunnen jullie een "
        "automation flow opzetten?") -> str:
    """A service ticket from ``phone`` with an agreed quote of ``estimate`` hours."""
    outcome, ref = desk.write(text, phone)
    assert outcome is Outcome.NEW_TICKET and ref is not None
    desk.billing.quote(ref, estimate, "anna", urgent=urgent)
    assert desk.write("Akkoord", phone) == (Outcome.REPLY, ref)
    return ref


def invoices(desk: Desk) -> list[InvoiceRecord]:
    return desk.billing.invoices()


def send_all(db: Database, port: int) -> None:
    sender = SmtpSender(SmtpSettings(host="127.0.0.1", port=port, from_address=FROM, security="none", timeout=5))
    asyncio.run(OutboxDispatcher(db, {"email": sender}).run_once())


def attachment(mail: EmailMessage) -> tuple[str, bytes]:
    (part,) = [p for p in mail.iter_attachments()]
    data = part.get_content()
    assert isinstance(data, bytes)
    return str(part.get_filename()), data


# -- 1. a quote states exactly what the work costs, and the invoice follows it (R20) ------------------


def test_a_quote_on_ondersteuning_takes_the_months_hours_first_and_the_bill_matches_it(desk: Desk) -> None:
    add_account(desk, "Uren BV", PIET, plan="ondersteuning", monthly_hours="4")
    ref = job(desk, PIET, "6")
    quote = desk.db.run(lambda s: BillingRepository(s).current_quote(ticket(desk.db, ref).id))
    assert quote is not None
    assert (quote.monthly_hours, quote.card_hours, quote.paid_hours, quote.rate, quote.total) == (
        D("4"), D("0"), D("2"), D("130.00"), D("260.00"))
    text = next(m for m in ticket(desk.db, ref).messages if m.purpose == "quote").text
    assert "4 uur uit de vaste uren" in text and "2 uur ad hoc tegen €\xa0130,00 per uur" in text
    assert "€\xa0260,00" in text and "780" not in text
    desk.hours(ref, "6")
    desk.clock.now = at(2026, 12, 1, 9)
    (invoice,) = desk.billing.issue_due()
    assert (invoice.kind, invoice.month, invoice.subtotal, invoice.vat, invoice.total) == (
        "monthly", "2026-11", D("260.00"), D("54.60"), D("314.60"))


def test_a_second_quote_does_not_promise_the_months_hours_again(desk: Desk) -> None:
    add_account(desk, "Uren BV", PIET, plan="ondersteuning", monthly_hours="4", mail="piet@uren.example")
    first = job(desk, PIET, "3")
    # a second request, by e-mail: a ticket of its own while the first is open
    result = desk.intake.ingest(email("mail-2@uren.example", "piet@uren.example", "Graag hulp met de opmaak van "
                                      "de nieuwsbrief", received_at=desk.clock.now, subject="Opmaak"))
    second = result.ticket_ref
    assert result.outcome is Outcome.NEW_TICKET and second is not None and second != first
    quoted = desk.billing.quote(second, "3", "anna").quote
    # 3 of the 4 hours are promised to the first job: 1 left for this one, 2 billed
    assert (quoted.monthly_hours, quoted.paid_hours, quoted.total) == (D("1"), D("2"), D("260.00"))


def test_hours_beyond_the_quote_are_told_to_the_customer_before_they_are_billed(desk: Desk) -> None:
    desk.account()
    ref = job(desk, PIET, "2")
    assert [x.amount for x in desk.hours(ref, "2").lines] == [D("260.00")]
    over = desk.hours(ref, "1.5")
    assert [(x.rate_kind, x.hours, x.amount) for x in over.lines] == [("ad_hoc", D("1.50"), D("195.00"))]
    told = [m for m in ticket(desk.db, ref).messages if m.purpose == "over_quote"]
    assert len(told) == 1 and told[0].auto
    assert "1,5 uur boven de afgesproken 2 uur" in told[0].text and "€\xa0195,00" in told[0].text


# -- 2. urgent work is ad hoc at the urgent rate, also on an account with a punch card -----------------


def test_urgent_work_on_an_account_with_a_punch_card_is_billed_at_176_80_and_leaves_the_card(desk: Desk) -> None:
    desk.account()
    desk.billing.buy_punch_card("Bakkerij Jansen", "10", "anna")
    ref = job(desk, PIET, "2", urgent=True)
    quote = desk.db.run(lambda s: BillingRepository(s).current_quote(ticket(desk.db, ref).id))
    assert quote is not None and (quote.rate_kind, quote.card_hours, quote.paid_hours, quote.rate, quote.total) == (
        "urgent", D("0"), D("2"), D("176.80"), D("353.60"))
    text = next(m for m in ticket(desk.db, ref).messages if m.purpose == "quote").text
    assert "ad hoc met spoed tegen €\xa0176,80" in text and "strippenkaart" not in text
    lines = desk.hours(ref, "2").lines
    assert [(x.rate_kind, x.rate, x.amount) for x in lines] == [("urgent", D("176.80"), D("353.60"))]
    assert desk.billing.balance("Bakkerij Jansen").card == {"remaining": D("10.00"), "block_hours": D("10.00"),
                                                          "block_number": 1}


# -- 3. one invoice per job above 1,000; later hours monthly; never 0.00 --------------------------------


def test_a_job_passing_1000_is_invoiced_once_and_later_hours_go_on_the_monthly_invoice(desk: Desk) -> None:
    desk.account()
    ref = job(desk, PIET, "9")
    assert desk.hours(ref, "7.69").separate_invoice is None  # 999.70: monthly so far
    separate = desk.hours(ref, "0.01")  # 1.30 more: the job is above 1,000
    assert separate.separate_invoice is not None
    for _ in range(3):  # every later hour of the job: a line of it on the monthly invoice, no invoice of its own
        assert desk.hours(ref, "0.43").separate_invoice is None
    desk.clock.now = at(2026, 12, 1, 9)
    issued = desk.billing.issue_due()
    kinds = {i.kind: i for i in invoices(desk)}
    assert sorted(kinds) == ["monthly", "separate"] and len(invoices(desk)) == 2 and len(issued) == 1
    assert kinds["separate"].subtotal == D("1001.00") and kinds["separate"].ticket_ref == ref
    assert kinds["monthly"].subtotal == D("167.70")  # 3 x 0.43 h x 130
    assert all(i.total is not None and i.total > 0 for i in invoices(desk))


def test_a_month_of_punch_card_hours_only_gets_no_invoice_but_shows_the_usage(desk: Desk) -> None:
    desk.account()
    desk.billing.buy_punch_card("Bakkerij Jansen", "10", "anna")
    ref = job(desk, PIET, "3")
    desk.hours(ref, "3")
    desk.clock.now = at(2026, 12, 1, 9)
    assert desk.billing.issue_due() == []
    assert [i.kind for i in invoices(desk)] == ["punch_card"]  # the card itself, bought in November
    statement = desk.billing.statement("2026-11")
    assert [i.kind for i in statement.accounts["Bakkerij Jansen"]] == ["punch_card"]
    assert [(x.rate_kind, x.hours, x.amount) for x in statement.usage["Bakkerij Jansen"]] == [
        ("punch_card", D("3.00"), D("0.00"))]


def test_a_month_without_hours_gets_nothing(desk: Desk) -> None:
    desk.account()
    desk.clock.now = at(2026, 12, 1, 9)
    assert desk.billing.issue_due() == [] and invoices(desk) == []
    assert desk.billing.statement("2026-11").names() == []


# -- the month a bookkeeper checks ------------------------------------------------------------------


def test_the_month_a_bookkeeper_expects(desk: Desk) -> None:
    uren, kaart, spoed, groot, stil = "+31611111111", "+31622222222", "+31633333333", "+31644444444", "+31655555555"
    add_account(desk, "Uren BV", uren, plan="ondersteuning", monthly_hours="4")
    add_account(desk, "Kaart BV", kaart)
    add_account(desk, "Spoed BV", spoed)
    add_account(desk, "Groot BV", groot)
    add_account(desk, "Stil BV", stil)
    desk.billing.buy_punch_card("Kaart BV", "5", "anna")
    desk.billing.buy_punch_card("Spoed BV", "5", "anna")
    # monthly hours, then ad hoc
    desk.hours(job(desk, uren, "5"), "5")
    # a punch card renewing mid-job: 3 h used, then a 4-hour job takes the last 2 and 2 of a new block
    first = job(desk, kaart, "3")
    desk.hours(first, "3")
    desk.billing.desk.resolve(first, "anna")
    renewing = job(desk, kaart, "4", text="En de opmaak van de nieuwsbrief graag")
    quote = desk.db.run(lambda s: BillingRepository(s).current_quote(ticket(desk.db, renewing).id))
    assert quote is not None and (quote.card_hours, quote.new_blocks, quote.block_price, quote.total) == (
        D("4"), 1, D("585.00"), D("0.00"))
    assert len(desk.hours(renewing, "4").renewed_blocks) == 1
    # an urgent job on an account with a card
    desk.hours(job(desk, spoed, "1.5", urgent=True), "1.5")
    # a 1,200 job
    assert desk.hours(job(desk, groot, "9.23"), "9.23").separate_invoice is not None

    desk.clock.now = at(2026, 11, 30, 18)
    assert desk.billing.issue_due() == []  # the month has not ended
    desk.clock.now = at(2026, 12, 1, 9)  # Tuesday 1 December: the first working day after November
    monthly = {i.account: i for i in desk.billing.issue_due()}
    assert desk.billing.issue_due() == []  # once
    assert {name: (i.subtotal, i.vat, i.total) for name, i in monthly.items()} == {
        "Uren BV": (D("130.00"), D("27.30"), D("157.30")),
        "Spoed BV": (D("265.20"), D("55.69"), D("320.89")),  # 1.5 h x 176.80; VAT 55.692 half up
    }
    everything = invoices(desk)
    assert {(i.account, i.kind) for i in everything} == {
        ("Kaart BV", "punch_card"), ("Spoed BV", "punch_card"), ("Kaart BV", "punch_card"),
        ("Groot BV", "separate"), ("Uren BV", "monthly"), ("Spoed BV", "monthly")}
    assert len(everything) == 6 and "Stil BV" not in {i.account for i in everything}
    groot_invoice = next(i for i in everything if i.kind == "separate")
    assert groot_invoice.subtotal == D("1199.90")
    # one gap-free series per year, in the order issued
    assert sorted(i.number for i in everything) == [f"2026-{n:05d}" for n in range(1, 7)]
    for i in everything:
        assert i.due_on == date.fromordinal(i.issued_on.toordinal() + 14)


def test_the_monthly_invoice_goes_out_on_the_first_working_day_after_the_month(db: Database) -> None:
    desk = Desk(db)
    desk.clock.now = at(2026, 12, 28, 10)
    desk.account()
    desk.hours(job(desk, PIET, "1"), "1")
    for day in (31, ):
        desk.clock.now = at(2026, 12, day, 20)
        assert desk.billing.issue_due() == []
    for day in (1, 2, 3):  # New Year's Day (a holiday), then a weekend
        desk.clock.now = at(2027, 1, day, 12)
        assert desk.billing.issue_due() == [], day
    desk.clock.now = at(2027, 1, 4, 8)
    (invoice,) = desk.billing.issue_due()
    assert (invoice.month, invoice.issued_on, invoice.due_on, invoice.number) == (
        "2026-12", date(2027, 1, 4), date(2027, 1, 18), "2027-00001")


# -- 4. the PDF, the mail, exactly once, the commands ----------------------------------------------


def test_the_invoice_pdf_reads_as_an_invoice(desk: Desk) -> None:
    add_account(desk, "Uren BV", PIET, plan="ondersteuning", monthly_hours="4", billing_email="boekhouding@uren.example")
    desk.billing.buy_punch_card("Uren BV", "5", "anna")
    ref = job(desk, PIET, "6.5")  # 4 from the month, 2.5 from the card
    desk.hours(ref, "6.5")
    desk.billing.desk.resolve(ref, "anna")
    other = job(desk, PIET, "2", urgent=True, text="Spoed: de campagne moet vandaag nog de deur uit")
    desk.hours(other, "2")
    desk.clock.now = at(2026, 12, 1, 9)
    (invoice,) = desk.billing.issue_due()
    record, lines, pdf = desk.billing.invoice(invoice.number)
    assert pdf.startswith(b"%PDF-") and [x.amount for x in lines] == [D("353.60")]
    text = pdf_text(pdf)
    for expected in (f"Factuur {invoice.number}", "Maandfactuur november 2026", "1 december 2026",
                     "15 december 2026", "Uren BV", "boekhouding@uren.example", f"{other}: 2 uur ad hoc met spoed",
                     "€ 176,80", "€ 353,60", "Btw 21%", "€ 74,26", "€ 427,86", f"{ref}: 4 uur uit de vaste maanduren",
                     f"{ref}: 2,5 uur van de strippenkaart", "Strippenkaart: nog 2,5 van 5 uur over",
                     "Betalingstermijn: 14 dagen"):
        assert expected in text, expected
    assert record.card_balance == D("2.50")


def test_invoices_are_mailed_once_with_their_pdf_to_the_billing_address(desk: Desk) -> None:
    add_account(desk, "Post BV", PIET, billing_email="facturen@post.example", mail="piet@post.example")
    add_account(desk, "Direct BV", "+31699999999", mail="jan@direct.example", language="en")
    desk.billing.buy_punch_card("Post BV", "5", "anna")  # invoiced at once
    desk.hours(job(desk, "+31699999999", "1"), "1")
    desk.clock.now = at(2026, 12, 1, 9)
    desk.billing.issue_due()
    with smtp_sink() as (sink, port):
        send_all(desk.db, port)
        send_all(desk.db, port)  # nothing twice
    assert sorted(e.rcpt_tos[0] for e in sink.envelopes) == ["facturen@post.example", "jan@direct.example"]
    by_rcpt = {e.rcpt_tos[0]: m for e, m in zip(sink.envelopes, sink.mails)}
    card_mail, month_mail = by_rcpt["facturen@post.example"], by_rcpt["jan@direct.example"]
    assert str(card_mail["Subject"]).startswith("Factuur 2026-00001")
    assert str(month_mail["Subject"]).startswith("Invoice 2026-00002")
    name, data = attachment(card_mail)
    assert name == "2026-00001.pdf" and "Strippenkaart" in pdf_text(data) and "€ 707,85" in pdf_text(data)
    name, data = attachment(month_mail)
    assert name == "2026-00002.pdf" and "Monthly invoice November 2026" in pdf_text(data)
    body = month_mail.get_body(("plain",))
    assert body is not None and "€157.30" in body.get_content() and "15 December 2026" in body.get_content()
    assert {i.number: i.delivery_state for i in invoices(desk)} == {"2026-00001": "sent", "2026-00002": "sent"}


def test_the_invoice_commands(desk: Desk, tmp_path: Path, db_url: str) -> None:
    desk.account()
    desk.db.run(lambda s: AccountRepository(s).upsert(AccountInput(
        name="Bakkerij Jansen", plan="licentie", staff="anna", billing_email="admin@bakkerij-jansen.example",
        contacts=(contact("Piet Jansen", phone=PIET),)), desk.clock.now))
    desk.hours(job(desk, PIET, "2"), "2")
    config = tmp_path / "slabot.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n\n[billing]\ninvoice_lines = ["KvK 12345678"]\n')

    def cli(*argv: str) -> tuple[int, str, str]:
        return run_cli("--config", str(config), *argv)

    code, out, err = cli("billing", "issue", "--on", "2026-12-01", "--json")
    assert code == 0, err
    (issued,) = json.loads(out)
    assert (issued["kind"], issued["month"], issued["total"], issued["delivery_state"], issued["recipient"]) == (
        "monthly", "2026-11", "314.60", "queued", "admin@bakkerij-jansen.example")
    code, out, err = cli("billing", "invoices", "--month", "2026-12", "--json")
    assert code == 0 and [i["number"] for i in json.loads(out)] == [issued["number"]]
    code, out, _ = cli("billing", "invoices")
    assert code == 0 and issued["number"] in out and "queued" in out
    pdf = tmp_path / "invoice.pdf"
    code, out, err = cli("billing", "invoice", issued["number"], "--pdf", str(pdf))
    assert code == 0, err
    assert "KvK 12345678" in pdf_text(pdf.read_bytes()) and issued["number"] in pdf_text(pdf.read_bytes())
    code, out, err = cli("billing", "invoice", issued["number"], "--resend", "--json", "--staff", "anna")
    assert code == 0 and json.loads(out)["resent"] is True
    outgoing = [m for m in desk.db.run(lambda s: BillingRepository(s).invoices_between(date(2026, 12, 1),
                                                                                     date(2027, 1, 1)))]
    assert len(outgoing) == 1  # sent again: a second mail of the same invoice, not a second invoice
    code, _, err = cli("billing", "invoice", "2026-99999")
    assert code != 0 and "no invoice" in err
    code, _, err = cli("billing", "invoices", "--month", "december")
    assert code == 2 and "YYYY-MM" in err


# -- 5. the outage line's charge (R17) -------------------------------------------------------------


def test_an_outage_caused_in_the_customers_own_domain_is_a_job_at_the_urgent_rate(db: Database,
                                                                                  tmp_path: Path) -> None:
    source = Path(load_preset.__code__.co_filename).parent / "preset_files"
    paynl = (source / "paynl.toml").read_text()
    billing = (source / "mailcampaigns.toml").read_text()
    start = billing.index("[billing]")
    end = billing.index("[[classification]]")
    path = tmp_path / "outage.toml"
    path.write_text(paynl + "\n" + billing[start:end])
    the_preset = load_preset(str(path))
    assert the_preset.billing is not None and the_preset.critical is not None
    desk = Desk(db, the_preset)
    desk.account(plan="business")
    pipeline = IntakePipeline(db, the_preset, now=desk.clock)
    result = pipeline.ingest(whatsapp("SMoutage", PIET, "Storing: niets werkt meer", received_at=desk.clock.now,
                                      critical=True))
    ref = result.ticket_ref
    assert ref is not None and ticket(db, ref).priority == "critical"
    billing_desk = Billing(db, the_preset, now=desk.clock)
    _, charged = billing_desk.record_cause(ref, "customer", "anna")
    assert charged is not None  # nothing logged yet: the minimum, 1 hour at the urgent rate
    assert [(x.rate_kind, x.hours, x.amount) for x in charged.lines] == [("urgent", D("1.00"), D("176.80"))]
    later = billing_desk.log_hours(ref, "1.5", "anna")
    assert [(x.rate_kind, x.hours, x.amount) for x in later.lines] == [("urgent", D("0.50"), D("88.40"))]
    desk.account("Ander BV", plan="business", phone="+31687654321")
    other = pipeline.ingest(whatsapp("SMnormal", "+31687654321", "Een gewone vraag", received_at=desk.clock.now))
    assert other.ticket_ref is not None and other.ticket_ref != ref
    with pytest.raises(DeskError, match="not an outage"):
        billing_desk.record_cause(other.ticket_ref, "customer", "anna")


def test_the_accounts_file_takes_a_billing_address(tmp_path: Path, db_url: str) -> None:
    config = tmp_path / "slabot.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n')
    accounts = tmp_path / "accounts.toml"
    accounts.write_text('[[account]]\nname = "Post BV"\nplan = "licentie"\nbilling_email = "Facturen@Post.example"\n'
                        '  [[account.contact]]\n  name = "Piet"\n  email = ["piet@post.example"]\n\n'
                        '[[account]]\nname = "Fout BV"\nplan = "licentie"\nbilling_email = "geen adres"\n'
                        '  [[account.contact]]\n  name = "Jan"\n  email = ["jan@fout.example"]\n')
    code, out, err = run_cli("--config", str(config), "accounts", "import", str(accounts))
    assert "billing_email" in out + err and "geen adres" in out + err  # the bad one is named, line and value
    code, out, err = run_cli("--config", str(config), "accounts", "list", "--json")
    assert code == 0, err
    assert [(a["name"], a["billing_email"]) for a in json.loads(out)] == [("Post BV", "facturen@post.example")]
    csv_file = tmp_path / "accounts.csv"
    csv_file.write_text("account,plan,billing_email,contact,email\nCsv BV,licentie,boeken@csv.example,Kees,"
                        "kees@csv.example\n")
    code, out, err = run_cli("--config", str(config), "accounts", "import", str(csv_file))
    assert code == 0, err
    code, out, _ = run_cli("--config", str(config), "accounts", "list")
    assert "invoices to boeken@csv.example" in out


def test_an_invoice_with_no_address_to_go_to_is_told_to_staff(db: Database) -> None:
    """R21: an account with neither a billing address nor a contact with an e-mail address: the invoice is kept,
    and the staff chat hears of it once, with what to do."""
    from test_staffbot import STAFF_CHAT, answered, run

    desk = Desk(db)
    add_account(desk, "Telefoon BV", PIET)  # a contact with a phone number only
    desk.hours(job(desk, PIET, "1"), "1")
    desk.clock.now = at(2026, 12, 1, 9)

    async def body(standin: Any, bot: Any) -> None:
        await bot.announce_new()  # the first round sets the checkpoint
        (invoice,) = await asyncio.to_thread(desk.billing.issue_due)
        assert invoice.message_id is None and invoice.delivery_state is None
        await bot.announce_new()
        (text,) = [t for t in await answered(standin, 1) if t.startswith("🧾")]
        assert invoice.number in text and "Telefoon BV" in text and "--resend" in text
        assert await bot.announce_new() == 0

    standin = run(db, body)
    assert len([s for s in standin.messages_to(STAFF_CHAT) if (s.text or "").startswith("🧾")]) == 1
