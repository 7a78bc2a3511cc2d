"""Canned answers: texts staff keep, in Dutch and English, inserted in a reply with the ticket's facts filled in.

Placeholders: ``{contact}`` the ticket's contact person (their first name where known), ``{ref}`` the ticket
reference, ``{due}`` its current response deadline as a local date and time, ``{staff}`` the staff member who
inserts it. Any other brace is left as written. The answer is taken in the language of the ticket's contact
(their account's, else Dutch), else in the other language. The dashboard (the reply box), the staff chat
(``/canned REF NAME``) and the command line (``slabot canned list|add|remove``) share this module.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from bot.desk import DeskError
from bot.i18n import LANGUAGES, Language, format_when
from channels.messages import utc_now
from storage.canned import CannedRecord, CannedRepository
from storage.database import Database, Session
from storage.records import TicketRecord
from storage.repositories import AccountRepository, TicketRepository

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
MAX_TEXT = 4000
PLACEHOLDERS = ("contact", "ref", "due", "staff")


def fill(text: str, ticket: TicketRecord, staff: str, language: Language) -> str:
    """``text`` with the placeholders filled from ``ticket``."""
    values = {
        "contact": ticket.contact or "",
        "ref": ticket.ref,
        "due": format_when(ticket.current_due, language) if ticket.current_due else "",
        "staff": staff,
    }
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def ticket_language(s: Session, ticket: TicketRecord) -> Language:
    """The language of the ticket's contact person (else their account's, else Dutch)."""
    accounts = AccountRepository(s)
    found = accounts.contact(ticket.contact_id).language if ticket.contact_id else None
    if found is None and ticket.account_id is not None:
        found = accounts.get(ticket.account_id).language
    return "en" if found == "en" else "nl"


class CannedAnswers:
    """Keep, list and insert canned answers."""

    def __init__(self, db: Database, now: Callable[[], datetime] = utc_now) -> None:
        self.db = db
        self.now = now

    def all(self) -> list[CannedRecord]:
        return self.db.run(lambda s: CannedRepository(s).all())

    def names(self) -> list[str]:
        return sorted({answer.name for answer in self.all()})

    def add(self, name: str, language: str, text: str, staff: str) -> bool:
        """Store an answer (a new one or a new text); True when it is new. Raises DeskError for a bad name,
        language or text."""
        name = name.strip().lower()
        if not NAME.fullmatch(name):
            raise DeskError(f"a name is 1-40 letters, digits, - or _ (not {name!r})")
        if language not in LANGUAGES:
            raise DeskError(f"the language is {' or '.join(LANGUAGES)}, not {language!r}")
        text = text.strip()
        if not text or len(text) > MAX_TEXT:
            raise DeskError(f"the text is 1-{MAX_TEXT} characters")
        return self.db.run(lambda s: CannedRepository(s).put(name, language, text, staff, self.now()))

    def remove(self, name: str, language: str | None = None) -> int:
        return self.db.run(lambda s: CannedRepository(s).remove(name.strip().lower(), language))

    def for_ticket(self, name: str, ref: str, staff: str) -> str:
        """The answer ``name`` filled for the ticket ``ref``; DeskError when either is unknown."""
        def work(s: Session) -> str:
            ticket = TicketRepository(s).by_ref(ref)
            if ticket is None:
                raise DeskError(f"no ticket {ref}")
            language = ticket_language(s, ticket)
            repo = CannedRepository(s)
            other: Language = "en" if language == "nl" else "nl"
            answer = repo.get(name.strip().lower(), language) or repo.get(name.strip().lower(), other)
            if answer is None:
                raise DeskError(f"no canned answer {name!r}")
            return fill(answer.text, ticket, staff, language)

        return self.db.run(work)


__all__ = ["PLACEHOLDERS", "CannedAnswers", "fill", "ticket_language"]
