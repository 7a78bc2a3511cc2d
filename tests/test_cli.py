"""The `slabot` command line: `sla deadline` (SPEC §4) and `config check`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_cli as run



def deadline_json(*argv: str) -> dict[str, object]:
    code, out, err = run("sla", "deadline", *argv, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def test_done_when_example() -> None:
    data = deadline_json("--preset", "mailcampaigns", "--plan", "licentie", "--at", "2026-11-23T10:00:00+01:00")
    assert data["first_response_due"] == "2026-11-26T10:00:00+01:00"
    assert data["plan"] == "licentie"
    assert data["received_at"] == "2026-11-23T10:00:00+01:00"
    assert data["resolution_due_min"] == "2026-12-14T10:00:00+01:00"
    assert data["resolution_due_max"] == "2026-12-21T10:00:00+01:00"


def test_json_shape_has_every_spec_key() -> None:
    data = deadline_json("--preset", "paynl", "--plan", "business", "--at", "2026-11-20T16:00:00+01:00")
    for key in ("plan", "received_at", "first_response_due", "resolution_due_min", "resolution_due_max"):
        assert key in data
    # Friday 16:00 + 24 business hours (09:00-17:30) = Wednesday 14:30 (1.5 + 8.5 + 8.5 + 5.5)
    assert data["first_response_due"] == "2026-11-25T14:30:00+01:00"
    # 3 and 7 working days at the same local time
    assert data["resolution_due_min"] == "2026-11-25T16:00:00+01:00"
    assert data["resolution_due_max"] == "2026-12-01T16:00:00+01:00"


def test_plan_without_sla_prints_nulls() -> None:
    data = deadline_json("--preset", "paynl", "--plan", "professional", "--at", "2026-11-23T10:00:00+01:00")
    assert data["first_response_due"] is None
    assert data["resolution_due_min"] is None and data["resolution_due_max"] is None


def test_instants_are_given_in_amsterdam_offset() -> None:
    data = deadline_json("--preset", "mailcampaigns", "--plan", "project", "--at", "2026-07-06T08:00:00Z")
    assert data["received_at"] == "2026-07-06T10:00:00+02:00"
    assert data["first_response_due"] == "2026-07-09T10:00:00+02:00"


def test_naive_at_is_local_time() -> None:
    data = deadline_json("--preset", "mailcampaigns", "--plan", "licentie", "--at", "2026-11-23T10:00")
    assert data["received_at"] == "2026-11-23T10:00:00+01:00"


def test_preset_defaults_to_the_config(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('preset = "paynl"\n', encoding="utf-8")
    code, out, _ = run("--config", str(config), "sla", "deadline", "--plan", "premium",
                       "--at", "2026-11-23T10:00:00+01:00", "--json")
    assert code == 0
    assert json.loads(out)["first_response_due"] == "2026-11-24T09:30:00+01:00"


@pytest.mark.parametrize("lang, words", [
    ("nl", ["uiterlijk donderdag 26 november 2026 om 10:00", "binnen openingstijden", "maandag 14 december 2026"]),
    ("en", ["by Thursday 26 November 2026 at 10:00", "within opening hours", "Monday 14 December 2026"]),
])
def test_sentence_in_dutch_and_english(lang: str, words: list[str]) -> None:
    code, out, _ = run("sla", "deadline", "--preset", "mailcampaigns", "--plan", "licentie",
                       "--at", "2026-11-23T10:00:00+01:00", "--lang", lang)
    assert code == 0
    for word in words:
        assert word in out


def test_sentence_for_plan_without_sla() -> None:
    code, out, _ = run("sla", "deadline", "--preset", "paynl", "--plan", "pioneer",
                       "--at", "2026-11-23T10:00:00+01:00")
    assert code == 0 and "geen gegarandeerde reactietijd" in out


def test_unknown_plan_is_one_line_with_choices() -> None:
    code, out, err = run("sla", "deadline", "--preset", "paynl", "--plan", "gold", "--at", "2026-11-23T10:00:00+01:00")
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert "pioneer, professional, business, premium" in err


def test_bad_at_is_one_line() -> None:
    code, out, err = run("sla", "deadline", "--preset", "mailcampaigns", "--plan", "licentie", "--at", "morgen")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "--at 'morgen'" in err and "ISO 8601" in err


def test_unknown_preset_is_one_line() -> None:
    code, _, err = run("sla", "deadline", "--preset", "acme", "--plan", "licentie", "--at", "2026-11-23T10:00:00+01:00")
    assert code == 2 and err.count("\n") == 1 and "mailcampaigns, paynl" in err


def test_missing_argument_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run("sla", "deadline", "--plan", "licentie")
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.count("\n") == 1 and "--at" in captured.err


def test_config_check_masks_secrets(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[twilio]\naccount_sid = 'AC1'\nauth_token = 'topsecret'\nwhatsapp_from = 'whatsapp:+3112'\n",
                      encoding="utf-8")
    code, out, _ = run("config", "check", str(config))
    assert code == 0
    assert "topsecret" not in out and "***" in out
    assert "preset: mailcampaigns" in out and "plan licentie" in out and "calendar office" in out
    code, out, _ = run("config", "check", str(config), "--json")
    report = json.loads(out)
    assert report["config"]["twilio"]["auth_token"] == "***"
    assert report["preset"]["plans"]["licentie"]["first_response"] == {
        "duration": "24h", "clock": "business", "calendar": "office"}
    assert report["channels"]["whatsapp"] == "on"


@pytest.mark.parametrize("email, state", [
    ("", "off (no [email] imap_host, imap_user and imap_password, nor smtp_host and from_address)"),
    ("smtp_host = 'smtp.example.nl'\nfrom_address = 'support@example.nl'\n", "on (SMTP out; mail comes in by the MTA pipe"),
    ("imap_host = 'imap.example.nl'\nimap_user = 'u'\nimap_password = 'p'\n", "on (IMAP in; no replies by mail"),
    ("imap_host = 'imap.example.nl'\nimap_user = 'u'\nimap_password = 'p'\nsmtp_host = 'smtp.example.nl'\n"
     "from_address = 'support@example.nl'\n", "on (IMAP in, SMTP out)"),
])
def test_config_check_says_what_run_does_with_email(tmp_path: Path, email: str, state: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"[email]\n{email}", encoding="utf-8")
    code, out, _ = run("config", "check", str(config), "--json")
    assert code == 0
    assert json.loads(out)["channels"]["email"].startswith(state)


def test_config_check_reports_bad_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[email]\nimap_port = 'x'\nimap_passwd = 'y'\n", encoding="utf-8")
    code, out, err = run("config", "check", str(config))
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"slabot: error: {config}: email.") for line in lines)
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["--help"], ["sla", "--help"], ["sla", "deadline", "--help"],
                                  ["config", "--help"], ["config", "check", "--help"]])
def test_every_command_has_help(argv: list[str]) -> None:
    code, _, _ = run(*argv)
    assert code == 0


def test_console_script_is_installed() -> None:
    exe = shutil.which("slabot", path=str(Path(sys.executable).parent))
    assert exe is not None, "the slabot console script is not installed next to this Python"
    done = subprocess.run([exe, "sla", "deadline", "--preset", "mailcampaigns", "--plan", "licentie",
                           "--at", "2026-11-23T10:00:00+01:00", "--json"], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["first_response_due"] == "2026-11-26T10:00:00+01:00"
