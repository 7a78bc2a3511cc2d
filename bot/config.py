"""slabot's configuration: one TOML file into frozen, strict, typed models.

Where the file comes from: ``--config PATH``, else ``$SLABOT_CONFIG``, else
``config.toml`` in the working directory, else the embedded defaults (no file
at all). Any key of a section may also come from the environment as
``SLABOT_<SECTION>_<KEY>`` (``SLABOT_TWILIO_AUTH_TOKEN``,
``SLABOT_TELEGRAM_TOKEN``, ``SLABOT_DATABASE_URL``, ...), which is the way to
keep secrets out of the file; the top-level keys are ``SLABOT_PRESET`` and
``SLABOT_LANGUAGE``.
A bad file fails at start with the file, the dotted key, what was expected and
what was found.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from bot.errors import ConfigError, describe_validation_error
from bot.presets import load_preset
from channels.identity import IdentityError, normalise_phone
from sla_engine.policy import Preset
from storage.database import describe_failure

ENV_PREFIX = "SLABOT_"
_LIST_KEYS = ("staff_user_ids", "trusted_proxies")  # given in the environment as comma-separated values
# what Telegram accepts as a webhook's secret_token: 1-256 characters A-Z, a-z, 0-9, _ and -
_TELEGRAM_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(_Section):
    """Where tickets are stored: an SQLAlchemy URL (SQLite file by default)."""

    url: str = Field(default="sqlite:///slabot.db", description=(
        "SQLAlchemy URL of the database: an SQLite file (a relative path is taken from the working directory) "
        "or PostgreSQL, e.g. postgresql+psycopg://slabot@127.0.0.1:5432/slabot. Migrations run on every start."))
    synchronous: Literal["full", "normal"] = Field(default="full", description=(
        "SQLite only: when a commit is safe. full: every commit is on disk before slabot answers (a webhook's "
        "200, an IMAP checkpoint), so a power cut or a crash of the machine loses nothing. normal: a commit "
        "survives a crash of slabot but the last ones may be lost with the machine's power; about twice the "
        "intake speed. PostgreSQL follows its own synchronous_commit."))
    lease_seconds: float = Field(default=30.0, ge=1, le=3600, description=(
        "Several workers on one database (slabot run N times on one PostgreSQL url): how long a worker's hold on "
        "a job that one worker at a time does (the Telegram poller and the staff chat's announcements, pages and "
        "weekly summary; the reader of a mailbox) lasts without renewal. A worker renews every third of it; one "
        "that dies is replaced within this time."))

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError("expected an SQLAlchemy URL such as sqlite:///slabot.db or postgresql+psycopg://...")
        return value


class HttpConfig(_Section):
    """The HTTP server for webhooks and the health check."""

    host: str = Field(default="127.0.0.1", description=(
        "Address the HTTP server (webhooks, /healthz) listens on; keep 127.0.0.1 behind a reverse proxy."))
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port of the HTTP server (0: any free port).")
    public_url: str | None = Field(default=None, description=(
        "The public base URL the webhooks are reached at, e.g. https://support.example.nl (a path prefix may "
        "follow; a trailing / is dropped). Twilio signatures are checked against it plus the request's path and "
        "query, never against the Host or X-Forwarded-* headers, and status callbacks are requested on it. Unset: "
        "signatures are checked against the URL as received and no status callbacks are requested."))
    trusted_proxies: list[str] = Field(default=[], description=(
        "Addresses or networks (127.0.0.1, 10.0.0.0/8) of the reverse proxies in front of slabot. A request from "
        "one of them is taken to come from the client its X-Forwarded-For names (the dashboard's login throttle "
        "counts per client address); from any other peer X-Forwarded-For is ignored. Empty: the peer is the "
        "client."))

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"expected IP addresses or networks such as 127.0.0.1 or 10.0.0.0/8, "
                                 f"not {item!r}") from None
        return [item.strip() for item in value]

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value.rstrip("/") if value else value


class TwilioConfig(_Section):
    """WhatsApp through Twilio; off while account_sid or auth_token is missing."""

    account_sid: str | None = Field(default=None, description=(
        "Twilio account SID (AC...). WhatsApp is on when account_sid, auth_token and whatsapp_from are set."))
    auth_token: SecretStr | None = Field(default=None, description=(
        "Twilio auth token: it authenticates the REST calls and checks every webhook's X-Twilio-Signature. "
        "Set alone, it turns on the outage line's voice webhook."))
    whatsapp_from: str | None = Field(default=None, description="The WhatsApp sender, e.g. whatsapp:+31634890878.")
    templates: dict[str, str] = Field(default={}, description=(
        "Approved WhatsApp templates (ContentSid) for messages outside the 24-hour customer-service window, by "
        "purpose (accepted, reply, clarify, ...) with default for the rest; variables {{1}} the ticket reference, "
        "{{2}} the text. Without one, such a message is handed to staff."))
    oncall_number: str | None = Field(default=None, description=(
        "The on-call phone a caller to the outage line (POST /webhooks/twilio/voice) is put through to after "
        "the spoken answer, stored as E.164; unset, the call ends after the answer."))
    max_media_bytes: int = Field(default=20 * 1024 * 1024, ge=1, description=(
        "The largest WhatsApp media (photo, document) slabot downloads, in bytes; a larger one is not stored and "
        "noted on its message, which is kept. Media are fetched with the account's credentials from Twilio's "
        "API host over https only."))
    api_base_url: str | None = Field(default=None, description="Tests only: a local stand-in of Twilio's REST API.")

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

    imap_host: str | None = Field(default=None, description=(
        "IMAP server of the support mailbox; slabot run reads it when imap_host, imap_user and imap_password "
        "are set."))
    imap_port: int = Field(default=993, ge=1, le=65535, description="IMAP port: 993 with tls, 143 with starttls.")
    imap_user: str | None = Field(default=None, description="IMAP login, e.g. support@example.nl.")
    imap_password: SecretStr | None = Field(default=None, description="IMAP password.")
    imap_folder: str = Field(default="INBOX", description=(
        "The mailbox folder new mail is read from, named as a mail client shows it (a name such as "
        "\"Klanten/Café\" is sent in IMAP's modified UTF-7); a subfolder with the server's separator."))
    smtp_host: str | None = Field(default=None, description=(
        "SMTP server for slabot's mail; replies are sent when smtp_host and from_address are set."))
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP port: 587 with starttls, 465 with tls.")
    smtp_user: str | None = Field(default=None, description="SMTP login; unset, slabot sends without logging in.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    from_address: str | None = Field(default=None, description=(
        "The address slabot's mail comes from; its Message-IDs are on this address's domain, and mail from it "
        "coming back in is dropped."))
    from_name: str | None = Field(default=None, description=(
        "The display name on slabot's mail, e.g. Mailcampaigns support."))
    imap_security: Literal["tls", "starttls", "none"] = Field(default="tls", description=(
        "tls (implicit TLS, port 993), starttls (port 143) or none (no encryption: a server on the same "
        "machine only)."))
    smtp_security: Literal["starttls", "tls", "none"] = Field(default="starttls", description=(
        "starttls (port 587), tls (implicit TLS, port 465) or none (no encryption: a server on the same "
        "machine only)."))
    imap_move_to: str | None = Field(default=None, description=(
        "Folder a mail is moved to once it is committed (created when missing), named as a mail client shows "
        "it; unset, it stays where it is, marked seen."))
    imap_poll_seconds: int = Field(default=60, ge=5, le=3600, description=(
        "Seconds between two looks at the mailbox when the server has no IDLE."))
    auto_replies_per_hour: int = Field(default=5, ge=0, description=(
        "At most this many automatic replies to one address per hour (a mail loop ends there); 0: no cap."))
    max_message_bytes: int = Field(default=25 * 1024 * 1024, ge=1024, description=(
        "The largest mail slabot takes in, in bytes (IMAP, slabot ingest email, a folder import). A larger one "
        "is kept aside for staff with its headers only (slabot mail kept; over IMAP it stays in the mailbox) "
        "and its sender gets a polite reply, in Dutch and English, that names the limit."))
    acknowledge_max_age_hours: float = Field(default=24, ge=0, description=(
        "Mail older than this (a first start on a full mailbox, an imported archive) is stored without "
        "writing to anyone."))

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

    token: SecretStr | None = Field(default=None, description=(
        "The bot's token from @BotFather. The staff chat is on when token and staff_chat_id are set."))
    staff_chat_id: int | None = Field(default=None, description=(
        "Chat id of the staff group (negative, -100... for a supergroup): new tickets, reminders and billing "
        "notices are posted there."))
    staff_user_ids: list[int] = Field(default=[], description=(
        "Telegram user ids allowed to act; everyone else is refused, so an empty list refuses everyone."))
    oncall_chat_id: int | None = Field(default=None, description=(
        "Chat where critical incidents page the on-call engineer; unset, the staff chat."))
    team_lead: str | None = Field(default=None, description=(
        "Telegram username (without @) named when a first-response deadline is breached."))
    webhook_url: str | None = Field(default=None, description=(
        "The public https URL Telegram posts updates to, reaching slabot's POST /webhooks/telegram (Telegram "
        "posts to ports 443, 80, 88 and 8443 only); unset, updates come by long polling."))
    webhook_secret: SecretStr | None = Field(default=None, validate_default=True, description=(
        "The secret Telegram sends with every update (X-Telegram-Bot-Api-Secret-Token): 1-256 characters "
        "A-Z a-z 0-9 _ -; required with webhook_url."))
    api_base_url: str | None = Field(default=None, description="Tests only: a local stand-in of the Bot API.")

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

    file: str | None = Field(default=None, description=(
        "An accounts file (TOML or CSV) imported on start; a relative path is taken from the config file's "
        "folder."))


class BillingConfig(_Section):
    """Invoices (R21): what they say about the desk, and when slabot looks for monthly invoices to issue."""

    invoice_lines: list[str] = Field(default=[], description=(
        "Lines under the desk's name on every invoice: address, chamber of commerce and VAT numbers, bank "
        "account, e.g. [\"Voorbeeldstraat 1, 1234 AB Utrecht\", \"KvK 12345678\", \"IBAN NL00BANK0123456789\"]."))
    check_minutes: float = Field(default=60, gt=0, le=24 * 60, description=(
        "How often slabot run looks for monthly invoices that are due (each goes out on the first working day "
        "after its month, once)."))


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
        # the users as given when they failed their own checks (every problem is reported in one pass)
        raw = (info.context or {}).get("raw", {}).get("dashboard", {})
        users = info.data.get("users") if "users" in info.data else (raw.get("users") if isinstance(raw, dict)
                                                                     else None)
        if value is None and users:
            raise ValueError("expected a secret_key with users: at least 32 characters "
                             "(`slabot dashboard secret-key` prints one)")
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("expected at least 32 characters (`slabot dashboard secret-key` prints one)")
        return value

    @property
    def configured(self) -> bool:
        return bool(self.users) and self.secret_key is not None


WebhookEvent = Literal["ticket.created", "message.created", "ticket.resolved", "sla.breached"]
WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = ("ticket.created", "message.created", "ticket.resolved", "sla.breached")


class ApiConfig(_Section):
    """The platform intake API (``/api/v1/``): a host product files requests for its users with a bearer key
    made by ``slabot api-keys create``."""

    requests_per_minute: int = Field(default=600, ge=1, description=(
        "Requests one API key may make per minute; more are answered 429 with Retry-After."))


class WebhookConfig(_Section):
    """An endpoint that hears of changes: each event is POSTed as JSON, signed with the secret."""

    name: str | None = Field(default=None, min_length=1, max_length=100, description=(
        "The endpoint's name (`slabot webhooks test NAME`); unset, the URL's host name."))
    url: str = Field(description="Where the events are POSTed, an http:// or https:// URL.")
    secret: SecretStr = Field(description=(
        "The key of the X-Slabot-Signature header (sha256=HMAC-SHA256 of the raw body), at least 16 characters."))
    events: list[WebhookEvent] = Field(
        default=list(WEBHOOK_EVENTS), min_length=1, description=(
            "The events sent there: ticket.created, message.created, ticket.resolved, sla.breached. An endpoint "
            "with message.created takes the staff's replies on platform tickets instead of e-mail."))

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("expected at least 16 characters")
        return value

    @property
    def endpoint(self) -> str:
        """The name events are queued under: ``name``, else the URL's host."""
        return self.name or (urlsplit(self.url).hostname or self.url)


class PrivacyConfig(_Section):
    """Personal data (AVG/GDPR): how long raw mail and media are kept; ``slabot privacy`` exports and erases."""

    keep_raw_days: int | None = Field(default=None, ge=1, description=(
        "Raw mail, media (inbound attachments) and mail kept aside are deleted this many days after they "
        "arrived, by a daily job of slabot run; the ticket and its message texts stay. Unset: kept."))


class SlabotConfig(_Section):
    """The whole configuration."""

    preset: str = Field(default="mailcampaigns", description=(
        "The SLA preset: mailcampaigns, paynl, or the path of a preset file of the same shape (relative to the "
        "config file)."))
    language: Literal["nl", "en"] = Field(default="nl", description=(
        "Language of the texts for a contact without one of their own, and of the staff chat's announcements "
        "and reminders."))
    database: DatabaseConfig = DatabaseConfig()
    http: HttpConfig = HttpConfig()
    twilio: TwilioConfig = TwilioConfig()
    email: EmailConfig = EmailConfig()
    telegram: TelegramConfig = TelegramConfig()
    accounts: AccountsConfig = AccountsConfig()
    dashboard: DashboardConfig = DashboardConfig()
    billing: BillingConfig = BillingConfig()
    api: ApiConfig = ApiConfig()
    webhooks: list[WebhookConfig] = Field(default=[], description=(
        "Outgoing webhooks, as [[webhooks]] tables with url, secret and events (and optionally name)."))
    privacy: PrivacyConfig = PrivacyConfig()

    @field_validator("webhooks")
    @classmethod
    def _webhooks(cls, value: list[WebhookConfig]) -> list[WebhookConfig]:
        names = [hook.endpoint for hook in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"each webhook name once (set name where two share a host); named twice: "
                             f"{', '.join(twice)}")
        return value


SECRET_KEYS = ("twilio.auth_token", "email.imap_password", "email.smtp_password", "telegram.token",
               "telegram.webhook_secret", "dashboard.secret_key")


@dataclass(frozen=True)
class LoadedConfig:
    """The validated config, where it came from, and the preset it names."""

    config: SlabotConfig
    source: str  # a path, or "embedded defaults"
    preset: Preset
    from_env: tuple[str, ...]


def env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """``data`` with every ``SLABOT_SECTION_KEY`` variable of ``environ`` laid over it, and the variables used."""
    merged = {key: (dict(value) if isinstance(value, dict) else value) for key, value in data.items()}
    used: list[str] = []
    for section, field in SlabotConfig.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):  # a top-level key: preset, language
            name = f"{ENV_PREFIX}{section.upper()}"
            if name in environ:
                merged[section] = environ[name]
                used.append(name)
            continue
        for key in model.model_fields:
            name = f"{ENV_PREFIX}{section.upper()}_{key.upper()}"
            if name in environ:
                value: Any = environ[name]
                if key in _LIST_KEYS:
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
    merged, used = env_overrides(data, env)
    base_dir = chosen.parent if chosen is not None else None
    try:
        config = SlabotConfig.model_validate(merged, context={"raw": merged})
    except ValidationError as exc:
        problems = list(describe_validation_error(source, SlabotConfig, exc).problems)
        named = merged.get("preset", SlabotConfig.model_fields["preset"].default)
        if isinstance(named, str):  # the preset's problems in the same pass
            problems += _preset_problems(source, named, base_dir)
        raise ConfigError(problems) from None
    try:
        preset = load_preset(config.preset, base_dir)
    except ConfigError as exc:
        raise ConfigError([f"{source}: preset: {p}" for p in exc.problems]) from None
    return LoadedConfig(config, source, preset, tuple(used))


def _preset_problems(source: str, name: str, base_dir: Path | None) -> list[str]:
    """What is wrong with the preset ``name`` (a shipped name or a file), one line each; empty when it loads."""
    try:
        load_preset(name, base_dir)
    except ConfigError as exc:
        return [f"{source}: preset: {p}" for p in exc.problems]
    return []


_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@]*:)[^?#]*(@)")  # user:password@, to the last @
# in free text: a URL's user:password@ (a password with a space, slash or @ is masked by its value)
_TEXT_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)[^\s/@]+(@)")
# a URL query parameter that carries a secret: ?password=, &sslpassword=, &auth_token=, &api_key=, ...
_SECRET_PARAM = re.compile(r"([?&;][^=&;#\s]*(?:pass|pwd|secret|token|key|auth)[^=&;#\s]*=)[^&;#\s'\"`]+",
                           re.IGNORECASE)
MASK = "***"
MIN_SECRET = 4  # a 1-3 character "secret" would blank ordinary words (it is still masked in a URL)


def shown_url(url: str) -> str:
    """A URL fit for logs and messages: the password (``user:password@`` or ``?password=``) as ``***``."""
    return _SECRET_PARAM.sub(rf"\1{MASK}", _URL_PASSWORD.sub(rf"\1{MASK}\2", url))


def _url_passwords(url: str) -> list[str]:
    """The passwords a URL carries, as written: its ``user:password@`` and its secret query parameters."""
    found = [m.group(0)[len(m.group(1)):-1] for m in [_URL_PASSWORD.match(url)] if m]
    found += [m.group(0)[len(m.group(1)):] for m in _SECRET_PARAM.finditer(url)]
    return found


def secret_values(config: SlabotConfig) -> list[str]:
    """Every configured secret value, and the database URL when it carries a password."""
    values = []
    for dotted in SECRET_KEYS:
        section, key = dotted.split(".")
        secret = getattr(getattr(config, section), key, None)
        if secret is not None and secret.get_secret_value():
            values.append(secret.get_secret_value())
    url = config.database.url
    passwords = _url_passwords(url)
    if passwords:
        values += [url, *passwords]
    return values


class Masker:
    """Every secret in a text replaced by ``***``, whatever its place: as written, URL-encoded or URL-decoded,
    in a URL's path, user:password@ or query. A URL among the secrets shows as :func:`shown_url` would show
    it; the password of any URL in the text is masked too, configured or not.

    One masker is made from the config (:meth:`of`) and applied where slabot writes: the logs
    (:class:`bot.logs.SecretFilter`), ``/healthz``, the command line's errors.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        shown: dict[str, str] = {}
        for secret in secrets:
            for form in {secret, unquote(secret), unquote_plus(secret), quote(unquote(secret), safe=""),
                         quote_plus(unquote(secret))}:
                if len(form) >= MIN_SECRET:
                    shown[form] = shown_url(form) if "://" in form else MASK
        self._shown = shown
        ordered = sorted(shown, key=len, reverse=True)  # a longer secret first: none is half-replaced
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    @classmethod
    def of(cls, config: SlabotConfig) -> Masker:
        return cls(secret_values(config))

    def __call__(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(lambda m: self._shown[m.group(0)], text)
        return _SECRET_PARAM.sub(rf"\1{MASK}", _TEXT_URL_PASSWORD.sub(rf"\1{MASK}\2", text))


def database_problem(url: str, exc: BaseException) -> str:
    """A database failure as one line: which database (its password masked), what failed, what to check."""
    what, check = describe_failure(exc)
    return f"database {shown_url(url)}: {what}; {check}"


def masked(config: SlabotConfig) -> dict[str, Any]:
    """The config as plain data with every secret replaced by ``"***"`` (or null when unset)."""
    data = config.model_dump(mode="json")
    data["database"]["url"] = shown_url(data["database"]["url"])
    for dotted in SECRET_KEYS:
        section, key = dotted.split(".")
        if data[section].get(key) is not None:
            data[section][key] = MASK
    return data
