"""The sender of a mail is the From header's addr-spec, never its display name (issue 18, point 1).

Mails are piped in as an MTA does (``slabot ingest email -``) and what became of them is read back through
``slabot tickets ... --json`` and ``slabot mail kept --json``.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import add_account, contact, run_cli

from storage.database import open_database

C3 = "c3@klant3.example"
PIET = "piet@klant3.example"
ATTACKER = "attacker@evil.example"


@pytest.fixture
def cli(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    db = open_database(db_url)
    add_account(db, "Klant 3", "licentie", contact("C3", email=C3), contact("Piet", email=PIET))
    db.dispose()
    config = tmp_path / "slabot.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n[email]\nfrom_address = "support@desk.example"\n', encoding="utf-8")

    def run(*argv: str, stdin: bytes = b"") -> tuple[int, Any]:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        code, out, err = run_cli("--config", str(config), *argv, "--json")
        return code, json.loads(out) if out.strip() else err

    return run


def mail(sender: bytes, message_id: str = "m1@klant3.example") -> bytes:
    return (b"From: " + sender + b"\r\nTo: support@desk.example\r\nSubject: Kassa stuk\r\n"
            b"Message-ID: <" + message_id.encode() + b">\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\n\r\n"
            b"De kassa doet het niet.\r\n")


def _ticket(cli: Any, ref: str) -> dict[str, Any]:
    code, shown = cli("tickets", "show", ref)
    assert code == 0, shown
    return dict(shown)


def test_a_display_name_that_looks_like_an_address_is_not_the_sender(cli: Any) -> None:
    code, (result,) = cli("ingest", "email", "-", stdin=mail(f"{C3} <{ATTACKER}>".encode()))
    assert code == 0 and result["outcome"] == "unknown_sender", result
    shown = _ticket(cli, result["ticket"])
    assert shown["account"] is None and shown["contact"] is None
    inbound = [m for m in shown["messages"] if m["direction"] == "in"]
    outbound = [m for m in shown["messages"] if m["direction"] == "out"]
    assert [m["sender"] for m in inbound] == [ATTACKER]
    assert [m["recipient"] for m in outbound] == [ATTACKER]


def test_an_encoded_display_name_with_a_line_break_changes_nothing(cli: Any) -> None:
    name = b"=?utf-8?q?Piet=0D=0ABcc:_victim@evil.example?="
    code, (result,) = cli("ingest", "email", "-", stdin=mail(name + b" <" + PIET.encode() + b">"))
    assert code == 0 and result["outcome"] == "new_ticket", result
    shown = _ticket(cli, result["ticket"])
    assert shown["account"] == "Klant 3" and shown["contact"] == "Piet"
    assert [m["recipient"] for m in shown["messages"] if m["direction"] == "out"] == [PIET]
    assert "victim@evil.example" not in json.dumps([m["recipient"] for m in shown["messages"]])


@pytest.mark.parametrize("sender", [
    f"{C3}, {ATTACKER}".encode(),
    f"<{C3}> <{ATTACKER}>".encode(),
    f"Klant <{C3}>, Ander <{ATTACKER}>".encode(),
])
def test_a_from_that_is_not_exactly_one_address_is_kept_for_staff_unanswered(cli: Any, sender: bytes) -> None:
    code, (result,) = cli("ingest", "email", "-", stdin=mail(sender))
    assert code == 65 and result["outcome"] == "kept_aside" and result["ticket"] is None, result
    assert cli("tickets", "list")[1] == []
    code, kept = cli("mail", "kept")
    assert code == 0 and len(kept) == 1 and "From" in kept[0]["reason"]


def test_two_from_headers_are_kept_for_staff(cli: Any) -> None:
    raw = mail(C3.encode()).replace(b"To:", b"From: " + ATTACKER.encode() + b"\r\nTo:", 1)
    code, (result,) = cli("ingest", "email", "-", stdin=raw)
    assert code == 65 and result["outcome"] == "kept_aside", result
    assert cli("tickets", "list")[1] == []


@pytest.mark.parametrize("sender", [
    b"Jansen, Piet <piet@klant3.example>",
    b'"Jansen, Piet" <PIET@klant3.example>',
    b"piet@klant3.example (Piet Jansen)",
    b"Piet J. Jansen <piet@klant3.example>",
])
def test_ordinary_from_headers_still_name_the_contact(cli: Any, sender: bytes) -> None:
    code, (result,) = cli("ingest", "email", "-", stdin=mail(sender))
    assert code == 0 and result["outcome"] == "new_ticket", result
    assert _ticket(cli, result["ticket"])["contact"] == "Piet"
