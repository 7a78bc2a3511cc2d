"""Sender identities in one normal form: e-mail addresses in lower case, phone numbers in E.164."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.errors import InvalidHeaderDefect, MessageError
from email.header import decode_header
from enum import StrEnum
from functools import lru_cache

import phonenumbers


class IdentityKind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"


class IdentityError(ValueError):
    """A value that is not a usable e-mail address or phone number."""


class AmbiguousAddressError(IdentityError):
    """An address field that holds more than one address, or cannot be read as exactly one."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A normalised e-mail address or E.164 phone number."""

    kind: IdentityKind
    value: str

    def __str__(self) -> str:
        return self.value


_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]+")  # line breaks and other control characters in a display name
_HEADER_ERRORS = (MessageError, ValueError, LookupError, TypeError, AttributeError, AssertionError, IndexError)


@lru_cache(maxsize=8192)
def parse_mailbox(text: str) -> tuple[str | None, str]:
    """The one mailbox in an address field: (display name or None, addr-spec as written).

    The address is the addr-spec only, never the display name: ``c3@klant3.example <attacker@evil.example>``
    is attacker@evil.example. The stdlib's header registry (``policy.default``) reads the field; where it
    finds the field invalid (an unquoted ``@`` or comma in the display name, a line break hidden in an
    encoded word), the address is the one ``<...>`` outside quotes and comments. A display name keeps no
    line break or control character. Raises :class:`AmbiguousAddressError` for a field that holds more than
    one address or cannot be read as exactly one, :class:`IdentityError` for one without any address.
    """
    value = "".join(text.splitlines()).strip()
    try:
        header = policy.default.header_factory("To", value)
        readable = not any(isinstance(d, InvalidHeaderDefect) for d in header.defects)
        found = [(str(a.display_name), str(a.addr_spec)) for a in header.addresses] if readable else []
    except _HEADER_ERRORS:  # e.g. a display name that decodes to a line break
        readable, found = False, []
    if not readable:
        found = _angle_addresses(value)
    found = [(name, spec.strip()) for name, spec in found if spec.strip()]
    if len(found) > 1:
        raise AmbiguousAddressError(f"{_brief(text)!r} holds {len(found)} addresses")
    if not found:
        if not readable and "@" in value:
            raise AmbiguousAddressError(f"{_brief(text)!r} cannot be read as one address")
        raise IdentityError(f"{_brief(text)!r} is not an e-mail address")
    name, spec = found[0]
    name = _CONTROL.sub(" ", name).strip().strip('"').strip()
    return name or None, spec


def _angle_addresses(value: str) -> list[tuple[str, str]]:
    """Each ``<addr-spec>`` outside quoted strings and comments, with the decoded text before it as its name.

    Text after the last ``>`` that holds an ``@`` counts as one more address (the field is ambiguous).
    """
    found: list[tuple[str, str]] = []
    quoted = escaped = False
    depth = 0  # comment nesting
    opened: int | None = None
    end = 0  # where the text before the next address begins
    for i, char in enumerate(value):
        if escaped:
            escaped = False
        elif char == "\\" and (quoted or depth):
            escaped = True
        elif quoted:
            quoted = char != '"'
        elif depth:
            depth += {"(": 1, ")": -1}.get(char, 0)
        elif char == '"':
            quoted = True
        elif char == "(":
            depth = 1
        elif char == "<":
            opened = i
        elif char == ">" and opened is not None:
            found.append((_decoded(value[end:opened]), value[opened + 1:i]))
            end, opened = i + 1, None
    if found and "@" in re.sub(r"\([^()]*\)", "", value[end:]):
        found.append(("", value[end:]))
    return found


def _decoded(text: str) -> str:
    """RFC 2047 encoded words decoded (undecodable bytes replaced); the text as it is when they are broken."""
    try:
        return "".join(chunk if isinstance(chunk, str) else chunk.decode(charset or "ascii", errors="replace")
                       for chunk, charset in decode_header(text.strip()))
    except (*_HEADER_ERRORS, UnicodeError):
        return text


def _brief(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def normalise_email(text: str) -> str:
    """``Piet <PIET@Bakkerij-Jansen.nl>`` -> ``piet@bakkerij-jansen.nl``; the addr-spec, never the display name."""
    address = parse_mailbox(text)[1].lower()
    local, _, domain = address.rpartition("@")
    if not local or not domain or "." not in domain or " " in address:
        raise IdentityError(f"{_brief(text)!r} is not an e-mail address")
    return address


def normalise_phone(text: str, region: str = "NL") -> str:
    """``06 34 89 08 78``, ``+31 6 34890878``, ``whatsapp:+31634890878`` -> ``+31634890878``."""
    raw = text.strip()
    for prefix in ("whatsapp:", "tel:", "sms:"):
        if raw.lower().startswith(prefix):
            raw = raw[len(prefix):]
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise IdentityError(f"{text!r} is not a phone number: {str(exc).split(') ', 1)[-1]}") from None
    if not phonenumbers.is_possible_number(number):
        raise IdentityError(f"{text!r} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email_identity(text: str) -> Identity:
    return Identity(IdentityKind.EMAIL, normalise_email(text))


def phone_identity(text: str, region: str = "NL") -> Identity:
    return Identity(IdentityKind.PHONE, normalise_phone(text, region))
