"""Config loading: strict typed models, clear errors, secrets from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_config, masked
from bot.errors import ConfigError
from bot.presets import load_preset, preset_from_mapping

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_embedded_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    loaded = load_config(None, environ={})
    assert loaded.source == "embedded defaults"
    assert loaded.config.preset == "mailcampaigns"
    assert loaded.config.database.url == "sqlite:///slabot.db"
    assert not loaded.config.twilio.configured
    assert loaded.preset.plan_names == ("licentie", "ondersteuning", "project")


def test_example_config_is_valid_and_documents_every_key() -> None:
    loaded = load_config(EXAMPLE, environ={})
    assert loaded.preset.name == "mailcampaigns"
    text = EXAMPLE.read_text(encoding="utf-8")
    for section, model in loaded.config.model_dump().items():
        if isinstance(model, dict):
            assert f"[{section}]" in text
            for key in model:
                assert key in text, f"{section}.{key} is not documented in config.example.toml"


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, 'preset = "paynl"\n')
    loaded = load_config(None, environ={"SLABOT_CONFIG": str(path)})
    assert loaded.preset.name == "paynl"
    assert loaded.source == str(path)


def test_unknown_key_names_file_key_and_choices(tmp_path: Path) -> None:
    path = write(tmp_path, "[http]\nhots = '0.0.0.0'\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    (line,) = err.value.problems
    assert line.startswith(f"{path}: http.hots: unknown key")
    assert "host, port, public_url" in line


def test_wrong_type_says_expected_and_found(tmp_path: Path) -> None:
    path = write(tmp_path, "[http]\nport = 'eighty'\n[telegram]\nstaff_user_ids = ['anna']\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    problems = err.value.problems
    assert any(p.startswith(f"{path}: http.port: expected") and "found 'eighty'" in p for p in problems)
    assert any(p.startswith(f"{path}: telegram.staff_user_ids[0]: expected") for p in problems)


def test_out_of_range_port_and_bad_url(tmp_path: Path) -> None:
    path = write(tmp_path, "[http]\nport = 70000\npublic_url = 'support.example.nl'\n[database]\nurl = 'slabot.db'\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    text = str(err.value)
    assert "http.port" in text and "70000" in text
    assert "http.public_url" in text and "https://" in text
    assert "database.url" in text


def test_sqlite_synchronous_is_full_unless_set(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), environ={}).config.database.synchronous == "full"
    loaded = load_config(write(tmp_path, ""), environ={"SLABOT_DATABASE_SYNCHRONOUS": "normal"})
    assert loaded.config.database.synchronous == "normal"
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "[database]\nsynchronous = 'off'\n"), environ={})
    assert "database.synchronous" in str(err.value) and "'off'" in str(err.value)


def test_top_level_keys_from_the_environment(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, "language = 'nl'\n"),
                         environ={"SLABOT_LANGUAGE": "en", "SLABOT_PRESET": "paynl"})
    assert (loaded.config.language, loaded.config.preset) == ("en", "paynl")
    assert {"SLABOT_LANGUAGE", "SLABOT_PRESET"} <= set(loaded.from_env)
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, ""), environ={"SLABOT_LANGUAGE": "de"})
    assert "language" in str(err.value) and "'de'" in str(err.value)


def test_invalid_toml_is_one_clear_line(tmp_path: Path) -> None:
    path = write(tmp_path, "preset = \n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert err.value.problems[0].startswith(f"{path}: not valid TOML")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml", environ={})


def test_unknown_preset_lists_choices(tmp_path: Path) -> None:
    path = write(tmp_path, 'preset = "acme"\n')
    with pytest.raises(ConfigError, match="choose one of: mailcampaigns, paynl"):
        load_config(path, environ={})


def test_secrets_from_environment_and_masked(tmp_path: Path) -> None:
    path = write(tmp_path, "[twilio]\naccount_sid = 'AC123'\nwhatsapp_from = 'whatsapp:+31634890878'\n")
    env = {"SLABOT_TWILIO_AUTH_TOKEN": "s3cret", "SLABOT_TELEGRAM_STAFF_USER_IDS": "11, 22",
           "SLABOT_DATABASE_URL": "sqlite:///other.db"}
    loaded = load_config(path, environ=env)
    assert loaded.config.twilio.auth_token is not None
    assert loaded.config.twilio.auth_token.get_secret_value() == "s3cret"
    assert loaded.config.twilio.configured
    assert loaded.config.telegram.staff_user_ids == [11, 22]
    assert loaded.config.database.url == "sqlite:///other.db"
    assert set(loaded.from_env) == set(env)
    shown = masked(loaded.config)
    assert shown["twilio"]["auth_token"] == "***"
    assert "s3cret" not in repr(loaded.config) and "s3cret" not in str(shown)


def test_config_is_frozen() -> None:
    loaded = load_config(EXAMPLE, environ={})
    with pytest.raises(Exception):
        loaded.config.http.port = 1  # type: ignore[misc]


def test_preset_file_by_path_relative_to_config(tmp_path: Path) -> None:
    shipped = (Path(__file__).resolve().parent.parent / "bot" / "preset_files" / "paynl.toml").read_text()
    (tmp_path / "desk.toml").write_text(shipped.replace('name = "paynl"', 'name = "desk"'), encoding="utf-8")
    path = write(tmp_path, 'preset = "desk.toml"\n')
    assert load_config(path, environ={}).preset.name == "desk"


def test_preset_errors_name_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        preset_from_mapping(
            {"name": "x", "title": "X", "ref_prefix": "X",
             "calendars": {"office": {"hours": {"mon": ["09:00-17:00"], "funday": ["10:00-11:00"]}}},
             "plans": [{"name": "a", "channels": ["fax"], "sla": True,
                        "first_response": {"duration": "soon", "clock": "business", "calendar": "office"}}]},
            "desk.toml",
        )
    text = str(err.value)
    assert "desk.toml: calendars.office.hours.funday" in text
    assert "desk.toml: plans[0].channels[0]" in text and "'fax'" in text
    assert "desk.toml: plans[0].first_response.duration" in text and "'soon'" in text


def test_preset_plan_on_unknown_calendar() -> None:
    data = {"name": "x", "title": "X", "ref_prefix": "X",
            "calendars": {"office": {"hours": {"mon": ["09:00-17:00"]}}},
            "plans": [{"name": "a", "channels": ["email"], "sla": True,
                       "first_response": {"duration": "8h", "clock": "business", "calendar": "nowhere"}}]}
    with pytest.raises(ConfigError, match="calendar 'nowhere'"):
        preset_from_mapping(data, "desk.toml")


def test_bad_opening_window_in_preset() -> None:
    data = {"name": "x", "title": "X", "ref_prefix": "X",
            "calendars": {"office": {"hours": {"mon": ["17:00-09:00"]}}},
            "plans": [{"name": "a", "channels": ["email"], "sla": False}]}
    with pytest.raises(ConfigError, match=r"calendars\.office\.hours"):
        preset_from_mapping(data, "desk.toml")


@pytest.mark.parametrize("name, plans", [
    ("mailcampaigns", ("licentie", "ondersteuning", "project")),
    ("paynl", ("pioneer", "professional", "business", "premium")),
])
def test_shipped_presets(name: str, plans: tuple[str, ...]) -> None:
    preset = load_preset(name)
    assert preset.plan_names == plans


def test_telegram_webhook_needs_https_and_a_secret_that_is_never_shown(tmp_path: Path) -> None:
    path = write(tmp_path, "[telegram]\nwebhook_url = 'http://support.example.nl/webhooks/telegram'\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert "telegram.webhook_url: expected an https:// URL" in str(err.value)

    path = write(tmp_path, "[telegram]\nwebhook_url = 'https://support.example.nl/webhooks/telegram'\n")
    with pytest.raises(ConfigError, match=r"telegram\.webhook_secret: .*required with webhook_url"):
        load_config(path, environ={})

    path = write(tmp_path, "[telegram]\nwebhook_url = 'https://support.example.nl/webhooks/telegram'\n"
                           "webhook_secret = 'geen spaties!'\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    (line,) = err.value.problems
    assert "telegram.webhook_secret: expected 1-256 characters" in line and "geen spaties" not in line

    path = write(tmp_path, "[telegram]\nwebhook_url = 'https://support.example.nl/webhooks/telegram'\n")
    loaded = load_config(path, environ={"SLABOT_TELEGRAM_WEBHOOK_SECRET": "s3cret-Hook_42"})
    assert loaded.config.telegram.webhook
    assert masked(loaded.config)["telegram"]["webhook_secret"] == "***"
    assert not load_config(EXAMPLE, environ={}).config.telegram.webhook  # long polling by default
