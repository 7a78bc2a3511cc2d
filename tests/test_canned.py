"""Canned answers: kept with ``slabot canned`` and in the dashboard, filled from the ticket ({contact}, {ref}, {due},
{staff}) in the contact's language, inserted in the dashboard's reply box and sent with /canned in the staff chat.
On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from helpers import (
    MONDAY_10,
    preset,
    run_cli,
    ticket,
)
from test_dashboard import Browser, anna_hash, dashboard_config, serve  # noqa: F401 - anna_hash is a fixture
from test_staffbot import ANNA, STAFF_CHAT, answered, db, open_ticket, staff_chat  # noqa: F401 - db is a fixture

from bot.demo.standins.telegram import TelegramStandIn
from bot.web.dashboard.web import Dashboard
from storage.database import Database

THANKS_NL = "Dag {contact}, we beantwoorden {ref} uiterlijk {due}. Groet, {staff} {onbekend}"


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "slabot.toml"
    path.write_text(f'preset = "mailcampaigns"\n[database]\nurl = "{db_url}"\n', encoding="utf-8")
    return path


def canned(config: Path, *argv: str) -> tuple[int, str, str]:
    return run_cli("--config", str(config), "canned", *argv)


def test_the_command_line_adds_lists_changes_and_removes(config: Path, db: Database) -> None:  # noqa: F811
    assert canned(config, "add", "bedankt", THANKS_NL, "--staff", "anna")[1] == "bedankt [nl] added\n"
    assert canned(config, "add", "bedankt", "Hi {contact}", "--language", "en")[1] == "bedankt [en] added\n"
    assert canned(config, "add", "Bedankt", "Dag {contact}!")[1] == "bedankt [nl] changed\n"
    code, out, _ = canned(config, "list", "--json")
    assert code == 0 and [(a["name"], a["language"], a["text"]) for a in json.loads(out)] == [
        ("bedankt", "en", "Hi {contact}"), ("bedankt", "nl", "Dag {contact}!")]
    bad, _, err = canned(config, "add", "twee woorden", "x")
    assert bad != 0 and "a name is" in err
    assert canned(config, "remove", "bedankt", "--language", "en")[0] == 0
    assert canned(config, "list")[1] == "bedankt [nl]: Dag {contact}!\n"
    assert canned(config, "remove", "bedankt")[0] == 0
    assert canned(config, "remove", "bedankt")[0] == 1
    assert "no canned answers" in canned(config, "list")[1]


def test_the_dashboard_keeps_them_and_inserts_one_filled_in_the_reply_box(db: Database, anna_hash: str) -> None:  # noqa: F811
    ref = open_ticket(db)

    async def body(b: Browser) -> None:
        await b.login()
        token = await b.csrf("/canned")
        refused = await b.post("/canned", {"csrf": "x", "name": "bedankt", "language": "nl", "text": THANKS_NL})
        assert refused.status_code == 403
        saved = await b.post("/canned", {"csrf": token, "name": "bedankt", "language": "nl", "text": THANKS_NL})
        assert saved.status_code == 303
        bad = await b.post("/canned", {"csrf": token, "name": "", "language": "nl", "text": "x"})
        assert bad.status_code == 400
        listing = await b.get("/canned")
        assert 'data-canned="bedankt-nl"' in listing.text
        page = await b.get(f"/tickets/{ref}?canned=bedankt")
        assert page.status_code == 200
        box = page.text[page.text.index('id="reply-text"'):]
        box = box[:box.index("</textarea>")]
        assert f"Dag Piet, we beantwoorden {ref} uiterlijk donderdag 26 november 2026 om 10:00. Groet, anna" in box
        assert "{onbekend}" in box  # not a placeholder: left as written
        missing = await b.get(f"/tickets/{ref}?canned=nergens")
        assert "no canned answer" in missing.text
        removed = await b.post("/canned", {"csrf": token, "name": "bedankt", "language": "nl", "action": "remove"})
        assert removed.status_code == 303
        assert 'id="no-canned"' in (await b.get("/canned")).text

    serve(Dashboard(dashboard_config(anna_hash), db, preset("mailcampaigns"), now=lambda: MONDAY_10), body)


def test_canned_in_the_staff_chat_sends_it_as_a_reply(db: Database, config: Path) -> None:  # noqa: F811
    ref = open_ticket(db)
    canned(config, "add", "bedankt", "Dag {contact}, we kijken naar {ref}. {staff}")
    standin = TelegramStandIn()

    async def main() -> None:
        async with staff_chat(db, standin):
            standin.push_message(STAFF_CHAT, ANNA, "/canned", username="anna")
            standin.push_message(STAFF_CHAT, ANNA, f"/canned {ref} bedankt", username="anna")
            texts = await answered(standin, 2)
            assert texts[0] == "bedankt"

    asyncio.run(main())
    replies = [m for m in ticket(db, ref).messages if m.direction == "out" and m.staff]
    assert [m.text for m in replies] == [f"Dag Piet, we kijken naar {ref}. anna"]
    assert ticket(db, ref).first_responded_at is not None
