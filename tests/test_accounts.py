"""Accounts files: TOML and CSV imports, identity normalisation, re-imports, rejected rows, the CLI."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from textwrap import dedent

import pytest
from helpers import run_cli as run

from bot.accounts import (
    ImportReport,
    Problem,
    import_accounts,
    parse_accounts_csv,
    parse_accounts_toml,
    read_accounts_file,
)
from bot.errors import ConfigError
from bot.presets import load_preset
from sla_engine.policy import Preset
from storage.database import Database
from storage.records import AccountRecord, ContactRecord
from storage.repositories import AccountRepository

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
PLANS = ("licentie", "ondersteuning", "project")

EXAMPLE_TOML = """\
[[account]]
name = "Bakkerij Jansen"
plan = "licentie"
staff = "anna"                    # assigned staff member (Telegram username), optional
templates_delivered = 2026-11-01  # start of the 30-day template window, optional
language = "nl"
monthly_hours = 8                 # Ondersteuning's fixed monthly hours, optional
  [[account.contact]]
  name = "Piet Jansen"
  email = ["piet@bakkerij-jansen.nl"]
  phone = ["+31612345678"]
  [[account.contact]]
  name = "Webbureau Pixel"
  email = ["info@pixel.example"]
  role = "third_party"
  authorised = false
"""

CSV_HEADER = "account,plan,staff,templates_delivered,language,monthly_hours,contact,email,phone,role,authorised\n"


@pytest.fixture(scope="module")
def preset() -> Preset:
    return load_preset("mailcampaigns")


def write(path: Path, text: str) -> Path:
    path.write_text(dedent(text), encoding="utf-8")
    return path


def all_accounts(db: Database) -> list[AccountRecord]:
    return db.run(lambda s: AccountRepository(s).all())


def find(db: Database, kind: str, value: str) -> list[tuple[ContactRecord, AccountRecord]]:
    return db.run(lambda s: AccountRepository(s).find(kind, value))


# -- TOML --------------------------------------------------------------------------


def test_toml_example_imports(db: Database, preset: Preset, tmp_path: Path) -> None:
    report = import_accounts(db, write(tmp_path / "accounts.toml", EXAMPLE_TOML), preset, NOW)
    assert (report.created, report.updated, report.problems) == (1, 0, ())
    assert report.ok and report.summary() == "imported 1 accounts (1 new, 0 updated), rejected 0 rows"
    [account] = all_accounts(db)
    assert (account.name, account.plan, account.staff, account.language) == (
        "Bakkerij Jansen", "licentie", "anna", "nl")
    assert account.templates_delivered == date(2026, 11, 1)
    assert account.monthly_hours == Decimal(8)
    piet, pixel = account.contacts
    assert (piet.name, piet.role, piet.authorised) == ("Piet Jansen", "contact", True)
    assert piet.emails == ("piet@bakkerij-jansen.nl",) and piet.phones == ("+31612345678",)
    assert (pixel.name, pixel.role, pixel.authorised, pixel.may_open_requests) == (
        "Webbureau Pixel", "third_party", False, False)
    [(contact, owner)] = find(db, "phone", "+31612345678")
    assert contact.name == "Piet Jansen" and owner.name == "Bakkerij Jansen"


def test_optional_keys_take_their_defaults() -> None:
    accounts, problems = parse_accounts_toml(dedent("""\
        [[account]]
        name = "Kapper Kim"
        plan = "Project"
          [[account.contact]]
          name = "Kim"
          phone = "0634890878"
          [[account.contact]]
          name = "Bureau"
          email = "bureau@example.nl"
          role = "third_party"
        """), "a.toml", PLANS)
    assert problems == []
    [account] = accounts
    assert (account.plan, account.staff, account.templates_delivered, account.language, account.monthly_hours) == (
        "project", None, None, "nl", None)
    kim, bureau = account.contacts
    assert kim.phones == ("+31634890878",) and kim.authorised
    assert not bureau.authorised  # a third party is not authorised unless the file says so (R2)


@pytest.mark.parametrize("spelling", ["06 34 89 08 78", "+31 6 34890878", "whatsapp:+31634890878", "0031634890878"])
def test_phone_spellings_normalise_to_e164(spelling: str) -> None:
    accounts, problems = parse_accounts_toml(
        f'[[account]]\nname = "A"\nplan = "licentie"\n[[account.contact]]\nname = "P"\nphone = ["{spelling}"]\n',
        "a.toml", PLANS)
    assert problems == []
    assert accounts[0].contacts[0].phones == ("+31634890878",)


def test_three_phone_spellings_are_one_identity(db: Database, preset: Preset, tmp_path: Path) -> None:
    path = write(tmp_path / "a.toml", """\
        [[account]]
        name = "Bakkerij Jansen"
        plan = "licentie"
          [[account.contact]]
          name = "Piet Jansen"
          phone = ["06 34 89 08 78", "+31 6 34890878", "whatsapp:+31634890878"]
        """)
    assert import_accounts(db, path, preset, NOW).ok
    [account] = all_accounts(db)
    assert account.contacts[0].phones == ("+31634890878",)
    [(contact, owner)] = find(db, "phone", "+31634890878")
    assert (contact.name, owner.name) == ("Piet Jansen", "Bakkerij Jansen")


def test_email_is_case_insensitive(db: Database, preset: Preset, tmp_path: Path) -> None:
    path = write(tmp_path / "a.toml", """\
        [[account]]
        name = "Bakkerij Jansen"
        plan = "licentie"
          [[account.contact]]
          name = "Piet Jansen"
          email = ["Piet@Bakkerij-Jansen.NL", "PIET@bakkerij-jansen.nl", "Piet Jansen <piet@BAKKERIJ-jansen.nl>"]
        """)
    assert import_accounts(db, path, preset, NOW).ok
    assert all_accounts(db)[0].contacts[0].emails == ("piet@bakkerij-jansen.nl",)
    [(contact, _)] = find(db, "email", "piet@bakkerij-jansen.nl")
    assert contact.name == "Piet Jansen"


def test_reimport_updates_in_place(db: Database, preset: Preset, tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    first = import_accounts(db, write(path, EXAMPLE_TOML), preset, NOW)
    assert (first.created, first.updated) == (1, 0)
    [before] = all_accounts(db)
    write(path, """\
        [[account]]
        name = "Bakkerij Jansen"
        plan = "ondersteuning"
        staff = "bob"
        monthly_hours = 4.5
          [[account.contact]]
          name = "Piet Jansen"
          email = ["piet@bakkerij-jansen.nl"]
          phone = ["06 11 22 33 44"]
          [[account.contact]]
          name = "Webbureau Pixel"
          email = ["info@pixel.example"]
          role = "third_party"
          authorised = true
          [[account.contact]]
          name = "Marie Jansen"
          email = ["marie@bakkerij-jansen.nl"]
        """)
    again = import_accounts(db, path, preset, NOW)
    assert (again.created, again.updated, again.problems) == (0, 1, ())
    assert again.summary() == "imported 1 accounts (0 new, 1 updated), rejected 0 rows"
    [after] = all_accounts(db)
    assert after.id == before.id
    assert (after.plan, after.staff, after.monthly_hours, after.templates_delivered) == (
        "ondersteuning", "bob", Decimal("4.5"), None)
    assert [c.name for c in after.contacts] == ["Piet Jansen", "Webbureau Pixel", "Marie Jansen"]
    assert [c.id for c in after.contacts[:2]] == [c.id for c in before.contacts]
    assert after.contacts[0].phones == ("+31611223344",)
    assert find(db, "phone", "+31612345678") == []  # the old number no longer matches
    assert find(db, "phone", "+31611223344")[0][0].name == "Piet Jansen"
    assert after.contacts[1].authorised
    assert find(db, "email", "marie@bakkerij-jansen.nl")[0][1].id == before.id
    # the same file once more changes nothing and duplicates nothing
    import_accounts(db, path, preset, NOW)
    assert all_accounts(db) == [after]


def test_contact_left_out_of_a_reimport_can_no_longer_write_in(db: Database, preset: Preset, tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    import_accounts(db, write(path, EXAMPLE_TOML), preset, NOW)
    write(path, EXAMPLE_TOML.split("  [[account.contact]]\n  name = \"Webbureau Pixel\"")[0])
    assert import_accounts(db, path, preset, NOW).ok
    assert find(db, "email", "info@pixel.example") == []
    assert find(db, "email", "piet@bakkerij-jansen.nl")[0][0].name == "Piet Jansen"


BAD_TOML = """\
[[account]]
name = "Goed BV"
plan = "licentie"
  [[account.contact]]
  name = "Gerda"
  email = ["gerda@goed.nl"]

[[account]]
name = "Gold Plan BV"
plan = "gold"
  [[account.contact]]
  name = "Gijs"
  email = ["gijs@gold.nl"]

[[account]]
name = "Bad Phone BV"
plan = "project"
  [[account.contact]]
  name = "Bram"
  phone = ["12"]

[[account]]
name = "Bad Mail BV"
plan = "project"
  [[account.contact]]
  name = "Bea"
  email = ["bea-at-mail.nl"]

[[account]]
name = "Unknown Key BV"
plan = "project"
colour = "blue"
  [[account.contact]]
  name = "Uma"
  email = ["uma@key.nl"]

[[account]]
plan = "project"
  [[account.contact]]
  name = "Nameless"
  email = ["no@name.nl"]

[[account]]
name = "Ook Goed BV"
plan = "ondersteuning"
  [[account.contact]]
  name = "Olaf"
  email = ["olaf@ookgoed.nl"]
  mail = ["typo@ookgoed.nl"]

[[account]]
name = "Zonder Naam Contact"
plan = "project"
  [[account.contact]]
  email = ["x@y.nl"]
  [[account.contact]]
  name = "Zonder Identiteit"
"""


def test_bad_toml_rows_are_reported_and_good_rows_import(db: Database, preset: Preset, tmp_path: Path) -> None:
    report = import_accounts(db, write(tmp_path / "a.toml", BAD_TOML), preset, NOW)
    assert (report.created, report.updated) == (1, 0)
    assert report.accounts == ("Goed BV",)
    lines = {p.line: p.reason for p in report.problems}
    assert sorted(lines) == [8, 15, 22, 29, 37, 43, 51]
    assert "unknown plan 'gold'; choose one of: licentie, ondersteuning, project" in lines[8]
    assert lines[8].startswith("account 'Gold Plan BV': plan:")
    assert "contact 'Bram': phone: '12'" in lines[15]
    assert "contact 'Bea': email: 'bea-at-mail.nl' is not an e-mail address" in lines[22]
    assert "unknown key 'colour'" in lines[29]
    assert lines[37] == "account: missing name"
    assert "contact 'Olaf': unknown key 'mail'" in lines[43]
    assert "contact #1: missing name" in lines[51]
    assert "contact 'Zonder Identiteit': no e-mail address or phone number" in lines[51]
    assert report.summary() == "imported 1 accounts (1 new, 0 updated), rejected 7 rows"
    assert str(report.problems[0]) == f"{tmp_path / 'a.toml'}:8: {lines[8]}"
    assert [a.name for a in all_accounts(db)] == ["Goed BV"]


@pytest.mark.parametrize(("snippet", "reason"), [
    ('language = "de"', "language: expected one of nl, en, found 'de'"),
    ('templates_delivered = "1 november"', "templates_delivered: expected an ISO date"),
    ("templates_delivered = 2026-11-01T10:00:00", "found a date and time"),
    ("monthly_hours = -1", "monthly_hours: expected a non-negative number"),
    ("monthly_hours = true", "monthly_hours: expected a non-negative number"),
    ("monthly_hours = nan", "monthly_hours: expected a non-negative number"),
    ("staff = 5", "staff: expected text, found 5"),
    ("contact = 5", "contact: expected [[account.contact]] tables"),
])
def test_toml_account_values_are_checked(snippet: str, reason: str) -> None:
    accounts, problems = parse_accounts_toml(f'\n[[account]]\nname = "A"\nplan = "licentie"\n{snippet}\n', "a.toml",
                                             PLANS)
    assert accounts == []
    [problem] = problems
    assert problem.line == 2 and reason in problem.reason


@pytest.mark.parametrize(("snippet", "reason"), [
    ('role = "agency"', "role: expected one of contact, third_party, found 'agency'"),
    ('authorised = "maybe"', "authorised: expected true or false"),
    ("email = [1]", "email: expected a list of text"),
])
def test_toml_contact_values_are_checked(snippet: str, reason: str) -> None:
    text = f'[[account]]\nname = "A"\nplan = "licentie"\n[[account.contact]]\nname = "P"\nphone = ["0612345678"]\n'
    accounts, problems = parse_accounts_toml(text + snippet + "\n", "a.toml", PLANS)
    assert accounts == []
    assert problems == [Problem(1, f"account 'A': contact 'P': {problems[0].reason.split(': ', 2)[2]}", "a.toml")]
    assert reason in problems[0].reason


def test_toml_duplicates_and_top_level_keys_are_rejected() -> None:
    text = dedent("""\
        title = "klanten"
        [[account]]
        name = "A"
        plan = "licentie"
        [[account]]
        name = "a"
        plan = "project"
        [[account]]
        name = "B"
        plan = "project"
          [[account.contact]]
          name = "P"
          email = ["p@b.nl"]
          [[account.contact]]
          name = "P"
          email = ["p2@b.nl"]
        """)
    accounts, problems = parse_accounts_toml(text, "a.toml", PLANS)
    assert [a.name for a in accounts] == ["A"]
    assert [(p.line, p.reason) for p in problems] == [
        (1, "unknown top-level key 'title'; an accounts file holds [[account]] tables"),
        (5, "account 'a': account 'a' is already given on line 2"),
        (8, "account 'B': contact 'P' is listed twice"),
    ]


@pytest.mark.parametrize(("text", "message"), [
    ("[[account]\nname = 1", "not valid TOML"),
    ('account = "x"\n', "'account' must be a list of [[account]] tables"),
])
def test_not_an_accounts_toml_file(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_accounts_toml(text, "a.toml", PLANS)
    [line] = caught.value.problems
    assert line.startswith("a.toml: ") and message in line


def test_empty_toml_file_imports_nothing() -> None:
    assert parse_accounts_toml("# no accounts yet\n", "a.toml", PLANS) == ([], [])


# -- CSV -----------------------------------------------------------------------------


def test_csv_rows_of_one_account_are_grouped(db: Database, preset: Preset, tmp_path: Path) -> None:
    path = write(tmp_path / "accounts.csv", CSV_HEADER + dedent("""\
        Bakkerij Jansen,licentie,anna,2026-11-01,nl,8,Piet Jansen,piet@bakkerij-jansen.nl,+31612345678,contact,
        Kapper Kim,project,,,en,,Kim,"KIM@Kapper.example; kim@kapper.nl",06 34 89 08 78,,
        Bakkerij Jansen,,,,,,Webbureau Pixel,info@pixel.example,,third_party,false
        bakkerij jansen,licentie,anna,,,,Marie Jansen,"Marie@bakkerij-jansen.nl, marie.j@bakkerij-jansen.nl",,,
        """))
    report = import_accounts(db, path, preset, NOW)
    assert (report.created, report.updated, report.problems) == (2, 0, ())
    bakkerij, kim = all_accounts(db)
    assert (bakkerij.name, bakkerij.plan, bakkerij.staff, bakkerij.templates_delivered, bakkerij.monthly_hours) == (
        "Bakkerij Jansen", "licentie", "anna", date(2026, 11, 1), Decimal(8))
    assert [(c.name, c.role, c.authorised) for c in bakkerij.contacts] == [
        ("Piet Jansen", "contact", True), ("Webbureau Pixel", "third_party", False), ("Marie Jansen", "contact", True)]
    assert bakkerij.contacts[2].emails == ("marie.j@bakkerij-jansen.nl", "marie@bakkerij-jansen.nl")
    assert (kim.language, kim.contacts[0].emails, kim.contacts[0].phones) == (
        "en", ("kim@kapper.example", "kim@kapper.nl"), ("+31634890878",))
    assert find(db, "email", "kim@kapper.example")[0][1].name == "Kapper Kim"


def test_csv_with_semicolons_as_a_dutch_spreadsheet_writes_it() -> None:
    text = ("\ufeffAccount;Plan;Monthly_Hours;Contact;Email;Phone\n"
            "Kapper Kim;Ondersteuning;8,5;Kim;kim@kapper.nl,kim2@kapper.nl;06 34 89 08 78\n")
    accounts, problems = parse_accounts_csv(text, "a.csv", PLANS)
    assert problems == []
    [kim] = accounts
    assert (kim.plan, kim.monthly_hours) == ("ondersteuning", Decimal("8.5"))
    assert kim.contacts[0].emails == ("kim@kapper.nl", "kim2@kapper.nl")
    assert kim.contacts[0].phones == ("+31634890878",)


BAD_CSV = CSV_HEADER + """\
Goed BV,licentie,,,,,Gerda,gerda@goed.nl,,,
Gold Plan BV,gold,,,,,Gijs,gijs@gold.nl,,,
Bad Phone BV,project,,,,,Bram,,12,,
Bad Mail BV,project,,,,,Bea,bea-at-mail.nl,,,
,project,,,,,Nameless,no@name.nl,,,
Twee Regels BV,project,,,,,Tessa,tessa@twee.nl,,,
Twee Regels BV,,,,,,,tom@twee.nl,,,
Verschil BV,project,,,,,Vera,vera@verschil.nl,,,
Verschil BV,licentie,,,,,Vince,vince@verschil.nl,,,
Ook Goed BV,ondersteuning,,,nl,"2,5",Olaf,olaf@ookgoed.nl,,,
Geen Identiteit BV,project,,,,,Gijs,,,,
"""


def test_bad_csv_rows_are_reported_and_good_rows_import(db: Database, preset: Preset, tmp_path: Path) -> None:
    report = import_accounts(db, write(tmp_path / "a.csv", BAD_CSV), preset, NOW)
    assert report.accounts == ("Goed BV", "Ook Goed BV")
    assert (report.created, report.updated) == (2, 0)
    lines = {p.line: p.reason for p in report.problems}
    assert sorted(lines) == [3, 4, 5, 6, 7, 8, 9, 10, 12]
    assert "plan: unknown plan 'gold'; choose one of: licentie, ondersteuning, project" in lines[3]
    assert "contact 'Bram': phone: '12'" in lines[4]
    assert "contact 'Bea': email: 'bea-at-mail.nl' is not an e-mail address" in lines[5]
    assert lines[6] == "missing account name"
    # one bad line of an account rejects the account's other lines too, each reported
    assert lines[8] == "account 'Twee Regels BV': contact: missing name"
    assert lines[7] == "account 'Twee Regels BV' not imported: line(s) 8 rejected"
    assert "plan 'licentie' differs from 'project' on line 9" in lines[10]
    assert "not imported: line(s) 10 rejected" in lines[9]
    assert "contact 'Gijs': no e-mail address or phone number" in lines[12]
    assert report.summary() == "imported 2 accounts (2 new, 0 updated), rejected 9 rows"
    assert [a.name for a in all_accounts(db)] == ["Goed BV", "Ook Goed BV"]
    assert all_accounts(db)[1].monthly_hours == Decimal("2.5")


def test_csv_line_numbers_count_quoted_line_breaks_and_blank_lines() -> None:
    text = CSV_HEADER + '\n"Multi\nLine BV",licentie,,,,,Mo,mo@multi.nl,,,\nX,gold,,,,,Xi,xi@x.nl,,,\n'
    accounts, problems = parse_accounts_csv(text, "a.csv", PLANS)
    assert [a.name for a in accounts] == ["Multi\nLine BV"]
    assert [p.line for p in problems] == [5]


def test_csv_row_with_too_many_cells_is_rejected() -> None:
    accounts, problems = parse_accounts_csv(CSV_HEADER + "A,licentie,,,,,P,p@a.nl,,,,extra\n", "a.csv", PLANS)
    assert accounts == []
    assert problems == [Problem(2, "12 cells, but the header has 11 columns", "a.csv")]


@pytest.mark.parametrize(("text", "message"), [
    ("", "no header line"),
    ("account,plan,contact,colour\n", "unknown column(s) 'colour'"),
    ("account,contact\n", "missing column(s) plan"),
    ("account,plan,contact,plan\n", "column(s) given twice: plan"),
    ('account,plan,contact\n"A,licentie,P\n', "not valid CSV"),
])
def test_not_an_accounts_csv_file(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_accounts_csv(text, "a.csv", PLANS)
    [line] = caught.value.problems
    assert line.startswith("a.csv") and message in line


# -- files ---------------------------------------------------------------------------


def test_unusable_files(tmp_path: Path) -> None:
    for path, message in [
        (tmp_path / "missing.toml", "no such accounts file"),
        (write(tmp_path / "accounts.json", "[]"), "expected a .toml or .csv accounts file"),
        (tmp_path, "expected a .toml or .csv accounts file"),
    ]:
        with pytest.raises(ConfigError) as caught:
            read_accounts_file(path, PLANS)
        assert caught.value.problems == (f"{path}: {message}",)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(CSV_HEADER.encode() + "Caf\xe9,licentie,,,,,P,p@c.nl,,,\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="cannot be read"):
        read_accounts_file(latin, PLANS)


def test_report_counts() -> None:
    report = ImportReport("a.toml", created=2, updated=1, problems=(Problem(3, "bad"),))
    assert (report.imported, report.ok) == (3, False)
    assert str(report.problems[0]) == "line 3: bad"


# -- CLI -------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("SLABOT_DATABASE_URL", raising=False)
    monkeypatch.delenv("SLABOT_PRESET", raising=False)
    return write(tmp_path / "config.toml", f'preset = "mailcampaigns"\n[database]\nurl = "{sqlite_url}"\n')


def test_cli_import_and_list(config: Path, tmp_path: Path) -> None:
    code, out, err = run("--config", str(config), "accounts", "list", "--json")
    assert code == 2 and "no database at" in err  # a command that only reads makes no database
    path = write(tmp_path / "accounts.toml", EXAMPLE_TOML)
    code, out, err = run("--config", str(config), "accounts", "import", str(path))
    assert (code, out, err) == (0, "imported 1 accounts (1 new, 0 updated), rejected 0 rows\n", "")
    code, out, err = run("--config", str(config), "accounts", "list", "--json")
    assert code == 0 and err == ""
    assert json.loads(out) == [{
        "name": "Bakkerij Jansen", "plan": "licentie", "staff": "anna", "templates_delivered": "2026-11-01",
        "language": "nl", "monthly_hours": 8, "billing_email": None,
        "contacts": [
            {"name": "Piet Jansen", "role": "contact", "authorised": True,
             "email": ["piet@bakkerij-jansen.nl"], "phone": ["+31612345678"]},
            {"name": "Webbureau Pixel", "role": "third_party", "authorised": False,
             "email": ["info@pixel.example"], "phone": []},
        ],
    }]
    code, out, _ = run("--config", str(config), "accounts", "list")
    assert code == 0
    assert out.splitlines()[0].startswith("Bakkerij Jansen")
    assert "licentie" in out and "anna" in out
    assert "Piet Jansen [contact]: piet@bakkerij-jansen.nl, +31612345678" in out
    assert "Webbureau Pixel [third party, not authorised]: info@pixel.example" in out
    # importing again updates
    code, out, _ = run("--config", str(config), "accounts", "import", str(path))
    assert (code, out) == (0, "imported 1 accounts (0 new, 1 updated), rejected 0 rows\n")


def test_cli_import_with_rejected_rows_exits_1(config: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "accounts.csv", BAD_CSV)
    code, out, err = run("--config", str(config), "accounts", "import", str(path))
    assert code == 1 and err == ""
    lines = out.splitlines()
    assert lines[-1] == "imported 2 accounts (2 new, 0 updated), rejected 9 rows"
    assert lines[0].startswith(f"rejected: {path}:3: account 'Gold Plan BV': plan: unknown plan 'gold'")
    assert len(lines) == 10
    code, out, _ = run("--config", str(config), "accounts", "list", "--json")
    assert [a["name"] for a in json.loads(out)] == ["Goed BV", "Ook Goed BV"]
    assert json.loads(out)[1]["monthly_hours"] == 2.5


@pytest.mark.parametrize(("name", "text", "message"), [
    ("missing.toml", None, "no such accounts file"),
    ("broken.toml", "[[account]\n", "not valid TOML"),
    ("broken.csv", "account,plan,contact,colour\n", "unknown column(s) 'colour'"),
])
def test_cli_unusable_file_is_one_line_exit_2(config: Path, tmp_path: Path, name: str, text: str | None,
                                              message: str) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text, encoding="utf-8")
    code, out, err = run("--config", str(config), "accounts", "import", str(path))
    assert code == 2 and out == ""
    [line] = err.splitlines()
    assert line.startswith(f"slabot: error: {path}") and message in line


def test_cli_plans_come_from_the_configured_preset(tmp_path: Path, sqlite_url: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLABOT_DATABASE_URL", raising=False)
    monkeypatch.delenv("SLABOT_PRESET", raising=False)
    config = write(tmp_path / "paynl.toml", f'preset = "paynl"\n[database]\nurl = "{sqlite_url}"\n')
    path = write(tmp_path / "a.toml", EXAMPLE_TOML)
    code, out, _ = run("--config", str(config), "accounts", "import", str(path))
    assert code == 1
    assert "unknown plan 'licentie'; choose one of: pioneer, professional, business, premium" in out


def test_cli_accounts_needs_a_subcommand(config: Path) -> None:
    code, _, _ = run("--config", str(config), "accounts")
    assert code == 2
