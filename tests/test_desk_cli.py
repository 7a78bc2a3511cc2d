"""Staff actions from the command line: ``slabot tickets reply|resolve|release``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import add_account, contact, email, outbox_rows, pipeline, run_cli, ticket

from storage.database import Database, open_database

EVA = "eva@webshop-noord.nl"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_database(db_url)
    add_account(database, "Webshop Noord", "business", contact("Eva", email=EVA), staff="kees")
    yield database
    database.dispose()


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "slabot.toml"
    path.write_text(f'preset = "paynl"\n[database]\nurl = "{db_url}"\n', encoding="utf-8")
    return path


def cli(config: Path, *argv: str) -> dict[str, object]:
    code, out, err = run_cli("--config", str(config), "tickets", *argv, "--staff", "kees", "--json")
    assert code == 0, err
    return dict(json.loads(out))


def open_ticket(db: Database, external_id: str = "q1") -> str:
    ref = pipeline(db, "paynl").ingest(email(external_id, EVA, "Betaalpagina geeft 500")).ticket_ref
    assert ref is not None
    return ref


def test_release_and_clear(db: Database, config: Path) -> None:
    ref = open_ticket(db)
    window = ticket(db, ref).resolution_due_min, ticket(db, ref).resolution_due_max
    assert window[1] is not None
    released = cli(config, "release", ref)
    assert released == {"ref": ref, "state": "open", "needs_release": True,
                        "resolution_due_min": None, "resolution_due_max": None}
    assert ticket(db, ref).needs_release
    cleared = cli(config, "release", ref, "--clear")
    assert cleared["needs_release"] is False and cleared["resolution_due_max"] == window[1].isoformat()
    assert (ticket(db, ref).resolution_due_min, ticket(db, ref).resolution_due_max) == window
    code, out, _ = run_cli("--config", str(config), "tickets", "release", ref)
    assert code == 0 and out == f"{ref} waits for a release: off the resolution clock\n"


def test_reply_clarify_and_resolve(db: Database, config: Path) -> None:
    ref = open_ticket(db)
    asked = cli(config, "reply", ref, "Welke betaalmethode?", "--clarify")
    assert asked["state"] == "waiting" and asked["first_response"] is True
    assert ticket(db, ref).first_responded_at is not None and ticket(db, ref).waiting_since is not None
    answered = cli(config, "reply", ref, "Opgelost, het lag aan de certificaten.")
    assert answered["first_response"] is False
    sent = [row for row in outbox_rows(db) if row.recipient == EVA]
    assert len(sent) == 3  # the acknowledgement, the question, the answer
    assert cli(config, "resolve", ref)["state"] == "resolved"
    assert ticket(db, ref).state == "resolved"
    code, _, err = run_cli("--config", str(config), "tickets", "reply", ref, "nog iets")
    assert code != 0 and "resolved" in err


def test_an_unknown_ticket_is_a_clear_error(config: Path) -> None:
    for argv in (("release", "PN-99999"), ("resolve", "PN-99999"), ("reply", "PN-99999", "hallo")):
        code, _, err = run_cli("--config", str(config), "tickets", *argv)
        assert code != 0 and "no ticket PN-99999" in err
