"""slabot's configuration: one TOML file into frozen, strict, typed models.

Where the file comes from: ``--config PATH``, else ``$SLABOT_CONFIG``, else
``config.toml`` in the working directory, else the embedded defaults (no file
at all). Any key of a section may also come from the environment as
``SLABOT_<SECTION>_<KEY>`` (``SLABOT_TWILIO_AUTH_TOKEN``,
``SLABOT_TELEGRAM_TOKEN``, ``SLABOT_DATABASE_URL``, ...), which is the way to
keep secrets out of the file; the top-level ``preset`` is ``SLABOT_PRESET``.
A bad file fails at start with the file, the dotted key, what was expected and
what was found.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator

from bot.errors import ConfigError, describe_validation_error
from bot.presets import load_preset
from channels.identity import IdentityError, normalise_phone
from sla_engine.policy import Preset

ENV_PREFIX = "SLABOT_"
# what Telegram accepts as a webhook's secret_token: 1-256 characters A-Z, a-z, 0-9, _ and -
_TELEGRAM_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(_Section):
    """Where tickets are stored: an SQLAlchemy URL (SQLite file by default)."""

    url: str = "sqlite:///slabot.db"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError("expected an SQLAlchemy URL such as sqlite:///slabot.db or postgresql+psycopg://...")
        return value


class HttpConfig(_Section):
    """The HTTP server for webhooks and the health check."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = None  # the URL Twilio calls (behind a TLS proxy), used to check signatures

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value.rstrip("/") if value else value


class TwilioConfig(_Section):
    """WhatsApp through Twilio; off while account_sid or auth_token is missing."""

    account_sid: str | None = None
    auth_token: SecretStr | None = None
    whatsapp_from: str | None = None
    # approved templates (ContentSid) for messages outside WhatsApp's 24-hour window, by purpose
    # ("accepted", "reply", ...) with "default" as the fallback; variables {{1}} = ticket ref, {{2}} = text
    templates: dict[str, str] = {}
    # the outage line on Twilio Voice (POST /webhooks/twilio/voice): after the spoken answer the caller is put
    # through to this number (the on-call phone); unset, the call ends after the answer
    oncall_number: str | None = None
    api_base_url: str | None = None  # tests only: a local stand-in of Twilio's REST API

    @field_validator("oncall_number")
    @classmethod
    def _oncall_number(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            return normalise_phone(value)
        except IdentityError as exc:
            raise ValueError(f"expected a phone number such as +31612345678 ({exc})") from None

    @property
    def configured(self) -> bool:
        return bool(self.account_sid and self.auth_token and self.whatsapp_from)

    @property
    def voice_configured(self) -> bool:
        """The voice webhook needs only the auth token (to check Twilio's signature)."""
        return self.auth_token is not None and bool(self.auth_token.get_secret_value())


class EmailConfig(_Section):
    """E-mail: IMAP in, SMTP out; off while the hosts are missing."""

    imap_host: str | None = None
    imap_port: int = Field(default=993, ge=1, le=65535)
    imap_user: str | None = None
    imap_password: SecretStr | None = None
    imap_folder: str = "INBOX"
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    from_address: str | None = None
    from_name: str | None = None  # the display name on slabot's mail, e.g. "Mailcampaigns support"
    imap_security: Literal["tls", "starttls", "none"] = "tls"
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    imap_move_to: str | None = None  # move processed mail to this folder (after it is committed)
    imap_poll_seconds: int = Field(default=60, ge=5, le=3600)  # when the server has no IDLE
    auto_replies_per_hour: int = Field(default=5, ge=0)  # to one address; 0 = no cap
    acknowledge_max_age_hours: float = Field(default=24, ge=0)  # older mail is stored without a reply

    @property
    def configured(self) -> bool:
        return bool(self.imap_host and self.smtp_host and self.from_address)

    @property
    def smtp_configured(self) -> bool:
        return bool(self.smtp_host and self.from_address)

    @property
    def imap_configured(self) -> bool:
        return bool(self.imap_host and self.imap_user and self.imap_password)


class TelegramConfig(_Section):
    """The staff chat on Telegram; off while token or staff_chat_id is missing."""

    token: SecretStr | None = None
    staff_chat_id: int | None = None
    staff_user_ids: list[int] = []  # only these Telegram users may act; empty refuses everyone
    oncall_chat_id: int | None = None
    team_lead: str | None = None  # Telegram username named when a first-response deadline is breached
    # webhook mode instead of long polling: the public https URL Telegram posts updates to (it reaches
    # slabot's POST /webhooks/telegram) and the secret Telegram sends with each one
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = Field(default=None, validate_default=True)
    api_base_url: str | None = None  # tests only: a local stand-in of the Bot API

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value and not value.startswith("https://"):
            raise ValueError("expected an https:// URL (Telegram posts to HTTPS only)")
        return value or None

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            if info.data.get("webhook_url"):
                raise ValueError("a secret is required with webhook_url (1-256 characters A-Z a-z 0-9 _ -)")
            return None
        if not _TELEGRAM_SECRET.fullmatch(value.get_secret_value()):
            raise ValueError("expected 1-256 characters A-Z a-z 0-9 _ - (what Telegram accepts)")
        return value

    @property
    def configured(self) -> bool:
        return bool(self.token and self.staff_chat_id is not None)

    @property
    def webhook(self) -> bool:
        """Updates arrive on slabot's webhook route rather than by long polling."""
        return self.webhook_url is not None


class AccountsConfig(_Section):
    """An accounts file imported on start."""

    file: str | None = None


class DashboardUser(_Section):
    """A staff login of the dashboard; the hash is what ``slabot dashboard hash-password`` prints."""

    name: str = Field(min_length=1, max_length=100, description="The login name (not case-sensitive).")
    password_hash: SecretStr = Field(description=(
        "The Argon2 hash of the password, as `slabot dashboard hash-password` prints it; never the password."))
    language: Literal["nl", "en"] | None = Field(default=None, description=(
        "This person's dashboard language; unset, the browser's (Accept-Language), else the top-level language."))

    @field_validator("password_hash")
    @classmethod
    def _password_hash(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith("$argon2"):
            raise ValueError("expected an Argon2 hash ($argon2id$...) as `slabot dashboard hash-password` prints it")
        return value


class DashboardConfig(_Section):
    """The staff dashboard on slabot's HTTP app (``/dashboard/``); off while no users are configured."""

    users: list[DashboardUser] = Field(default=[], description=(
        "The staff logins, as [[dashboard.users]] tables with name, password_hash and optionally language; "
        "the dashboard is on when there is at least one."))
    secret_key: SecretStr | None = Field(default=None, validate_default=True, description=(
        "The key that signs the session cookies: at least 32 characters (`slabot dashboard secret-key` prints "
        "one); required with users. Changing it logs everyone out."))
    session_hours: float = Field(default=12, gt=0, le=24 * 31, description="A login lasts this many hours.")
    due_soon_minutes: int = Field(default=120, ge=1, description=(
        "An unanswered ticket whose first-response deadline is this close is shown as due soon."))

    @field_validator("users")
    @classmethod
    def _users(cls, value: list[DashboardUser]) -> list[DashboardUser]:
        names = [user.name.casefold() for user in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"each user name once; named twice: {', '.join(twice)}")
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            value = None
        if value is None and info.data.get("users"):
            raise ValueError("a secret_key is required with users (at least 32 characters; "
                             "`slabot dashboard secret-key` prints one)")
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("expected at least 32 characters (`slabot dashboard secret-key` prints one)")
        return value

    @property
    def configured(self) -> bool:
        return bool(self.users) and self.secret_key is not None


class SlabotConfig(_Section):
    """The whole configuration."""

    preset: str = "mailcampaigns"
    language: Literal["nl", "en"] = "nl"
    database: DatabaseConfig = DatabaseConfig()
    http: HttpConfig = HttpConfig()
    twilio: TwilioConfig = TwilioConfig()
    email: EmailConfig = EmailConfig()
    telegram: TelegramConfig = TelegramConfig()
    accounts: AccountsConfig = AccountsConfig()
    dashboard: DashboardConfig = DashboardConfig()


SECRET_KEYS = ("twilio.auth_token", "email.imap_password", "email.smtp_password", "telegram.token",
               "telegram.webhook_secret", "dashboard.secret_key")


@dataclass(frozen=True)
class LoadedConfig:
    """The validated config, where it came from, and the preset it names."""

    config: SlabotConfig
    source: str  # a path, or "embedded defaults"
    preset: Preset
    from_env: tuple[str, ...]


def _env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    merged = {key: (dict(value) if isinstance(value, dict) else value) for key, value in data.items()}
    used: list[str] = []
    if f"{ENV_PREFIX}PRESET" in environ:
        merged["preset"] = environ[f"{ENV_PREFIX}PRESET"]
        used.append(f"{ENV_PREFIX}PRESET")
    for section, field in SlabotConfig.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for key in model.model_fields:
            name = f"{ENV_PREFIX}{section.upper()}_{key.upper()}"
            if name in environ:
                value: Any = environ[name]
                if key == "staff_user_ids":
                    value = [v.strip() for v in value.split(",") if v.strip()]
                target = merged.setdefault(section, {})
                if isinstance(target, dict):
                    target[key] = value
                used.append(name)
    return merged, used


def resolve_path(explicit: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None) -> Path | None:
    """The config file to read, or None for the embedded defaults."""
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if env.get("SLABOT_CONFIG"):
        return Path(env["SLABOT_CONFIG"])
    default = Path("config.toml")
    return default if default.is_file() else None


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> LoadedConfig:
    """Read, validate and resolve the configuration (raises :class:`ConfigError`)."""
    env = os.environ if environ is None else environ
    chosen = resolve_path(path, env)
    data: dict[str, Any] = {}
    source = "embedded defaults"
    if chosen is not None:
        source = str(chosen)
        try:
            data = tomllib.loads(chosen.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"{chosen}: no such config file"]) from None
        except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{chosen}: cannot be read ({exc.__class__.__name__}: {exc})"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{chosen}: not valid TOML: {exc}"]) from None
    merged, used = _env_overrides(data, env)
    try:
        config = SlabotConfig.model_validate(merged)
    except ValidationError as exc:
        raise describe_validation_error(source, SlabotConfig, exc) from None
    base_dir = chosen.parent if chosen is not None else None
    try:
        preset = load_preset(config.preset, base_dir)
    except ConfigError as exc:
        raise ConfigError([f"{source}: preset: {p}" for p in exc.problems]) from None
    return LoadedConfig(config, source, preset, tuple(used))


def masked(config: SlabotConfig) -> dict[str, Any]:
    """The config as plain data with every secret replaced by ``"***"`` (or null when unset)."""
    data = config.model_dump(mode="json")
    for dotted in SECRET_KEYS:
        section, key = dotted.split(".")
        if data[section].get(key) is not None:
            data[section][key] = "***"
    return data
