"""Shared fixtures: a fresh database per test, on SQLite and (when SLABOT_TEST_PG_URL is set) PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from storage.database import Database, open_database

PG_URL = os.environ.get("SLABOT_TEST_PG_URL")

# what a skipped test waited for, by the words of its reason, and how to get it
MISSING = (
    ("SLABOT_TEST_PG_URL", "PostgreSQL",
     "set SLABOT_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test (a server with trust auth)"),
    ("dovecot", "Dovecot (IMAP)", "apt-get install dovecot-imapd"),
    ("chromium", "Chromium", "apt-get install chromium chromium-driver"),
    ("openssl", "openssl", "apt-get install openssl"),
)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per missing server instead of one per skipped test."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    counts: dict[str, int] = {}
    for report in skipped:
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        key = next((f"{what}: {how}" for word, what, how in MISSING if word.lower() in reason.lower()), reason)
        counts[key] = counts.get(key, 0) + 1
    terminalreporter.write_sep("-", "skipped, by what they need")
    for key, count in sorted(counts.items(), key=lambda kv: -kv[1]):
        need, _, how = key.partition(": ")
        line = f"{count} tests need {need}: {how}" if how else f"{count} tests skipped: {need}"
        terminalreporter.write_line(line)


def _pg_schema_url(schema: str) -> str:
    assert PG_URL is not None
    url = make_url(PG_URL)
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def migrated_pg_schema() -> Iterator[tuple[str, str] | None]:
    """The schema of a PostgreSQL database migrated once for the session, as ``pg_dump`` writes it (name, SQL), for
    each test that wants a migrated database to make again in a schema of its own: a quarter of a second less
    per test. None without ``pg_dump`` (each test then migrates its own)."""
    if not PG_URL or shutil.which("pg_dump") is None:
        yield None
        return
    name = f"t_template_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    try:
        open_database(_pg_schema_url(name)).dispose()
        url = make_url(PG_URL).set(drivername="postgresql")
        dumped = subprocess.run(["pg_dump", "--no-owner", "--no-privileges", "--inserts", "--schema", name,
                                 url.render_as_string(hide_password=False)],
                                capture_output=True, text=True, check=False)
        if dumped.returncode != 0:
            yield None
            return
        # psql's meta-commands (\restrict) and the dump's own search_path setting are not SQL for a driver
        sql = "\n".join(line for line in dumped.stdout.splitlines()
                        if not line.startswith("\\") and "set_config('search_path'" not in line)
        yield name, sql
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{name}" CASCADE')
        admin.dispose()


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A PostgreSQL URL on a schema of its own, dropped afterwards (skipped without SLABOT_TEST_PG_URL); the
    schema is migrated already where ``pg_dump`` could copy the session's migrated one."""
    if not PG_URL:
        pytest.skip("SLABOT_TEST_PG_URL is not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    template = request.getfixturevalue("migrated_pg_schema")
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        if template is None:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        else:
            name, sql = template
            conn.exec_driver_sql(sql.replace(name, schema))
    try:
        yield _pg_schema_url(schema)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'slabot.db'}"


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated once for the session, copied for each test that wants one (migrating costs a
    quarter of a second a test)."""
    path = tmp_path_factory.mktemp("template") / "slabot.db"
    open_database(f"sqlite:///{path}").dispose()  # its WAL checkpointed into the file on close
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of a migrated database: each test runs on SQLite and on PostgreSQL (on a schema of its own, migrated
    when the test opens it)."""
    if request.param == "sqlite":
        path = tmp_path / "slabot.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        return f"sqlite:///{path}"
    return str(request.getfixturevalue("pg_url"))


def _opened(url: str) -> Iterator[Database]:
    database = open_database(url)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    yield from _opened(db_url)


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[Database]:
    """A migrated database on PostgreSQL alone (skipped without SLABOT_TEST_PG_URL)."""
    yield from _opened(pg_url)
