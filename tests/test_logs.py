"""No secret in slabot's logs and messages: the bot token, passwords, a database URL's password."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import free_port, served_in_thread, wait_for_health

from bot.config import SlabotConfig, shown_url
from bot.logs import SecretFilter, secrets_of
from bot.demo.standins.telegram import TelegramStandIn

TOKEN = "123:TEST"


@pytest.mark.parametrize("url, shown", [
    ("sqlite:///slabot.db", "sqlite:///slabot.db"),
    ("sqlite:////var/lib/slabot/a:b@c.db", "sqlite:////var/lib/slabot/a:b@c.db"),
    ("postgresql+psycopg://slabot@db.internal/slabot", "postgresql+psycopg://slabot@db.internal/slabot"),
    ("postgresql+psycopg://slabot:hunter2@db.internal:5432/slabot", "postgresql+psycopg://slabot:***@db.internal:5432/slabot"),
    ("postgresql+psycopg://slabot:p@ss:w/rd@db.internal/slabot", "postgresql+psycopg://slabot:***@db.internal/slabot"),
])
def test_a_database_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_the_filter_blanks_secrets_in_messages_arguments_and_tracebacks() -> None:
    config = SlabotConfig.model_validate({
        "database": {"url": "postgresql+psycopg://slabot:hunter2@db.internal/slabot"},
        "telegram": {"token": "4242:AAH-secret-token", "staff_chat_id": -100},
        "email": {"smtp_host": "smtp.example.nl", "smtp_password": "mail-pass-1", "from_address": "s@example.nl"},
    })
    assert set(secrets_of(config)) >= {"4242:AAH-secret-token", "mail-pass-1",
                                       "postgresql+psycopg://slabot:hunter2@db.internal/slabot"}
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SecretFilter(secrets_of(config)))
    logger = logging.getLogger("slabot.test.secrets")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("HTTP Request: POST https://bot.invalid/bot%s/getUpdates", "4242:AAH-secret-token")
        logger.warning("database %s is down", config.database.url)
        try:
            raise RuntimeError("login failed with mail-pass-1")
        except RuntimeError:
            logger.exception("smtp")
        logger.warning("an ordinary line with %d argument", 1)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "4242:AAH-secret-token" not in text and "hunter2" not in text and "mail-pass-1" not in text
    assert "bot***/getUpdates" in text and "postgresql+psycopg://slabot:***@db.internal/slabot" in text
    assert "RuntimeError: login failed with ***" in text
    assert "an ordinary line with 1 argument" in text


@pytest.fixture
def bot_api() -> Iterator[tuple[TelegramStandIn, str]]:
    """The Bot API stand-in served from a thread of its own, for a ``slabot run`` in another process."""
    standin = TelegramStandIn()
    with served_in_thread(standin.app()) as (url, _):
        yield standin, url


def run_with_telegram(tmp_path: Path, db_url: str, token: str, api: str) -> tuple[subprocess.Popen[str], int]:
    """``slabot run`` in a process of its own, with the staff chat on the Bot API at ``api``; and its port."""
    port = free_port()
    config = tmp_path / "slabot.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n[http]\nhost = "127.0.0.1"\nport = {port}\n'
                      f'[telegram]\ntoken = "{token}"\nstaff_chat_id = -1001\nstaff_user_ids = [7]\n'
                      f'api_base_url = "{api}"\n', encoding="utf-8")
    exe = Path(sys.executable).parent / "slabot"
    proc = subprocess.Popen([str(exe), "--config", str(config), "run"], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return proc, port


def stop_run(proc: subprocess.Popen[str]) -> str:
    """SIGTERM to a ``slabot run``, and its stderr once it has stopped (killed when it does not stop in time)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=15)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_slabot_run_does_not_log_the_bot_token(tmp_path: Path, bot_api: tuple[TelegramStandIn, str]) -> None:
    standin, api = bot_api
    proc, port = run_with_telegram(tmp_path, f"sqlite:///{tmp_path}/slabot.db", TOKEN, api)
    try:
        health = wait_for_health(port, proc)
        assert health["channels"]["telegram"]["state"] == "up"  # type: ignore[index]
        for _ in range(100):
            if standin.calls["getUpdates"] >= 2:
                break
            threading.Event().wait(0.05)
    finally:
        err = stop_run(proc)
    assert standin.calls["getMe"] >= 1 and standin.calls["getUpdates"] >= 2  # the token was used, over HTTP
    assert "slabot stopped" in err
    assert TOKEN not in err


def test_a_cli_error_names_the_database_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://slabot:hunter2@127.0.0.1:{free_port()}/slabot"
    proc = subprocess.run([str(Path(sys.executable).parent / "slabot"), "tickets", "list"], cwd=tmp_path, text=True,
                          capture_output=True, env={**os.environ, "SLABOT_DATABASE_URL": url}, timeout=60)
    assert proc.returncode != 0
    assert "slabot:***@127.0.0.1" in proc.stderr and "hunter2" not in proc.stderr + proc.stdout
