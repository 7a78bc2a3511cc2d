"""Mail kept aside, from the command line: ``slabot mail kept``, ``mail raw`` and ``mail reprocess``."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import add_account, contact, run_cli
from sqlalchemy import select

from storage import models as m
from storage.database import open_database

PIET = "piet@bakkerij-jansen.nl"
BROKEN = b"De verzendknop werkt niet meer sinds vanochtend.\r\nGroet, Piet\r\n"  # the headers got lost on the way


def test_a_kept_mail_is_listed_shown_repaired_and_reprocessed_once(tmp_path: Path, db_url: str) -> None:
    db = open_database(db_url)
    add_account(db, "Bakkerij Jansen", "licentie", contact("Piet", email=PIET))
    config = tmp_path / "slabot.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n[email]\nfrom_address = "support@mailcampaigns.example"\n',
                      encoding="utf-8")
    broken = tmp_path / "broken.eml"
    broken.write_bytes(BROKEN)

    def cli(*argv: str) -> tuple[int, str, str]:
        return run_cli("--config", str(config), *argv)

    assert cli("ingest", "email", str(broken))[0] == 65
    code, out, _ = cli("mail", "kept", "--json")
    assert code == 0
    (kept,) = json.loads(out)
    assert kept["source"] == str(broken) and kept["reprocessed_at"] is None and kept["bytes"] == len(BROKEN)
    code, out, _ = cli("mail", "kept")
    assert code == 0 and f"{kept['id']:>5}" in out and kept["reason"] in out
    code, out, _ = cli("mail", "raw", str(kept["id"]))
    assert code == 0 and out.encode() == BROKEN

    code, out, _ = cli("mail", "reprocess", str(kept["id"]))  # the same bytes still are no mail
    assert code == 65 and "still cannot be read" in out
    assert len(json.loads(cli("mail", "kept", "--json")[1])) == 1

    repaired = tmp_path / "repaired.eml"
    repaired.write_bytes(f"From: Piet <{PIET}>\r\nSubject: Verzendknop\r\nMessage-ID: <k1@bakkerij-jansen.nl>\r\n"
                         "Date: Mon, 23 Nov 2026 10:00:00 +0100\r\n\r\n".encode() + BROKEN)
    code, out, err = cli("mail", "reprocess", str(kept["id"]), "--file", str(repaired), "--json")
    assert code == 0, err
    done = json.loads(out)
    assert done["outcome"] == "new_ticket" and done["ticket"] and done["reprocessed"] is True
    assert json.loads(cli("mail", "kept", "--json")[1]) == []
    (listed,) = json.loads(cli("mail", "kept", "--all", "--json")[1])
    assert listed["reprocessed_at"] is not None

    code, out, _ = cli("mail", "reprocess", str(kept["id"]), "--file", str(repaired))  # again: stored once
    assert code == 0 and "duplicate" in out
    tickets = db.run(lambda s: s.scalars(select(m.Ticket.ref)).all())
    assert tickets == [done["ticket"]]
    events = db.run(lambda s: s.scalars(select(m.Event.kind).where(m.Event.kind == "mail_reprocessed")).all())
    assert len(events) == 2
    assert cli("mail", "reprocess", "999")[0] != 0 and "no kept mail 999" in cli("mail", "reprocess", "999")[2]
    db.dispose()
