"""No configured secret in any output (issue 18, point 2): /healthz, ``config check``, logs, CLI errors.

A Telegram token that Telegram rejects lands in the error python-telegram-bot raises ("The token `...` was
rejected"); a PostgreSQL password may sit in the database URL as ``user:password@`` or as ``?password=``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers import free_port, run_cli
from test_logs import bot_api, run_with_telegram, stop_run  # noqa: F401 - the Bot API stand-in fixture

from bot.config import Masker, SlabotConfig, shown_url
from bot.demo.standins.telegram import TelegramStandIn

WRONG_TOKEN = "999:AAH-rejected-secret-token"
DB_PASSWORD = "hunter2-db-secret"


def _healthz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _with_password(db_url: str) -> str:
    if db_url.startswith("sqlite"):
        return db_url
    return db_url + ("&" if "?" in db_url else "?") + f"password={DB_PASSWORD}"


def test_healthz_and_the_log_never_show_a_rejected_token_or_the_database_password(
        tmp_path: Path, db_url: str, bot_api: tuple[TelegramStandIn, str]) -> None:  # noqa: F811
    _, api = bot_api
    proc, port = run_with_telegram(tmp_path, _with_password(db_url), WRONG_TOKEN, api)
    body = ""
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            try:
                status, body = _healthz(port)
            except OSError:
                time.sleep(0.1)
                continue
            if json.loads(body)["channels"].get("telegram", {}).get("state") == "down":
                break
            time.sleep(0.1)
    finally:
        err = stop_run(proc)
    health = json.loads(body)
    assert status == 503 and health["channels"]["telegram"]["state"] == "down", body
    assert "rejected" in health["channels"]["telegram"]["reason"]
    assert WRONG_TOKEN not in body and WRONG_TOKEN.split(":")[1] not in body
    assert "slabot is running" in err, err
    assert WRONG_TOKEN.split(":")[1] not in err and DB_PASSWORD not in err


def test_config_check_masks_a_password_given_as_a_query_parameter(tmp_path: Path) -> None:
    config = tmp_path / "slabot.toml"
    config.write_text(f'[database]\nurl = "postgresql+psycopg://slabot@db.internal/slabot?password={DB_PASSWORD}'
                      f'&sslmode=require"\n', encoding="utf-8")
    for json_flag in ((), ("--json",)):
        code, out, err = run_cli("--config", str(config), "config", "check", *json_flag)
        assert code == 0, err
        assert DB_PASSWORD not in out and "password=***" in out and "sslmode=require" in out


@pytest.mark.parametrize("url", [
    f"postgresql+psycopg://slabot@127.0.0.1:{{port}}/slabot?password={DB_PASSWORD}&connect_timeout=2",
    f"postgresql+psycopg://slabot:{DB_PASSWORD}@127.0.0.1:{{port}}/slabot?connect_timeout=2",
])
def test_a_cli_error_never_shows_the_database_password(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLABOT_DATABASE_URL", url.format(port=free_port()))
    monkeypatch.delenv("SLABOT_CONFIG", raising=False)
    code, out, err = run_cli("tickets", "list")
    assert code != 0 and "127.0.0.1" in err
    assert DB_PASSWORD not in out + err


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://slabot:s3cr%40t-pw@db.internal/slabot",
    "postgresql+psycopg://slabot@db.internal/slabot?password=s3cr%40t-pw",
    "postgresql+psycopg://slabot@db.internal/slabot?sslmode=require&password=s3cr%40t-pw&application_name=x",
    "postgresql+psycopg://slabot@db.internal/slabot?PASSWORD=s3cr@t-pw",
])
def test_every_form_of_a_database_password_is_masked_wherever_it_shows(url: str) -> None:
    config = SlabotConfig.model_validate({"database": {"url": url}})
    mask = Masker.of(config)
    assert "s3cr" not in shown_url(url) and "db.internal" in shown_url(url)
    for text in (f"connecting to {url} failed", "password 's3cr@t-pw' was refused", "quoted: s3cr%40t-pw"):
        assert "s3cr" not in mask(text), text


def test_every_configured_secret_is_masked() -> None:
    config = SlabotConfig.model_validate({
        "telegram": {"token": "4242:AAH-secret-token", "staff_chat_id": -100},
        "twilio": {"account_sid": "AC1", "auth_token": "twilio-auth-secret", "whatsapp_from": "+3197010000000"},
        "email": {"imap_host": "imap.example.nl", "imap_user": "u", "imap_password": "imap-pass-1",
                  "smtp_host": "smtp.example.nl", "smtp_password": "mail-pass-1", "from_address": "s@example.nl"},
    })
    mask = Masker.of(config)
    text = mask("InvalidToken: The token `4242:AAH-secret-token` was rejected; https://x/bot4242%3AAAH-secret-token/getMe"
                " twilio-auth-secret imap-pass-1 mail-pass-1")
    for secret in ("AAH-secret-token", "twilio-auth-secret", "imap-pass-1", "mail-pass-1"):
        assert secret not in text
    assert mask("an ordinary line") == "an ordinary line"


