"""``sla_engine`` stays pure (SPEC section 1, STYLE 1-2).

It imports only pure stdlib modules, ``holidays`` and itself: nothing from
``bot``, ``channels`` or ``storage``, no I/O, network, database or scheduler
library. And it never reads the clock: time is always passed in.

The checks parse every ``sla_engine/**/*.py`` with ``ast`` (so an import inside
a function or under ``if TYPE_CHECKING`` counts too); the checker functions
themselves are tested on synthetic sources, so a checker that finds nothing
cannot pass for a clean engine.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import sla_engine

ENGINE_DIR = Path(sla_engine.__file__).resolve().parent
MODULES = sorted(ENGINE_DIR.rglob("*.py"))

ALLOWED = frozenset({
    # pure standard library
    "__future__", "bisect", "collections", "dataclasses", "datetime", "decimal", "enum", "functools",
    "itertools", "math", "re", "typing", "unicodedata", "zoneinfo",
    # the one third-party dependency, and the engine itself
    "holidays", "sla_engine",
})
# named in the failure message so that the reason is plain; anything not ALLOWED fails anyway
KNOWN_FORBIDDEN = frozenset({
    "bot", "channels", "storage",
    "sqlalchemy", "alembic", "twilio", "telegram", "aiosmtplib", "aioimaplib", "apscheduler",
    "socket", "ssl", "asyncio", "os", "pathlib", "io", "shutil", "subprocess", "tempfile", "sqlite3",
    "requests", "httpx", "urllib", "http", "smtplib", "imaplib", "email", "logging", "time", "random",
    "threading", "multiprocessing", "importlib", "pydantic", "tomllib", "sys", "builtins",
})
# reading the clock: datetime.now(), datetime.utcnow(), date.today(), time.time() and friends
CLOCK_METHODS = frozenset({"now", "utcnow", "today"})
TIME_MODULE_FUNCTIONS = frozenset({"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter",
                                   "perf_counter_ns", "localtime", "gmtime", "ctime", "asctime"})
IO_BUILTINS = frozenset({"open", "input", "print", "__import__", "exec", "eval", "breakpoint"})


def forbidden_imports(source: str, filename: str = "<source>") -> list[str]:
    """Every import in ``source`` of a module outside :data:`ALLOWED`, as ``"line: module"``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level > 0:  # a relative import stays inside sla_engine
                continue
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top not in ALLOWED:
                why = " (forbidden)" if top in KNOWN_FORBIDDEN else " (not on the allow-list)"
                found.append(f"{filename}:{node.lineno}: imports {name}{why}")
    return found


def clock_reads(source: str, filename: str = "<source>") -> list[str]:
    """Every place in ``source`` that reads the current time or does I/O through a builtin."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Attribute):
            if node.attr in CLOCK_METHODS:
                found.append(f"{filename}:{node.lineno}: .{node.attr}")
            elif node.attr in TIME_MODULE_FUNCTIONS and isinstance(node.value, ast.Name) and node.value.id == "time":
                found.append(f"{filename}:{node.lineno}: time.{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in IO_BUILTINS:
            found.append(f"{filename}:{node.lineno}: {node.func.id}()")
    return found


def test_the_engine_modules_are_found() -> None:
    names = {p.relative_to(ENGINE_DIR).as_posix() for p in MODULES}
    assert {"__init__.py", "calendar.py", "clocks.py", "policy.py", "deadlines.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ENGINE_DIR).as_posix())
def test_engine_module_imports_only_pure_modules(path: Path) -> None:
    assert forbidden_imports(path.read_text(encoding="utf-8"), path.name) == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ENGINE_DIR).as_posix())
def test_engine_module_never_reads_the_clock(path: Path) -> None:
    assert clock_reads(path.read_text(encoding="utf-8"), path.name) == []


def test_importing_the_engine_loads_no_application_or_io_library() -> None:
    """At run time too: importing every engine module pulls in none of the outer layers."""
    modules = ", ".join(
        "sla_engine." + ".".join(p.relative_to(ENGINE_DIR).with_suffix("").parts)
        for p in MODULES if p.name != "__init__.py"
    )
    outer = ["bot", "channels", "storage", "sqlalchemy", "twilio", "telegram", "aiosmtplib", "aioimaplib",
             "apscheduler", "requests", "httpx", "pydantic"]
    code = textwrap.dedent(f"""
        import sys
        import {modules}
        print(sorted(m for m in sys.modules if m.split(".")[0] in {outer!r}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"


# -- the checkers catch what they are meant to catch -------------------------


@pytest.mark.parametrize(
    "source",
    [
        "import sqlalchemy",
        "from sqlalchemy.orm import Session",
        "from bot.presets import load_preset",
        "import bot",
        "from channels import whatsapp",
        "from storage.models import Ticket",
        "import os",
        "import os.path",
        "from pathlib import Path",
        "import socket",
        "import asyncio",
        "from twilio.rest import Client",
        "import telegram",
        "import aiosmtplib, aioimaplib",
        "from apscheduler.schedulers.asyncio import AsyncIOScheduler",
        "import subprocess",
        "import requests",
        "import httpx",
        "from urllib.request import urlopen",
        "from io import StringIO",
        "import time",
        "import importlib",
        "import json",  # pure, but not on the allow-list: widening it is a decision, not an accident
        "import datetime, sqlite3",
        "def f():\n    import sqlalchemy\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from storage.models import Ticket\n",
        "try:\n    import requests\nexcept ImportError:\n    requests = None\n",
    ],
)
def test_checker_rejects_a_forbidden_import(source: str) -> None:
    assert forbidden_imports(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "from __future__ import annotations",
        "import bisect\nfrom collections.abc import Mapping\nfrom dataclasses import dataclass, field",
        "from datetime import date, datetime, timedelta\nfrom decimal import Decimal\nfrom enum import StrEnum",
        "import re, unicodedata, math, itertools, functools\nfrom typing import Any",
        "from zoneinfo import ZoneInfo",
        "import holidays as holidays_lib",
        "from sla_engine.calendar import BusinessCalendar",
        "from . import calendar\nfrom .clocks import make_clock",
    ],
)
def test_checker_accepts_allowed_imports(source: str) -> None:
    assert forbidden_imports(source) == []


def test_checker_names_the_forbidden_module_and_line() -> None:
    source = "from datetime import date\n\nfrom storage.repositories import TicketRepository\n"
    assert forbidden_imports(source, "policy.py") == ["policy.py:3: imports storage.repositories (forbidden)"]


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import datetime\nx = datetime.now()",
        "import datetime\nx = datetime.datetime.now(datetime.timezone.utc)",
        "from datetime import datetime, timezone\nx = datetime.now(tz=timezone.utc)",
        "from datetime import datetime\nx = datetime.utcnow()",
        "from datetime import date\nx = date.today()",
        "import time\nx = time.time()",
        "import time\nx = time.monotonic()",
        "def due(t):\n    return max(t, datetime.now())",
        "print('deadline')",
        "data = open('holidays.json').read()",
        "mod = __import__('os')",
        "clock = datetime.now",  # a reference to it is as bad as a call
    ],
)
def test_checker_rejects_reading_the_clock(source: str) -> None:
    assert clock_reads(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import datetime\nx = datetime.fromtimestamp(1_700_000_000)",
        "def add(start, duration):\n    return start + duration",
        "local = instant.astimezone(zone)\nt = local.time()\nday = local.date()",
        "from datetime import time\nmidnight = time()",
    ],
)
def test_checker_accepts_time_passed_in(source: str) -> None:
    assert clock_reads(source) == []


def test_a_synthetic_bad_module_fails_the_module_check(tmp_path: Path) -> None:
    """The per-module test itself fails on a module that breaks the rules."""
    bad = tmp_path / "reminders.py"
    bad.write_text("from datetime import datetime\nfrom storage import db\n\ndef late():\n    return datetime.now()\n")
    with pytest.raises(AssertionError):
        test_engine_module_imports_only_pure_modules(bad)
    with pytest.raises(AssertionError):
        test_engine_module_never_reads_the_clock(bad)
