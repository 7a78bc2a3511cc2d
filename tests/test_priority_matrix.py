"""R25: any desk's SLA as data. A priority matrix (priority x plan -> first response and resolution, each on its
own clock), per-plan calendars, minute targets, the priority rule table, and staff setting a priority.

Through the public interfaces: ``slabot sla deadline --preset FILE --priority``, the intake pipeline, and
``slabot tickets priority REF NAME`` on SQLite and PostgreSQL; the example preset in ``docs/examples``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import add_account, at, contact, email, pipeline, reminders, run_cli, ticket

from storage.database import Database, open_database
from storage.records import ReminderState

EXAMPLE = str(Path(__file__).resolve().parent.parent / "docs" / "examples" / "hostingdesk.toml")
ANNE = "anne@bakkerij.nl"  # premium: 06:00-24:00 every day, holidays included
BERT = "bert@garage.nl"  # basis: office hours, P2-P4 only


def deadline(*argv: str) -> dict[str, object]:
    code, out, err = run_cli("sla", "deadline", "--preset", EXAMPLE, "--json", *argv)
    assert code == 0, err
    return dict(json.loads(out))


def test_minute_targets_on_an_extended_service_window_with_weekends() -> None:
    # Saturday 23:50: ten minutes left of the premium window, the other five from Sunday 06:00
    found = deadline("--plan", "premium", "--priority", "p1", "--at", "2026-11-21T23:50")
    assert found["priority"] == "p1"
    assert found["first_response_due"] == "2026-11-22T06:05:00+01:00"
    assert found["resolution_due_min"] == found["resolution_due_max"] == "2026-11-22T07:50:00+01:00"
    # the same moment on the office calendar (Plus, P1 30 minutes): Monday 08:30 + 30 minutes
    assert deadline("--plan", "plus", "--priority", "p1", "--at", "2026-11-21T23:50")["first_response_due"] == (
        "2026-11-23T09:00:00+01:00")


def test_holidays_in_or_out_per_plan_calendar() -> None:
    # Christmas Day 2026 is a Friday: closed for the office, open 06:00-24:00 for Premium
    assert deadline("--plan", "premium", "--priority", "p2", "--at", "2026-12-25T10:00")["first_response_due"] == (
        "2026-12-25T10:30:00+01:00")
    assert deadline("--plan", "plus", "--priority", "p2", "--at", "2026-12-25T10:00")["first_response_due"] == (
        "2026-12-28T09:30:00+01:00")


def test_each_cell_has_its_own_clock() -> None:
    # P3 on Basis: 4 business hours to respond, 2 working days to resolve (same local time)
    found = deadline("--plan", "basis", "--priority", "p3", "--at", "2026-11-23T10:00")
    assert found["first_response_due"] == "2026-11-23T14:00:00+01:00"
    assert found["resolution_due_max"] == "2026-11-25T10:00:00+01:00"
    assert found["resolution_clock"] == "working_days"
    # P4: 1 working day to respond; Friday 17:00 -> Monday 17:00
    assert deadline("--plan", "basis", "--priority", "p4", "--at", "2026-11-20T17:00")["first_response_due"] == (
        "2026-11-23T17:00:00+01:00")


def test_a_plan_without_a_priority_serves_it_at_the_nearest_one() -> None:
    found = deadline("--plan", "basis", "--priority", "p1", "--at", "2026-11-23T10:00")
    assert found["priority"] == "p2" and "no p1 targets" in str(found["priority_note"])
    assert found["first_response_due"] == "2026-11-23T11:00:00+01:00"


def test_the_default_priority_and_bad_names() -> None:
    assert deadline("--plan", "basis", "--at", "2026-11-23T10:00")["priority"] == "p3"
    code, _, err = run_cli("sla", "deadline", "--preset", EXAMPLE, "--plan", "basis", "--priority", "p9",
                           "--at", "2026-11-23T10:00")
    assert code == 2 and "--priority: unknown priority 'p9'" in err and "p1, p2, p3, p4" in err
    code, _, err = run_cli("sla", "deadline", "--preset", "mailcampaigns", "--plan", "licentie", "--priority", "p1",
                           "--at", "2026-11-23T10:00")
    assert code == 2 and "has no priorities" in err


def test_the_shipped_presets_answer_as_before() -> None:
    code, out, err = run_cli("sla", "deadline", "--preset", "paynl", "--plan", "premium", "--at",
                             "2026-11-19T16:30", "--json")
    assert code == 0, err
    found = json.loads(out)
    assert found["first_response_due"] == "2026-11-20T16:00:00+01:00" and found["priority"] == "normal"
    code, out, _ = run_cli("sla", "deadline", "--preset", "paynl", "--plan", "premium", "--priority", "critical",
                           "--at", "2026-11-21T03:10", "--json")
    assert json.loads(out)["first_response_due"] == "2026-11-21T11:10:00+01:00"  # 8 h around the clock


# -- the intake and staff ------------------------------------------------------------------------------------


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_database(db_url)
    add_account(database, "Bakkerij Anne", "premium", contact("Anne", email=ANNE), staff="kees")
    add_account(database, "Garage Bert", "basis", contact("Bert", email=BERT))
    yield database
    database.dispose()


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "slabot.toml"
    # the config's preset is a file path, relative to the config file or absolute
    path.write_text(f'preset = "{EXAMPLE}"\n[database]\nurl = "{db_url}"\n', encoding="utf-8")
    return path


def test_the_rule_table_decides_and_records_its_reasons(db: Database) -> None:
    intake = pipeline(db, EXAMPLE, at(2026, 11, 23, 10))
    outage = intake.ingest(email("m1", ANNE, "Onze website is onbereikbaar sinds 09:50",
                                 received_at=at(2026, 11, 23, 10)))
    found = ticket(db, str(outage.ticket_ref))
    assert (found.sla_priority, found.priority_rule) == ("p1", "outage_words")
    assert found.priority_reasons == ("the request mentions 'onbereikbaar'", "an outage of a whole service is P1")
    assert found.first_response_due == at(2026, 11, 23, 10, 15)
    billing = intake.ingest(email("m2", BERT, "Klopt deze factuur?", received_at=at(2026, 11, 23, 10)))
    assert ticket(db, str(billing.ticket_ref)).sla_priority == "p4"
    plain = intake.ingest(email("m3", BERT, "Hoe stel ik een doorschakeling in?", received_at=at(2026, 11, 23, 10)))
    plain_ticket = ticket(db, str(plain.ticket_ref))
    assert (plain_ticket.sla_priority, plain_ticket.priority_rule) == ("p3", "default")
    assert plain_ticket.first_response_due == at(2026, 11, 23, 14)


def test_urgency_and_impact_answers_decide(db: Database) -> None:
    intake = pipeline(db, EXAMPLE, at(2026, 11, 23, 10))
    for external_id, urgency, impact, expected in (("u1", "cannot_work", "all", "p1"), ("u2", "cannot_work", "one", "p2"),
                                                   ("u3", "missing_function", "all", "p2"),
                                                   ("u4", "inconvenient", "all", "p4")):
        msg = replace(email(external_id, ANNE, "Vraag over de mail", received_at=at(2026, 11, 23, 10)),
                      urgency=urgency, impact=impact)
        ref = intake.ingest(msg).ticket_ref
        assert ticket(db, str(ref)).sla_priority == expected, (urgency, impact)
    # a basis customer who cannot work at all: basis has no P1, served as P2
    msg = replace(email("u5", BERT, "Niets werkt", received_at=at(2026, 11, 23, 10)), urgency="cannot_work",
                  impact="all")
    served = ticket(db, str(intake.ingest(msg).ticket_ref))
    assert served.sla_priority == "p2" and served.priority_reasons[-1] == "plan basis has no p1 targets: served as p2"


def test_staff_set_the_priority_and_the_deadlines_follow_from_receipt(db: Database, config: Path) -> None:
    received = at(2030, 11, 25, 10)  # ahead of the clock of the command line, so no reminder is past
    ref = str(pipeline(db, EXAMPLE, received).ingest(
        email("m1", ANNE, "Hoe stel ik een doorschakeling in?", received_at=received)).ticket_ref)
    before = ticket(db, ref)
    assert before.sla_priority == "p3" and before.first_response_due == at(2030, 11, 25, 14)
    code, out, err = run_cli("--config", str(config), "tickets", "priority", ref, "p1", "--staff", "kees", "--json")
    assert code == 0, err
    change = json.loads(out)
    assert (change["old"], change["new"]) == ("p3", "p1")
    assert change["first_response_due"] == {"old": "2030-11-25T14:00:00+01:00", "new": "2030-11-25T10:15:00+01:00"}
    assert change["resolution_due_max"] == {"old": "2030-11-26T10:00:00+01:00", "new": "2030-11-25T12:00:00+01:00"}
    after = ticket(db, ref)
    assert (after.sla_priority, after.priority_rule, after.first_response_due, after.response_due) == (
        "p1", "staff", at(2030, 11, 25, 10, 15), at(2030, 11, 25, 10, 15))
    assert after.terms is not None and after.terms["priority"] == "p1"
    # the reminders follow the 15-minute window: 75% and a tenth of it before, then the breach
    planned = sorted((r.due_at for r in reminders(db, after.id) if r.state == ReminderState.PLANNED))
    assert [p.astimezone(received.tzinfo) for p in planned] == [
        at(2030, 11, 25, 10, 11).replace(second=15), at(2030, 11, 25, 10, 13).replace(second=30),
        at(2030, 11, 25, 10, 15)]
    # the timeline says old and new deadline
    code, out, _ = run_cli("--config", str(config), "tickets", "show", ref, "--json")
    shown = json.loads(out)
    assert shown["sla_priority"] == "p1" and shown["priority_reasons"] == ["set by kees"]
    assert [e["kind"] for e in shown["events"]][-1] == "priority_changed"
    code, out, _ = run_cli("--config", str(config), "tickets", "priority", ref, "p4", "--staff", "kees")
    assert code == 0
    assert out == (f"{ref}: priority p1 -> p4; response due 2030-11-25T10:15:00+01:00 -> 2030-11-26T10:00:00+01:00; "
                   "resolution by 2030-11-25T12:00:00+01:00 -> 2030-11-27T10:00:00+01:00\n")


def test_bad_priority_changes_are_refused_plainly(db: Database, config: Path) -> None:
    ref = str(pipeline(db, EXAMPLE, at(2026, 11, 23, 10)).ingest(
        email("m1", BERT, "Vraag", received_at=at(2026, 11, 23, 10))).ticket_ref)
    code, _, err = run_cli("--config", str(config), "tickets", "priority", ref, "p7", "--staff", "kees")
    assert code == 2 and "unknown priority 'p7'" in err
    code, _, err = run_cli("--config", str(config), "tickets", "priority", "HD-99999", "p1", "--staff", "kees")
    assert code == 2 and "no ticket HD-99999" in err
    # basis has no P1: the change is made at P2, and says so
    code, out, err = run_cli("--config", str(config), "tickets", "priority", ref, "p1", "--staff", "kees", "--json")
    assert code == 0, err
    assert json.loads(out)["new"] == "p2" and "served as p2" in json.loads(out)["note"]


def test_priority_from_the_staff_chat(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """``/priority REF NAME`` in the Telegram staff chat: the same use case, answered in the staff's language."""
    import asyncio

    from pydantic import SecretStr
    from test_staffbot import STAFF_CHAT, ANNA, answered
    from test_telegram_standin import serving

    from bot.config import TelegramConfig
    from bot.demo.standins.telegram import TelegramStandIn
    from bot.staffchat.staffbot import StaffBot

    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    received = at(2026, 11, 23, 10)
    intake = pipeline(db, EXAMPLE, received)
    ref = str(intake.ingest(email("m1", BERT, "Hoe stel ik een doorschakeling in?", received_at=received)).ticket_ref)
    standin = TelegramStandIn()

    async def main() -> None:
        async with serving(standin.app()) as url:
            config = TelegramConfig(token=SecretStr("123:TEST"), staff_chat_id=STAFF_CHAT, staff_user_ids=[ANNA],
                                    api_base_url=url)
            bot = StaffBot(config, db, now=lambda: received, pipeline=intake)
            await bot.start()
            try:
                standin.push_message(STAFF_CHAT, ANNA, f"/priority {ref} p2", username="anna")
                standin.push_message(STAFF_CHAT, ANNA, f"/priority {ref} p9", username="anna", language_code="en")
                standin.push_message(STAFF_CHAT, ANNA, f"/priority {ref}", username="anna", language_code="en")
                texts = await answered(standin, 3)
            finally:
                await bot.stop()
        assert texts[0] == (f"{ref}: prioriteit p3 → p2. Reactie uiterlijk maandag 23 november 2026 om 11:00 (was "
                            "maandag 23 november 2026 om 14:00); oplossen uiterlijk dinsdag 24 november 2026 om 09:00 "
                            "(was woensdag 25 november 2026 om 10:00).")
        assert "unknown priority 'p9'" in texts[1] and "p1, p2, p3, p4" in texts[1]
        assert texts[2].endswith("/priority REF name")

    asyncio.run(main())
    assert ticket(db, ref).sla_priority == "p2" and ticket(db, ref).priority_rule == "staff"


def test_a_share_before_reminder_says_the_time_left() -> None:
    """R16 scaled: the ping of a 15-minute window says 1 minute 30 left, not "1 hour left"."""
    from datetime import timedelta

    from bot.staffchat.rounds import reminder_lead

    assert reminder_lead("1h or 10% before", "en", timedelta(seconds=90)) == "1 minute of opening hours left; "
    assert reminder_lead("1h before", "nl") == "nog 1 uur binnen openingstijden; "


def test_the_acknowledgement_names_the_priority_and_its_targets(db: Database) -> None:
    received = at(2026, 11, 23, 10)
    ref = pipeline(db, EXAMPLE, received).ingest(email("m1", ANNE, "Onze website is onbereikbaar",
                                                       received_at=received)).ticket_ref
    from helpers import outbound

    (ack,) = outbound(ticket(db, str(ref)))
    assert "Je aanvraag heeft prioriteit P1 - kritiek.\nEen medewerker reageert uiterlijk maandag 23 november 2026 om " \
           "10:15. Dat is 15 minuten binnen onze openingstijden (maandag t/m zondag 06:00-24:00)" in ack.text
    assert "een oplossing binnen 2 uur (uiterlijk maandag 23 november 2026 om 12:00)" in ack.text


def test_the_sla_report_groups_per_priority(db: Database, config: Path) -> None:
    intake = pipeline(db, EXAMPLE, at(2026, 11, 23, 10))
    for external_id, text in (("r1", "Onze website is onbereikbaar"), ("r2", "De server is down"),
                              ("r3", "Klopt deze factuur?")):
        assert intake.ingest(email(external_id, ANNE, text, received_at=at(2026, 11, 23, 10))).ticket_ref
    argv = ("--config", str(config), "report", "--from", "2026-11-23", "--to", "2026-11-23",
            "--as-of", "2026-11-23T12:00", "--out", str(config.parent))
    code, out, err = run_cli(*argv, "--json")
    assert code == 0, err
    data = json.loads(out)
    # P1 is 15 minutes: both outages breached by noon; P4's first response (a working day) still pending
    assert {g["name"]: (g["tickets"], g["first_response"]["breached"]) for g in data["priorities"]} == {
        "p1": (2, 2), "p4": (1, 0)}
    assert sorted(t["priority"] for t in data["tickets"]) == ["p1", "p1", "p4"]
    code, out, err = run_cli(*argv)
    assert code == 0 and "-- per priority" in out
