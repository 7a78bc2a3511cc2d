"""What the staff chat's texts share: amounts of money, who a ticket is about, a message's excerpt."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from bot.i18n import Language
from bot.intake import IntakePipeline
from bot.texts import money_text
from storage.records import TicketRecord

EXCERPT_CHARS = 300  # of the first message, in an announcement or a page


def money_in(pipeline: IntakePipeline | None, language: Language) -> Callable[[Decimal | str], str]:
    """Amounts written out in ``language``, in the preset's billing currency (EUR without billing)."""
    billing = pipeline.preset.billing if pipeline is not None else None
    currency = billing.currency if billing is not None else "EUR"
    return lambda amount: money_text(Decimal(amount), language, currency)


def who(*names: str | None) -> str:
    """Who a ticket is about, from the names known: ``Bakkerij Jansen, ondersteuning``; ``?`` for none."""
    return ", ".join(x for x in names if x) or "?"


def first_words(ticket: TicketRecord, message_id: int | None = None) -> str:
    """The customer's first message (or the message ``message_id``) on one line (the subject without one), cut at
    :data:`EXCERPT_CHARS`."""
    first_in = next((msg for msg in ticket.messages if msg.direction == "in"
                     and (message_id is None or msg.id == message_id)), None)
    return " ".join((first_in.text if first_in else ticket.subject or "").split())[:EXCERPT_CHARS]


__all__ = ["first_words", "money_in", "who"]
