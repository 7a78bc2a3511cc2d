"""``slabot presets check FILE`` reports every problem of a preset file in one pass, each with its line number;
``slabot presets show NAME|FILE`` prints a preset as tables (and ``--json``) (R25, SPEC section 4)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import run_cli

from bot.presets import BUILTIN

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "hostingdesk.toml"

BROKEN = """\
name = "broken"
title = "Broken"
ref_prefix = "BR"
default_priority = "p3"

[calendars.office.hours]
mon = ["09:00-17:00", "16:00-18:00"]
tue = ["09:00-17:00"]

[[priorities]]
name = "p1"
[[priorities]]
name = "p2"

[[priority_rules]]
name = "nothing"
priority = "p1"

[[plans]]
name = "basis"
channels = ["email"]
sla = true
calendar = "weekend"

[[plans]]
name = "plus"
channels = ["email"]
sla = true
calendar = "office"
[plans.targets.p1]
first_response = "15 minuten"
resolution = { duration = "2x", clock = "business" }
[plans.targets.p5]
first_response = "1h"
"""


def test_every_problem_in_one_pass_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN, encoding="utf-8")
    code, out, _ = run_cli("presets", "check", str(path))
    assert code == 2
    lines = out.splitlines()
    assert lines[-1] == f"{path}: 9 problems"
    found = {int(line.split(":")[1]): line.split(": ", 1)[1] for line in lines[:-1]}
    assert found[4] == "default_priority: unknown priority 'p3'"
    assert found[7] == "calendars.office.hours.mon: opening hours 09:00-17:00 and 16:00-18:00 overlap"
    assert found[12] == "priorities[1]: priority 'p2' is in no plan's targets: the matrix does not cover it"
    assert found[15] == "priority_rules[0]: priority rule 'nothing' has no condition"
    assert found[19].startswith("plans[0]: plan 'basis' has an SLA but no targets")
    assert found[23] == "plans[0].calendar: unknown calendar 'weekend'; the preset has office"
    assert found[31].startswith("plans[1].targets.p1.first_response: expected a valid value (duration '15 minuten'")
    assert found[32].startswith("plans[1].targets.p1.resolution.duration: expected a valid value (duration '2x'")
    assert found[33] == "plans[1].targets.p5: priority 'p5' is not one of the preset's priorities (p1, p2)"


def test_not_toml_and_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\ntitle = "X"\nref_prefix = "X"\n[plans\n', encoding="utf-8")
    code, out, _ = run_cli("presets", "check", str(path))
    assert code == 2 and out.startswith(f"{path}:4: not valid TOML")
    text = EXAMPLE.read_text(encoding="utf-8").replace('calendar = "extended"\n', 'calender = "extended"\n')
    path.write_text(text, encoding="utf-8")
    code, out, _ = run_cli("presets", "check", str(path))
    line = next(n for n, row in enumerate(text.splitlines(), 1) if row.startswith("calender"))
    assert code == 2 and out.splitlines()[0].startswith(f"{path}:{line}: plans[2].calender: unknown key")
    code, _, err = run_cli("presets", "check", str(tmp_path / "missing.toml"))
    assert code == 2 and "cannot read" in err


def test_the_example_and_the_shipped_presets_are_valid(tmp_path: Path) -> None:
    code, out, _ = run_cli("presets", "check", str(EXAMPLE))
    assert code == 0 and out == f"{EXAMPLE}: a valid preset (hostingdesk): 3 plans, 4 priorities, 2 calendars\n"
    for name in BUILTIN:
        shipped = Path(__file__).resolve().parent.parent / "bot" / "preset_files" / f"{name}.toml"
        code, out, _ = run_cli("presets", "check", str(shipped))
        assert code == 0, out


def test_show_prints_the_matrix_as_a_table() -> None:
    code, out, _ = run_cli("presets", "show", str(EXAMPLE))
    assert code == 0
    assert "  extended  Europe/Amsterdam  mon-sun 06:00-24:00  open" in out
    assert "  office    Europe/Amsterdam  mon-fri 08:30-17:30  NL closed" in out
    rows = [line.split() for line in out.splitlines()]
    assert ["premium", "extended", "email,phone,platform,whatsapp", "p1", "15m", "business", "hours", "(extended)", "2h",
            "business", "hours", "(extended)", "75%,", "1h", "or", "10%", "before,", "breach"] in rows
    assert ["p3", "4h", "business", "hours", "(office)", "2d", "working", "days", "(office)", "75%,", "1h", "or",
            "10%", "before,", "breach"] in rows
    code, out, _ = run_cli("presets", "show", "paynl")
    assert "critical  1d around the clock (outage)" in out and "outage line (R17): calendar outage" in out


def test_show_json() -> None:
    code, out, _ = run_cli("presets", "show", str(EXAMPLE), "--json")
    data = json.loads(out)
    assert [p["name"] for p in data["priorities"]] == ["p1", "p2", "p3", "p4"] and data["default_priority"] == "p3"
    basis = next(p for p in data["plans"] if p["name"] == "basis")
    assert [t["priority"] for t in basis["targets"]] == ["p2", "p3", "p4"]
    assert basis["targets"][1]["resolution"] == {"target": "2d", "clock": "working_days", "calendar": "office"}
    code, out, _ = run_cli("presets", "show", "mailcampaigns", "--json")
    licentie = json.loads(out)["plans"][0]
    assert licentie["targets"] == [{"priority": "*", "first_response": {
        "target": "24h", "clock": "business", "calendar": "office"}, "resolution": {
        "target": "3w-4w", "clock": "calendar", "calendar": "office"}, "reminders": ["75%", "1h before", "breach"]}]
    code, _, err = run_cli("presets", "show", "nosuch")
    assert code == 2 and "unknown preset 'nosuch'" in err
