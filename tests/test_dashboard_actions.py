"""Staff act on tickets from the dashboard: every action a POST with the session's CSRF token, done by the use case
the staff chat and the command line use (bot.desk, bot.billing), shown at once in the timeline, and heard of in
the staff chat. On SQLite and PostgreSQL.

Each action is checked through HTTP (the dashboard's ASGI app, as in test_dashboard) and compared with the same
action from ``slabot tickets ...`` on a twin ticket.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import (
    MONDAY_10,
    add_account,
    contact,
    email,
    pipeline,
    preset,
    run_cli,
    ticket,
    whatsapp,
)
from test_dashboard import Browser, anna_hash, dashboard_config, serve  # noqa: F401 - anna_hash is a fixture
from test_staffbot import answered, staff_chat

from bot.demo.standins.telegram import TelegramStandIn
from bot.web.dashboard.web import Dashboard
from storage.billing import BillingRepository
from storage.database import Database, open_database
from storage.repositories import TicketRepository
from storage.staffchat import DASHBOARD_ACTION, StaffChatRepository

PIET = "piet@bakkerij-jansen.nl"
PIET_PHONE = "+31612345678"
LATER = MONDAY_10 + timedelta(hours=1)


@dataclass(frozen=True)
class Desk:
    db: Database
    first: str  # Piet's question by e-mail
    twin: str  # the same question again: acted on by the command line
    stranger: str  # an unknown sender (R4)
    old_whatsapp: str  # a WhatsApp question of two days ago: outside the 24-hour window
    config: Path
    password_hash: str

    def run(self, body: Callable[[Browser], Awaitable[None]], **kw: Any) -> None:
        dashboard = Dashboard(dashboard_config(self.password_hash), self.db, preset("mailcampaigns"),
                              now=lambda: LATER, **kw)
        serve(dashboard, body)

    def cli(self, *argv: str) -> dict[str, Any]:
        code, out, err = run_cli("--config", str(self.config), *argv, "--staff", "anna", "--json")
        assert code == 0, err
        parsed: dict[str, Any] = json.loads(out)
        return parsed


@pytest.fixture
def desk(db_url: str, tmp_path: Path, anna_hash: str) -> Iterator[Desk]:  # noqa: F811
    db = open_database(db_url)
    add_account(db, "Bakkerij Jansen", "ondersteuning", contact("Piet", email=PIET, phone=PIET_PHONE), staff="anna")
    intake = pipeline(db, "mailcampaigns", LATER)

    def ref_of(result: Any) -> str:
        assert result.ticket_ref is not None
        return str(result.ticket_ref)

    first = ref_of(intake.ingest(email("<q1@jansen>", PIET, "Kunnen jullie de opmaak van de nieuwsbrief aanpassen?",
                                       subject="Opmaak nieuwsbrief")))
    twin = ref_of(intake.ingest(email("<q2@jansen>", PIET, "Kunnen jullie de opmaak van de nieuwsbrief aanpassen?",
                                      subject="Opmaak nieuwsbrief (2)")))
    stranger = ref_of(intake.ingest(email("<q3@elders>", "iemand@elders.example", "Hallo, ik ben nieuw",
                                          subject="Vraag")))
    old = MONDAY_10 - timedelta(days=3)
    old_whatsapp = ref_of(pipeline(db, "mailcampaigns", old).ingest(
        whatsapp("SM-old", PIET_PHONE, "Lukt het versturen al?", received_at=old)))
    config = tmp_path / "slabot.toml"
    config.write_text(f'preset = "mailcampaigns"\n[database]\nurl = "{db_url}"\n', encoding="utf-8")
    yield Desk(db, first, twin, stranger, old_whatsapp, config, anna_hash)
    db.dispose()


async def act(b: Browser, ref: str, action: str, **fields: str) -> Any:
    token = await b.csrf(f"/tickets/{ref}")
    return await b.post(f"/tickets/{ref}/act", {"csrf": token, "action": action, **fields})


def events_of(db: Database, ref: str) -> list[str]:
    return [e["kind"] for e in db.run(lambda s: TicketRepository(s).events(ticket(db, ref).id))]


def test_no_action_without_a_login_or_without_the_csrf_token(desk: Desk) -> None:
    before = events_of(desk.db, desk.first)

    async def body(b: Browser) -> None:
        anonymous = await b.post(f"/tickets/{desk.first}/act", {"csrf": "x", "action": "resolve"})
        assert anonymous.status_code == 303 and "/login" in anonymous.headers["location"]
        await b.login()
        for token in ("", "made-up"):
            refused = await b.post(f"/tickets/{desk.first}/act", {"csrf": token, "action": "reply", "text": "Hoi"})
            assert refused.status_code == 403
        cross_site = await b.client.post(f"/dashboard/tickets/{desk.first}/act", data={"action": "resolve"})
        assert cross_site.status_code == 403

    desk.run(body)
    assert events_of(desk.db, desk.first) == before
    assert ticket(desk.db, desk.first).first_responded_at is None
    assert ticket(desk.db, desk.first).state == "open"


def test_reply_from_the_dashboard_is_what_the_command_line_does(desk: Desk) -> None:
    text = "Dag Piet, we passen de opmaak vandaag aan."

    async def body(b: Browser) -> None:
        await b.login()
        done = await act(b, desk.first, "reply", text=text)
        assert done.status_code == 303 and done.headers["location"].endswith(f"/tickets/{desk.first}#timeline")
        page = await b.get(f"/tickets/{desk.first}")
        assert 'id="flash"' in page.text and "de klant geantwoord" in page.text
        assert text in page.text  # in the timeline at once
        again = await b.get(f"/tickets/{desk.first}")
        assert 'id="flash"' not in again.text  # said once

    desk.run(body)
    desk.cli("tickets", "reply", desk.twin, text)
    mine, theirs = ticket(desk.db, desk.first), ticket(desk.db, desk.twin)
    assert mine.first_responded_at == LATER and theirs.first_responded_at is not None
    assert mine.state == theirs.state == "open"

    def staff_messages(ref: str) -> list[tuple[Any, ...]]:
        return [(m.purpose, m.staff, m.text, m.recipient, m.channel)
                for m in ticket(desk.db, ref).messages if m.direction == "out" and m.staff]

    assert staff_messages(desk.first) == staff_messages(desk.twin) == [("reply", "anna", text, PIET, "email")]
    assert [k for k in events_of(desk.db, desk.first) if k != DASHBOARD_ACTION] == events_of(desk.db, desk.twin)


def test_every_action_shows_in_the_timeline_and_matches_the_command_line(desk: Desk) -> None:
    async def body(b: Browser) -> None:
        await b.login()
        steps: list[tuple[str, dict[str, str], str]] = [
            ("take", {}, "het ticket opgepakt"),
            ("assign", {"assignee": "Bram"}, "het ticket aan Bram gegeven"),
            ("note", {"text": "Piet belt morgen terug"}, "een notitie gemaakt"),
            ("classify", {"kind": "service", "reason": "opmaak is betaalde service"}, "ingedeeld als service"),
            ("quote", {"hours": "2"}, "een offerte van 2 uur gestuurd"),
            ("hours", {"hours": "1,5", "note": "sjabloon"}, "1.5 uur geschreven"),
            ("clarify", {"text": "Welke nieuwsbrief bedoelt u?"}, "om verduidelijking gevraagd"),
            ("release", {}, "wachtend op een release"),
            ("release_off", {}, "wacht niet meer op een release"),
            ("resolve", {}, "het ticket opgelost"),
            ("reopen", {}, "het ticket heropend"),
        ]
        for action, fields, phrase in steps:
            done = await act(b, desk.first, action, **fields)
            assert done.status_code == 303, (action, done.text)
            page = await b.get(f"/tickets/{desk.first}")
            assert phrase in page.text, action
        refused = await act(b, desk.first, "hours", hours="veel")
        assert refused.status_code == 400 and "geen aantal uren" in refused.text
        empty = await act(b, desk.first, "reply", text="  ")
        assert empty.status_code == 400
        unknown = await act(b, desk.first, "explode")
        assert unknown.status_code == 400

    desk.run(body)
    record = ticket(desk.db, desk.first)
    assert record.state == "open" and record.kind == "service" and not record.needs_release
    assert "opmaak is betaalde service" in record.kind_reasons
    kinds = events_of(desk.db, desk.first)
    for kind in ("taken", "note", "classified", "quote_sent", "needs_release", "release_cleared", "resolved",
                 "reopened"):
        assert kind in kinds
    assert kinds.count(DASHBOARD_ACTION) == 11
    # the command line on the twin: the same quote and the same hours
    desk.cli("tickets", "classify", desk.twin, "service")
    desk.cli("tickets", "quote", desk.twin, "2")
    ids = [ticket(desk.db, r).id for r in (desk.first, desk.twin)]
    quotes = desk.db.run(lambda s: [BillingRepository(s).current_quote(i) for i in ids])
    assert quotes[0] is not None and quotes[1] is not None
    assert (quotes[0].billed_hours, quotes[0].rate, quotes[0].total) == (
        quotes[1].billed_hours, quotes[1].rate, quotes[1].total)
    entries = desk.db.run(lambda s: BillingRepository(s).entries(ids[0]))
    assert [(e.hours, e.staff, e.note) for e in entries] == [(pytest.approx(1.5), "anna", "sjabloon")]


def test_link_an_unverified_ticket_gives_it_the_plan_and_its_deadlines(desk: Desk) -> None:
    async def body(b: Browser) -> None:
        await b.login()
        page = await b.get(f"/tickets/{desk.stranger}")
        assert 'id="link-form"' in page.text and "Bakkerij Jansen" in page.text
        done = await act(b, desk.stranger, "link", account="Bakkerij Jansen")
        assert done.status_code == 303
        again = await act(b, desk.stranger, "link", account="Bakkerij Jansen")
        assert again.status_code == 400 and "only an unverified ticket" in again.text

    desk.run(body)
    linked = ticket(desk.db, desk.stranger)
    assert linked.state == "open" and linked.account == "Bakkerij Jansen" and linked.plan == "ondersteuning"
    assert linked.first_response_due is not None and linked.first_response_due > MONDAY_10
    assert "linked" in events_of(desk.db, desk.stranger)


def test_whatsapp_outside_the_window_offers_the_approved_template(desk: Desk) -> None:
    async def body(b: Browser) -> None:
        await b.login()
        page = await b.get(f"/tickets/{desk.old_whatsapp}")
        assert 'id="whatsapp-window"' in page.text and "HX123" in page.text and "Als sjabloon sturen" in page.text
        inside = await b.get(f"/tickets/{desk.first}")
        assert 'id="whatsapp-window"' not in inside.text

    desk.run(body, whatsapp_templates={"default": "HX123"})

    async def without(b: Browser) -> None:
        await b.login()
        page = await b.get(f"/tickets/{desk.old_whatsapp}")
        assert "geen goedgekeurd sjabloon" in page.text

    desk.run(without)


def test_the_staff_chat_hears_of_a_dashboard_action(desk: Desk) -> None:
    standin = TelegramStandIn()

    async def main() -> None:
        async with staff_chat(desk.db, standin) as bot:
            await bot.announce_new()  # the first round sets the checkpoint

            async def body(b: Browser) -> None:
                await b.login()
                assert (await act(b, desk.first, "reply", text="We kijken ernaar.")).status_code == 303

            dashboard = Dashboard(dashboard_config(desk.password_hash), desk.db, preset("mailcampaigns"),
                                  now=lambda: LATER)
            await asyncio.to_thread(serve, dashboard, body)
            await bot.announce_new()
            texts = await answered(standin, 1)
            assert any(re.search(rf"anna .*{desk.first}.*We kijken ernaar", text) for text in texts), texts

    asyncio.run(main())
    assert desk.db.run_direct(lambda d: StaffChatRepository(d).pending_posts()) == []


def test_the_workspace_texts_shadow_no_dashboard_text_and_exist_in_both_languages() -> None:
    from bot.staff_texts import ACTION_PHRASES, DASHBOARD_TEXTS, WORKSPACE_TEXTS

    for language in ("nl", "en"):
        assert not set(DASHBOARD_TEXTS[language]) & set(WORKSPACE_TEXTS[language])
    assert set(WORKSPACE_TEXTS["nl"]) == set(WORKSPACE_TEXTS["en"])
    assert set(ACTION_PHRASES["nl"]) == set(ACTION_PHRASES["en"])


def test_live_stamp_changes_with_the_ticket_and_two_agents_see_each_other(desk: Desk) -> None:
    async def body(anna: Browser) -> None:
        assert (await anna.get("/api/live")).status_code == 401
        await anna.login()
        before = (await anna.get(f"/api/live?ref={desk.first}")).json()
        assert before["others"] == [] and before["stamp"]
        queue_before = (await anna.get("/api/live")).json()["stamp"]
        assert (await anna.get(f"/api/live?ref={desk.first}")).json()["stamp"] == before["stamp"]  # nothing changed
        await act(anna, desk.first, "note", text="Piet belt terug")
        after = (await anna.get(f"/api/live?ref={desk.first}")).json()
        assert after["stamp"] != before["stamp"]
        assert (await anna.get("/api/live")).json()["stamp"] != queue_before
        # Bram opens the same ticket in his own browser and types: each sees the other
        async with httpx.AsyncClient(transport=anna.client._transport, base_url=str(anna.client.base_url)) as other:
            bram = Browser(other)
            await bram.login("Bram")
            seen = (await bram.get(f"/api/live?ref={desk.first}&typing=1")).json()
            assert seen["others"] == [{"name": "anna", "typing": False}]
            assert (await anna.get(f"/api/live?ref={desk.first}")).json()["others"] == [
                {"name": "Bram", "typing": True}]
            assert (await anna.get(f"/api/live?ref={desk.twin}")).json()["others"] == []  # another ticket

    desk.run(body)


def test_staff_set_the_priority_from_the_dashboard(db_url: str, anna_hash: str) -> None:  # noqa: F811
    """R25: the dashboard's priority action is Desk.set_priority, as /priority and `tickets priority` are: the
    deadlines again from receipt, said on the timeline and in the staff chat's feed."""
    from bot.presets import load_preset

    example = load_preset(str(Path(__file__).resolve().parent.parent / "docs" / "examples" / "hostingdesk.toml"))
    db = open_database(db_url)
    try:
        add_account(db, "Garage Bert", "plus", contact("Bert", email=PIET))
        from bot.intake import IntakePipeline

        ref = IntakePipeline(db, example, now=lambda: MONDAY_10).ingest(
            email("<p1@bert>", PIET, "Hoe stel ik een doorschakeling in?", received_at=MONDAY_10)).ticket_ref
        assert ref is not None
        before = ticket(db, ref)
        assert before.sla_priority == "p3"

        async def body(b: Browser) -> None:
            await b.login()
            page = await b.get(f"/tickets/{ref}")
            assert 'id="priority-form"' in page.text
            done = await act(b, ref, "priority", priority="p1")
            assert done.status_code in (200, 303), done.text

        serve(Dashboard(dashboard_config(anna_hash), db, example, now=lambda: LATER), body)
        after = ticket(db, ref)
        assert after.sla_priority == "p1" and after.first_response_due is not None
        assert before.first_response_due is not None and after.first_response_due < before.first_response_due
        kinds = [e["kind"] for e in db.run(lambda s: TicketRepository(s).events(after.id))]
        assert "priority_changed" in kinds and DASHBOARD_ACTION in kinds
    finally:
        db.dispose()
