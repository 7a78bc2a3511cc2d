"""Phone-call logs: `slabot calls import` (CSV and JSON), bad rows reported by line, a re-import adds nothing."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import add_account, contact, run_cli
from sqlalchemy import func, select

from channels.calls import parse_call
from storage import models as m
from storage.database import open_database

CSV = """call_id,time,caller,called,duration,status,agent,notes
c1,2026-11-23T10:15:00,06 34 89 08 78,+31201234567,185,answered,anna,Vraag over factuur november
c2,2026-11-23T11:00:00+01:00,+31 6 11111111,+31201234567,0,no-answer,,
c3,gisteren,+31612345678,+31201234567,60,answered,,tijd onleesbaar
c4,2026-11-23T12:00:00,,+31201234567,60,answered,,geen nummer
"""


def _cli(tmp_path: Path, *args: str) -> tuple[int, str]:
    config = tmp_path / "slabot.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "slabot.db"}"\n', encoding="utf-8")
    code, out, _ = run_cli("--config", str(config), *args)
    return code, out


def test_csv_import_reports_bad_rows_and_a_second_import_adds_nothing(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'slabot.db'}")
    add_account(db, "Bakkerij Jansen", "licentie", contact("Piet", phone="+31634890878"))
    log = tmp_path / "calls.csv"
    log.write_text(CSV, encoding="utf-8")
    code, out = _cli(tmp_path, "calls", "import", str(log))
    assert code == 1
    assert "rejected: calls.csv:4: time 'gisteren' is not ISO 8601" in out
    assert "rejected: calls.csv:5: no caller number" in out
    assert "2 calls: 1 new_ticket, 1 unknown_sender; 2 rejected" in out
    code, again = _cli(tmp_path, "calls", "import", str(log))
    assert "2 calls: 2 duplicate; 2 rejected" in again
    tickets = db.run(lambda s: s.scalars(select(m.Ticket).order_by(m.Ticket.id)).all())
    assert [(t.channel, t.account_id is not None) for t in tickets] == [("phone", True), ("phone", False)]
    texts = db.run(lambda s: s.scalars(select(m.Message.text).where(m.Message.direction == "in")).all())
    assert any("aangenomen door anna" in t and "Vraag over factuur november" in t for t in texts)
    assert any(t.startswith("Gemiste oproep van +31611111111") for t in texts)
    db.dispose()


def test_json_import_and_the_outage_line(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'slabot.db'}")
    log = tmp_path / "calls.json"
    log.write_text(json.dumps({"calls": [
        {"CallSid": "CA1", "StartTime": "2026-11-23T03:10:00+01:00", "From": "+31612345678", "To": "+31800123",
         "Duration": "240", "critical": "true", "notes": "Betaalpagina plat"},
    ]}), encoding="utf-8")
    code, out = _cli(tmp_path, "calls", "import", str(log))
    assert code == 0, out
    priority = db.run(lambda s: s.scalar(select(m.Ticket.priority)))
    assert priority == "critical"
    assert db.run(lambda s: s.scalar(select(func.count()).select_from(m.Message))) >= 1
    db.dispose()


def test_a_call_without_id_gets_a_stable_one() -> None:
    row = {"time": "2026-11-23T10:00:00", "caller": "0634890878", "duration": "30"}
    assert parse_call(row).call_id == parse_call(dict(row)).call_id
    assert parse_call(row).call_id != parse_call({**row, "duration": "31"}).call_id


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    code, _ = _cli(tmp_path, "calls", "import", str(tmp_path / "nope.csv"))
    assert code == 2
