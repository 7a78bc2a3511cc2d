"""Sender identities in one normal form: e-mail addresses in lower case, phone numbers in E.164."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr
from enum import StrEnum

import phonenumbers


class IdentityKind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"


class IdentityError(ValueError):
    """A value that is not a usable e-mail address or phone number."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A normalised e-mail address or E.164 phone number."""

    kind: IdentityKind
    value: str

    def __str__(self) -> str:
        return self.value


def normalise_email(text: str) -> str:
    """``Piet <PIET@Bakkerij-Jansen.nl>`` -> ``piet@bakkerij-jansen.nl``."""
    _, address = parseaddr(text.strip())
    address = address.strip().strip("<>").lower()
    local, _, domain = address.rpartition("@")
    if not local or not domain or "." not in domain or " " in address:
        raise IdentityError(f"{text!r} is not an e-mail address")
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
