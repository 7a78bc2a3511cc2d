"""The first hour with slabot, as a new user runs it (``slabot`` in a child process): every start-up failure
and every database failure is one line naming the cause and what to do, exit 2, no traceback (``--debug``
shows it)."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from helpers import free_port

PASSWORD = "hunter2-geheim"


def slabot(*argv: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)})


def config(tmp_path: Path, database_url: str, port: int) -> Path:
    path = tmp_path / "slabot.toml"
    path.write_text(f'[database]\nurl = "{database_url}"\n\n[http]\nport = {port}\n')
    return path


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line ``slabot: error: ...`` on stderr (the log before it may say what was started and stopped)."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "sqlalche.me" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("slabot: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_a_port_in_use_is_one_line_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = slabot("--config", str(config(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", port)), "run",
                        cwd=tmp_path)
    line = one_error_line(result)
    assert f"127.0.0.1:{port}" in line and "in use" in line and "[http] port" in line
    assert "Task exception was never retrieved" not in result.stderr


def test_an_unreachable_database_is_one_line_with_the_password_masked(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://slabot:{PASSWORD}@127.0.0.1:{free_port()}/slabot"
    path = config(tmp_path, url, free_port())
    for command in (("run",), ("tickets", "list")):
        line = one_error_line(slabot("--config", str(path), *command, cwd=tmp_path))
        assert PASSWORD not in line and "slabot:***@127.0.0.1" in line, line
        assert "refused" in line.lower() and "is the database server running" in line


def test_a_database_of_a_newer_slabot_is_refused_in_one_line(tmp_path: Path) -> None:
    database = tmp_path / "new.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        connection.execute("INSERT INTO alembic_version VALUES ('9999')")
    path = config(tmp_path, f"sqlite:///{database}", free_port())
    line = one_error_line(slabot("--config", str(path), "run", cwd=tmp_path))
    assert "9999" in line and "newer slabot" in line


def test_a_sqlite_file_in_a_missing_folder(tmp_path: Path) -> None:
    path = config(tmp_path, f"sqlite:///{tmp_path / 'missing' / 'x.db'}", free_port())
    line = one_error_line(slabot("--config", str(path), "run", cwd=tmp_path))
    assert "folder exists" in line


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://slabot:{PASSWORD}@127.0.0.1:{free_port()}/slabot"
    result = slabot("--debug", "--config", str(config(tmp_path, url, free_port())), "tickets", "list",
                    cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_a_read_command_in_an_empty_folder_makes_no_database(tmp_path: Path) -> None:
    for command in (("tickets", "list"), ("tickets", "show", "MC-10001"), ("accounts", "list"),
                    ("billing", "invoices"), ("report", "--from", "2026-11-01", "--to", "2026-11-30")):
        result = slabot(*command, cwd=tmp_path)
        line = one_error_line(result)
        assert f"no database at {tmp_path / 'slabot.db'}" in line, (command, line)
        assert list(tmp_path.glob("slabot.db*")) == [], command


def test_an_unknown_option_value_is_a_usage_error_naming_the_values(tmp_path: Path) -> None:
    result = slabot("tickets", "list", "--state", "bogus", cwd=tmp_path)
    assert result.returncode == 2 and "open" in result.stderr and "resolved" in result.stderr
    assert "no tickets" not in result.stdout


def test_tickets_list_has_a_header_and_says_answered_or_overdue(tmp_path: Path) -> None:
    from datetime import timedelta

    from helpers import MONDAY_10, add_account, contact, preset, whatsapp

    from bot.intake import IntakePipeline
    from storage.database import open_database

    db = open_database(f"sqlite:///{tmp_path / 'slabot.db'}")
    try:
        add_account(db, "Bakkerij Jansen", "licentie", contact("Piet", phone="+31612345678"))
        add_account(db, "Drukkerij", "licentie", contact("Karel", phone="+31687654321"))
        intake = IntakePipeline(db, preset("mailcampaigns"), now=lambda: MONDAY_10)
        first = intake.ingest(whatsapp("SM1", "+31612345678", "Vraag een", received_at=MONDAY_10)).ticket_ref
        intake.ingest(whatsapp("SM2", "+31687654321", "Vraag twee", received_at=MONDAY_10 + timedelta(hours=1)))
    finally:
        db.dispose()
    assert first is not None
    assert slabot("tickets", "reply", first, "Dag Piet, we kijken ernaar.", "--staff", "anna",
                  cwd=tmp_path).returncode == 0
    result = slabot("tickets", "list", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[:3] == ["REF", "STATE", "PRIORITY"] and "RESPONSE DUE" in header
    by_ref = {row.split()[0]: row for row in rows}
    assert "answered" in by_ref[first]
    (other,) = [row for ref, row in by_ref.items() if ref != first]
    assert other.rstrip().endswith("OVERDUE")  # Thursday 23 November's deadline lies in the past


def test_skipped_tests_are_summed_up_per_missing_server() -> None:
    root = Path(__file__).resolve().parent.parent
    env = {"PATH": "/usr/bin:/bin", "HOME": str(root)}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests/test_migrations.py"], cwd=root, capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 tests need PostgreSQL: set SLABOT_TEST_PG_URL=" in result.stdout
    assert "SKIPPED [" not in result.stdout


def test_every_commands_help_ends_with_examples_that_parse() -> None:
    import shlex

    from bot.cli.examples import EXAMPLES, commands
    from bot.cli.main import build_parser

    parser = build_parser()
    for name, command in commands(parser).items():
        if command._subparsers is not None and name:  # noqa: SLF001 - a group: its commands have the examples
            continue
        examples = EXAMPLES.get(name)
        assert examples, f"slabot {name} --help has no examples"
        assert command.format_help().rstrip().endswith(examples[-1]), name
        for example in examples:
            words = [w for w in shlex.split(example) if "=" not in w or not w.split("=")[0].isupper()]
            words = words[:next((i for i, w in enumerate(words) if w in ("<", ">")), len(words))]
            assert words[0] == "slabot", example
            parser.parse_args(words[1:])  # an example that does not parse exits here


def test_help_as_a_user_sees_it(tmp_path: Path) -> None:
    result = slabot("billing", "invoice", "--help", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.rstrip().endswith(
        "slabot billing invoice 2026-00003 --resend --staff anna")


def test_config_check_reports_every_problem_in_one_pass(tmp_path: Path) -> None:
    path = tmp_path / "ten.toml"
    path.write_text('preset = "nosuchpreset"\nlanguage = "fr"\n[database]\nurl = 5\nsynchronous = "sometimes"\n'
                    '[http]\nport = 99999\nhost = 7\n[twilio]\naccount_sid = 5\n[email]\nimap_port = 0\n'
                    'smtp_port = "x"\n[telegram]\nstaff_user_ids = ["anna"]\n[dashboard]\ndue_soon_minutes = -1\n'
                    '[[dashboard.users]]\nname = "anna"\npassword_hash = "x"\n[billing]\ncheck_minutes = 0\n')
    result = slabot("config", "check", str(path), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    for key in ("language", "database.url", "database.synchronous", "http.port", "http.host", "twilio.account_sid",
                "email.imap_port", "email.smtp_port", "telegram.staff_user_ids[0]",
                "dashboard.users[0].password_hash", "dashboard.due_soon_minutes", "billing.check_minutes",
                "dashboard.secret_key", "preset"):
        (line,) = [x for x in lines if f"ten.toml: {key}:" in x]
        assert "expected" in line or "unknown preset" in line, line
        assert "found" in line or key == "preset", line
    (secret,) = [x for x in lines if "dashboard.secret_key" in x]
    assert secret.endswith("found nothing")  # missing, not "a hidden value"


def test_the_dashboard_says_it_is_off_in_the_log_and_on_its_page(tmp_path: Path) -> None:
    import time

    import httpx

    port = free_port()
    path = config(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", port)
    process = subprocess.Popen([sys.executable, "-m", "bot.cli", "--config", str(path), "run"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "slabot run did not start"
            time.sleep(0.1)
        for url in (f"http://127.0.0.1:{port}/dashboard/", f"http://127.0.0.1:{port}/dashboard"):
            page = httpx.get(url, timeout=5)
            assert page.status_code == 404 and "The dashboard is off" in page.text
            assert "Het dashboard staat uit" in page.text and "slabot dashboard secret-key" in page.text
    finally:
        process.terminate()
        log, _ = process.communicate(timeout=30)
    assert "dashboard: off (no [dashboard] users and secret_key" in log


def test_the_readme_is_short_and_stays_in_the_repository() -> None:
    import re

    root = Path(__file__).resolve().parent.parent
    text = (root / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 150
    targets = re.findall(r"\]\(([^)#]+)", text)
    assert targets and all(not t.startswith(("..", "/")) and (root / t).exists() for t in targets), targets
    for command in ('python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/slabot run',
                    'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest'):
        assert command in text
    assert "docs/images/queue.png" in text and "docs/images/invoice.png" in text
