"""``slabot demo``: the narrated walk through the whole flow runs here, on a tmp database, and what it told is checked.

The demo runs once for the module (the real application twice, against the Twilio and Telegram stand-ins and an
SMTP sink, on its fast-forwarded clock); each test checks some of its facts. Expected deadlines and reminder
times are computed here independently, with the SLA engine (as ``slabot sla deadline`` does), not read from the
demo. How long the demo took is printed (``pytest -s``), not asserted: benchmarks/README.md has the figures.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from helpers import app_running, at, free_port, preset, run_cli

from bot.app import Application
from bot.config import load_config
from bot.demo.run import DemoError, DemoResult, Fact, main, prepare
from bot.i18n import AMSTERDAM, format_when
from sla_engine.deadlines import first_response_due, reminder_schedule

PIET, SANNE, KAREL, AGENCY, STRANGER = ("+31612345678", "sanne@fietsenmaker-jansen.example",
                                        "karel@drukkerij-peters.example", "info@reclamebureau-zon.example",
                                        "+31611122233")
FATIMA, JOOST, ROOS, KEES = ("+31620000001", "joost@fietsenwinkel-veldman.example", "+31620000003",
                             "kees@startup-kees.example")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoResult, str]]:
    """The demo, run once, narrated into a string: its result and what it printed."""
    database = tmp_path_factory.mktemp("demo") / "slabot-demo.db"
    out = io.StringIO()
    result = main(database, out)
    print(f"\nslabot demo took {result.seconds:.2f} s")
    yield result, out.getvalue()


def due(preset_name: str, plan: str, received_at: datetime) -> datetime | None:
    """The first-response deadline by the SLA engine, as ``slabot sla deadline`` computes it."""
    the_preset = preset(preset_name)
    return first_response_due(received_at, the_preset.terms(plan, received_at.date()))


def acknowledgement(result: DemoResult, recipient: str) -> Fact:
    (fact,) = [f for f in result.of("acknowledgement") if f.recipient == recipient]
    return fact


def test_the_worked_example_whatsapp_on_monday_10_is_due_thursday_10(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo
    fact = acknowledgement(result, PIET)
    expected = due("mailcampaigns", "licentie", at(2026, 11, 23, 10))
    assert expected == at(2026, 11, 26, 10)
    assert (fact.channel, fact.desk, fact.due, fact.at) == ("whatsapp", "mailcampaigns", expected, at(2026, 11, 23, 10))
    assert fact.ref is not None and fact.ref.startswith("MC-")
    assert "uiterlijk donderdag 26 november 2026 om 10:00" in fact.text and fact.ref in fact.text
    assert fact.data["kind"] == "service"  # "opmaak": paid service, and the acknowledgement says what it costs
    assert "130,00" in fact.text


@pytest.mark.parametrize(("recipient", "preset_name", "plan", "received", "came_by", "answered_by", "state"), [
    (SANNE, "mailcampaigns", "ondersteuning", at(2026, 11, 23, 10, 5), "email", "email", "sent"),
    # a caller cannot be written to by phone: by e-mail to the contact's address, else by WhatsApp to the
    # calling number, which has not written there in 24 hours: only a template may go, none is set up (staff)
    (KAREL, "mailcampaigns", "project", at(2026, 11, 23, 10, 10), "phone", "email", "sent"),
    (FATIMA, "paynl", "premium", at(2026, 11, 30, 9, 30), "whatsapp", "whatsapp", "sent"),
    (JOOST, "paynl", "business", at(2026, 11, 30, 9, 35), "email", "email", "sent"),
    (ROOS, "paynl", "professional", at(2026, 11, 30, 9, 40), "phone", "whatsapp", "needs_staff"),
])
def test_each_customer_gets_an_acknowledgement_with_the_deadline_of_their_plan(
        demo: tuple[DemoResult, str], recipient: str, preset_name: str, plan: str, received: datetime,
        came_by: str, answered_by: str, state: str) -> None:
    result, _ = demo
    fact = acknowledgement(result, recipient)
    expected = due(preset_name, plan, received)
    assert (fact.desk, fact.data["plan"], fact.due, fact.at) == (preset_name, plan, expected, received)
    assert (fact.data["request_channel"], fact.channel, fact.data["delivery_state"]) == (came_by, answered_by, state)
    assert fact.ref is not None and fact.ref in fact.text
    if expected is None:
        assert "geen SLA" in fact.text  # Professional: no times guaranteed
    elif came_by == "phone":  # an answered call is itself the response (R8): no deadline is promised
        assert "telefoontje" in fact.text and "uiterlijk" not in fact.text
    else:
        assert f"uiterlijk {format_when(expected, 'nl')}" in fact.text


def test_the_deadlines_are_the_engines(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo
    assert acknowledgement(result, FATIMA).due == at(2026, 11, 30, 17, 30)  # 8 business hours to closing time
    assert acknowledgement(result, JOOST).due == at(2026, 12, 2, 16, 35)  # 24 h over 09:00-17:30 days
    assert acknowledgement(result, ROOS).due is None


def test_who_got_what_on_which_channel(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo
    (refused,) = result.of("third_party_refused")
    assert (refused.channel, refused.recipient, refused.ref, refused.data["outcome"]) == (
        "email", AGENCY, None, "third_party_refused")
    assert "contactpersoon" in refused.text and "Bakkerij" not in refused.text and "MC-" not in refused.text
    (unknown,) = result.of("unknown_sender")
    assert (unknown.channel, unknown.recipient, unknown.data["state"]) == ("whatsapp", STRANGER, "unverified")
    assert "niet koppelen" in unknown.text and unknown.ref is not None and unknown.ref in unknown.text
    (not_in_plan,) = result.of("channel_not_in_plan")
    assert (not_in_plan.channel, not_in_plan.recipient, not_in_plan.desk) == ("email", KEES, "paynl")
    assert "WhatsApp" in not_in_plan.text and "Pioneer" in not_in_plan.text
    announced = {f.ref for f in result.of("announced")}
    tickets = {f.ref for f in result.of("acknowledgement")} | {unknown.ref}
    assert tickets <= announced


def test_reminders_at_75_percent_and_an_hour_before_then_the_breach_escalates(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo
    sanne = acknowledgement(result, SANNE)
    received = at(2026, 11, 23, 10, 5)
    planned = reminder_schedule(received, preset("mailcampaigns").terms("ondersteuning", received.date()))
    reminders, (breach,) = result.of("reminder"), result.of("breach")
    assert [(f.data["spec"], f.at) for f in reminders] == [(r.spec, r.at) for r in planned if not r.escalate]
    assert [f.data["spec"] for f in reminders] == ["75%", "1h before"]
    assert reminders[0].at == at(2026, 11, 25, 12, 5)  # 18 of the 24 business hours
    assert reminders[1].at == at(2026, 11, 26, 9, 5)
    for fact in reminders:
        assert fact.ref == sanne.ref and fact.channel == "telegram"
        assert sanne.ref in fact.text and "@anna" in fact.text  # the account's campaign specialist is named
    assert breach.at == sanne.due == at(2026, 11, 26, 10, 5)
    assert sanne.ref in breach.text and "verstreken" in breach.text and "@lotte" in breach.text  # the team lead
    assert all(f.ref == sanne.ref for f in (*reminders, breach))  # no ticket answered in time was pinged


def test_a_staff_reply_reaches_the_customer_and_stops_the_clock(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo
    piet = acknowledgement(result, PIET)
    reply = next(f for f in result.of("staff_reply") if f.ref == piet.ref)
    assert (reply.channel, reply.recipient, reply.at) == ("whatsapp", PIET, at(2026, 11, 23, 11))
    assert reply.text.startswith("Dag Piet") and reply.data["reminders"] == "cancelled"
    assert "eerste reactie vastgelegd" in reply.data["staff_chat"]
    fatima = next(f for f in result.of("staff_reply") if f.recipient == FATIMA)
    assert fatima.at < (acknowledgement(result, FATIMA).due or fatima.at)


def test_a_follow_up_question_gets_a_new_deadline_the_staff_chat_hears_of_it_and_no_second_acknowledgement(
        demo: tuple[DemoResult, str]) -> None:
    """R24: Piet asks again at 15:30 on his answered ticket."""
    result, _ = demo
    piet = acknowledgement(result, PIET)
    (asked,) = result.of("follow_up")
    assert asked.ref == piet.ref and asked.at == at(2026, 11, 23, 15, 30)
    assert asked.due == due("mailcampaigns", str(piet.data["plan"]), asked.at)
    (told,) = result.of("follow_up_announced")
    assert told.ref == piet.ref and "vervolgvraag" in told.text and format_when(asked.due, "nl") in told.text
    answered = [f for f in result.of("staff_reply") if f.ref == piet.ref][-1]
    assert "vervolgvraag vastgelegd" in answered.data["staff_chat"]
    assert len([f for f in result.of("acknowledgement") if f.recipient == PIET]) == 1


def test_a_critical_incident_is_paged_every_15_minutes_until_acknowledged(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo
    (logged,) = result.of("incident_logged")
    assert (logged.desk, logged.data["priority"]) == ("paynl", "critical")
    # the caller wrote on WhatsApp that morning: the acknowledgement goes there, with the outage charge warning
    assert (logged.channel, logged.recipient, logged.data["delivery_state"]) == ("whatsapp", FATIMA, "sent")
    assert "24/7" in logged.text and "kosten" in logged.text
    assert logged.due == logged.at + timedelta(hours=8)  # the calendar clock, R17
    pages = result.of("page")
    assert [p.at for p in pages] == [at(2026, 11, 30, 23), at(2026, 11, 30, 23, 15), at(2026, 11, 30, 23, 30)]
    assert [f"Pagina {n}" in p.text for n, p in enumerate(pages, 1)] == [True] * 3
    assert all(p.ref == logged.ref and "Betaalpagina" in p.text for p in pages)
    (acked,) = result.of("page_acknowledged")
    assert acked.at > pages[-1].at and "bevestigd door @eva" in acked.text
    (stopped,) = result.of("paging_stopped")
    assert stopped.data["pages"] == "3"


def test_a_quote_agreed_and_billed_on_a_punch_card_and_the_months_statement(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo
    piet = acknowledgement(result, PIET)
    (card,) = result.of("punch_card_bought")
    assert card.data["price"] == "585.00"  # 5 hours at 117.00 (R20)
    quote, urgent = result.of("quote_sent")
    # 6 hours from the card with 5 left: a new block on the way, nothing more for the work (R20)
    assert (quote.ref, quote.recipient, quote.data["rate"], quote.data["total"], quote.data["card_hours"],
            quote.data["new_blocks"]) == (piet.ref, PIET, "117.00", "0.00", "6.00", "1")
    assert "akkoord" in quote.text and "6 uur van je strippenkaart" in quote.text
    # urgent work is ad hoc at the urgent rate, the card left alone (R20)
    assert (urgent.data["rate"], urgent.data["total"], urgent.data["card_hours"]) == ("176.80", "265.20", "0.00")
    assert "ad hoc met spoed" in urgent.text
    (agreed,) = result.of("quote_agreed")
    assert agreed.recipient == PIET and "akkoord" in agreed.text
    told = [f.text for f in result.of("staff_told")]
    assert any(t.startswith("✅") and piet.ref in t for t in told)  # staff hear of the agreement
    (renewed,) = result.of("punch_card_renewed")
    assert renewed.recipient == PIET and "585,00" in renewed.text
    (statement,) = result.of("statement")
    # two punch-card blocks and the month's urgent work, each with 21% VAT (R21)
    assert result.statement.total == Decimal("1736.59") == 2 * Decimal("707.85") + Decimal("320.89")
    assert statement.data["total"] == "1736.59" and "1736.59" in statement.text
    invoices = result.statement.accounts["Bakkerij de Vries"]
    assert sorted(i.kind for i in invoices) == ["monthly", "punch_card", "punch_card"]
    assert all(not i.draft and i.delivery_state == "sent" for i in invoices)


def test_the_month_ends_with_its_invoices_mailed_as_pdf(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo
    (sent,) = result.of("invoice_sent")
    assert sent.recipient == "administratie@bakkerij-devries.example"
    assert sent.at == datetime(2026, 12, 1, 9, tzinfo=AMSTERDAM)  # the first working day after November
    assert (sent.data["total"], sent.data["files"]) == ("320.89", f"{sent.data['number']}.pdf")
    code, out, err = run_cli("--config", str(result.config), "billing", "invoices", "--json")
    assert code == 0, err
    mailed = {i["number"]: (i["kind"], i["delivery_state"], i["recipient"]) for i in json.loads(out)}
    assert set(mailed.values()) == {("punch_card", "sent", "administratie@bakkerij-devries.example"),
                                    ("monthly", "sent", "administratie@bakkerij-devries.example")}
    assert len(mailed) == 3


def test_it_says_where_its_database_is_and_slabot_tickets_list_shows_it(demo: tuple[DemoResult, str]) -> None:
    result, printed = demo
    assert str(result.database) in printed and str(result.config) in printed
    assert "tickets list" in printed and "Act 2 · Pay.nl" in printed
    code, out, err = run_cli("--config", str(result.config), "tickets", "list", "--json")
    assert code == 0, err
    tickets = {t["ref"]: t for t in json.loads(out)}
    assert {f.ref for f in result.of("acknowledgement")} <= set(tickets)
    piet = tickets[acknowledgement(result, PIET).ref]
    assert piet["first_response_due"] == "2026-11-26T10:00:00+01:00" and piet["first_responded_at"] is not None
    assert tickets[acknowledgement(result, SANNE).ref]["first_responded_at"] is None  # breached, still open
    assert any(t["priority"] == "critical" for t in tickets.values())
    code, out, err = run_cli("--config", str(result.config), "tickets", "show", piet["ref"], "--json")
    assert code == 0, err
    sent = [m for m in json.loads(out)["messages"] if m["direction"] == "out"]
    assert sent and all(m["delivery_state"] == "sent" for m in sent)  # all reached the Twilio stand-in


def test_it_overwrites_only_a_database_it_made(tmp_path: Path) -> None:
    database = tmp_path / "mine.db"
    database.write_bytes(b"someone's data")
    with pytest.raises(DemoError, match="not made by slabot demo"):
        prepare(database)
    assert database.read_bytes() == b"someone's data"
    other = tmp_path / "demo.db"
    config = prepare(other).config
    other.write_bytes(b"an earlier run")
    assert prepare(other).config == config and not other.exists()  # its own: cleared for the new run
    code, _, err = run_cli("demo", "--db", str(database), "--quiet")
    assert code == 1 and "not made by slabot demo" in err


def test_the_command_is_registered(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run_cli("demo", "--help")
    out = capsys.readouterr().out
    assert code == 0 and "--db" in out and "--quiet" in out


def test_the_dashboard_shows_the_demos_tickets_with_the_login_it_printed(demo: tuple[DemoResult, str]) -> None:
    result, printed = demo
    left = result.left
    assert left.dashboard_password in printed and f"--config {result.config} run" in printed
    loaded = load_config(result.config, environ={"SLABOT_HTTP_PORT": str(free_port())})

    async def main() -> None:
        async with app_running(Application(loaded)) as app:
            base = f"http://127.0.0.1:{app._port()}/dashboard"
            async with httpx.AsyncClient(base_url=base) as client:
                assert (await client.get("/")).status_code in (302, 303, 307)  # nothing without a login
                form = await client.get("/login")
                csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
                assert csrf is not None
                login = await client.post("/login", data={"csrf": csrf.group(1), "name": left.dashboard_user,
                                                          "password": left.dashboard_password, "next": ""})
                assert login.status_code == 303
                queue = await client.get("/")
                assert queue.status_code == 200
                for fact in result.of("acknowledgement"):
                    if fact.ref and fact.ref != acknowledgement(result, KAREL).ref:  # Karel's is resolved
                        assert fact.ref in queue.text

    asyncio.run(main())


def test_a_stranger_can_follow_it(demo: tuple[DemoResult, str]) -> None:
    from bot.demo.run import RULES

    result, printed = demo
    flat = " ".join(printed.split())
    # every rule it names is said in words the first time
    for code in sorted(set(re.findall(r"\bR\d+\b", flat))):
        first = re.search(rf"\b{code}\b(: )?", flat)
        assert first is not None and first.group(1) == ": " and RULES[code] in flat, code
    # no internal names, no message cut off in the middle
    for internal in ("third_party_refused", "channel_not_in_plan", "punch_card", "billing news", " …"):
        assert internal not in flat, internal
    # the staff chat hears of each ticket when it comes in, not at the next round
    acknowledged = {f.ref: f.at for f in result.of("acknowledgement")}
    for told in result.of("announced"):
        if told.ref in acknowledged:
            assert told.at == acknowledged[told.ref], told.ref
    assert "Read more: docs/demo.md" in flat


def test_the_platform_files_a_request_through_the_api(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo
    (filed,) = result.of("platform_request")
    assert filed.recipient == SANNE and filed.ref and filed.ref.startswith("MC-") and filed.due is not None
    assert filed.ref in filed.text and "POST /api/v1/requests" in filed.summary
