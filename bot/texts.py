"""Customer-facing texts: Jinja2 templates per language, with dates and money written out.

The templates ship in ``bot/templates/{nl,en}/``; an operator may point
``[templates] dir`` at a folder of the same shape to change any of them (a
file there wins over the shipped one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from babel.numbers import format_currency
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
)

from bot.i18n import LANGUAGES, Language, format_span, format_when
from sla_engine.billing import RateKind
from sla_engine.calendar import WEEKDAYS, BusinessCalendar
from sla_engine.policy import Channel, Plan, Preset

DAY_NAMES = {
    "nl": dict(zip(WEEKDAYS, ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"))),
    "en": dict(zip(WEEKDAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"))),
}
CHANNEL_NAMES = {
    "nl": {"whatsapp": "WhatsApp", "email": "e-mail", "phone": "telefoon", "platform": "het platform"},
    "en": {"whatsapp": "WhatsApp", "email": "e-mail", "phone": "phone", "platform": "the platform"},
}
WORDS = {
    "nl": {"through": "t/m", "and": "en", "between": "binnen", "closed_holidays": "behalve op feestdagen"},
    "en": {"through": "to", "and": "and", "between": "within", "closed_holidays": "except public holidays"},
}


def language_of(*candidates: str | None, default: Language = "nl") -> Language:
    """The first of ``candidates`` that slabot speaks, else ``default``."""
    for value in candidates:
        if value in LANGUAGES:
            return value
    return default


@lru_cache(maxsize=64)
def opening_hours(calendar: BusinessCalendar, language: Language) -> str:
    """``maandag t/m vrijdag 09:00-17:00`` / ``Monday to Friday 09:00-17:00``."""
    hours = calendar.describe_hours()
    if len(hours) == 7 and all(v == ["00:00-24:00"] for v in hours.values()):
        return "24/7"
    groups: list[tuple[list[str], list[str]]] = []
    for day in WEEKDAYS:
        windows = hours.get(day)
        if windows and groups and groups[-1][1] == windows and WEEKDAYS.index(groups[-1][0][-1]) == WEEKDAYS.index(day) - 1:
            groups[-1][0].append(day)
        elif windows:
            groups.append(([day], windows))
    names, words = DAY_NAMES[language], WORDS[language]
    parts = []
    for days, windows in groups:
        label = names[days[0]] if len(days) == 1 else f"{names[days[0]]} {words['through']} {names[days[-1]]}"
        parts.append(f"{label} {', '.join(windows)}")
    text = "; ".join(parts)
    if calendar.holiday_country:
        text += f", {words['closed_holidays']}"
    return text


@lru_cache(maxsize=256)
def money_text(amount: Decimal, language: Language, currency: str = "EUR") -> str:
    """``€ 130,00`` / ``€130.00``."""
    return format_currency(amount, currency, locale="nl_NL" if language == "nl" else "en_IE")


def channel_list(channels: frozenset[Channel], language: Language) -> str:
    names = [CHANNEL_NAMES[language][c.value] for c in sorted(channels, key=lambda c: c.value)]
    if len(names) == 1:
        return names[0]
    return f"{', '.join(names[:-1])} {WORDS[language]['and']} {names[-1]}"


def resolution_phrase(plan: Plan, earliest: datetime | None, latest: datetime | None, language: Language) -> str | None:
    """``binnen 3 - 4 weken (tussen ... en ...)``."""
    target = plan.resolution
    if target is None or earliest is None or latest is None:
        return None
    high = format_span(target.maximum, language, target.clock.value)
    if target.minimum == target.maximum:  # one target (a matrix cell), not a range
        by = format_when(latest, language)
        return f"binnen {high} (uiterlijk {by})" if language == "nl" else f"within {high} (by {by})"
    low = format_span(target.minimum, language, target.clock.value)
    low_number, high_words = low.split(" ")[0], high
    span = f"{low_number} - {high_words}" if low.split(" ", 1)[1:] == high.split(" ", 1)[1:] else f"{low} - {high}"
    if language == "nl":
        return f"binnen {span} (tussen {format_when(earliest, language)} en {format_when(latest, language)})"
    return f"within {span} (between {format_when(earliest, language)} and {format_when(latest, language)})"


def reply_subject(subject: str | None, ref: str | None, language: Language) -> str:
    """``Re: <subject> [MC-10001]``: the subject of an e-mail reply, with the ticket reference once."""
    base = subject or ("Uw aanvraag" if language == "nl" else "Your request")
    result = base if base.lower().startswith("re:") else f"Re: {base}"
    return f"{result} [{ref}]" if ref and ref not in result else result


def size_text(size: int, language: Language) -> str:
    """``26214400`` -> ``25 MB``, ``32296960`` -> ``30,8 MB`` (nl) or ``30.8 MB`` (en); KB below a megabyte."""
    for unit, factor in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= factor:
            text = f"{size / factor:.1f}".removesuffix(".0")
            return f"{text.replace('.', ',') if language == 'nl' else text} {unit}"
    return f"{size} bytes"


@dataclass(frozen=True)
class Rendered:
    """A text ready to send."""

    purpose: str
    language: Language
    text: str


class Texts:
    """Renders the customer-facing templates."""

    def __init__(self, override_dir: str | Path | None = None) -> None:
        shipped = resources.files("bot").joinpath("templates")
        self._envs: dict[str, Environment] = {}
        for language in LANGUAGES:
            loaders = []
            if override_dir is not None:
                loaders.append(FileSystemLoader(str(Path(override_dir) / language)))
            loaders.append(FileSystemLoader(str(shipped.joinpath(language))))
            self._envs[language] = Environment(
                loader=ChoiceLoader(loaders), undefined=StrictUndefined, autoescape=False,
                keep_trailing_newline=True, trim_blocks=False,
                auto_reload=False,  # read once: an edited template takes effect on the next start
                cache_size=-1,  # ...and kept: a plain dict, no LRU bookkeeping on every include
            )
        self._templates: dict[tuple[str, Language], Template] = {}

    def render(self, purpose: str, language: Language, **values: Any) -> Rendered:
        template = self._templates.get((purpose, language))
        if template is None:
            template = self._templates[(purpose, language)] = self._envs[language].get_template(f"{purpose}.txt")
        text = template.render(**values)
        # collapse the blank lines left by optional blocks
        lines: list[str] = []
        after_blank = True  # the text starts with a line that is not blank (stripped)
        for line in text.strip().splitlines():
            line = line.rstrip()
            if line or not after_blank:
                lines.append(line)
                after_blank = not line
        return Rendered(purpose, language, "\n".join(lines) + "\n")

    @staticmethod
    def rates(preset: Preset, plan: Plan, on: datetime, language: Language) -> dict[str, str] | None:
        """The rates of the day, written out, for plans with paid service."""
        if preset.billing is None or not plan.paid_service:
            return None
        card = preset.billing.rate_on(on.date())
        cur = preset.billing.currency
        return {
            "ad_hoc": money_text(card.rate(RateKind.AD_HOC), language, cur),
            "urgent": money_text(card.urgent, language, cur),
            "punch_card": money_text(card.punch_card, language, cur),
            "minimum_hours": f"{preset.billing.minimum_hours.normalize():f}",
            "punch_card_minimum_hours": f"{preset.billing.punch_card_minimum_hours.normalize():f}",
        }


# the description of an invoice line, as the customer reads it on the invoice and the month's statement (R20, R21):
# one per way the hours are billed (sla_engine.billing.RateKind), and a punch-card block bought
INVOICE_LINE_TEXTS = {
    "nl": {"monthly": "{ref}: {hours} uur uit de vaste maanduren", "punch_card": "{ref}: {hours} uur van de "
           "strippenkaart (blok {block})", "ad_hoc": "{ref}: {hours} uur ad hoc", "urgent": "{ref}: {hours} uur ad hoc "
           "met spoed", "block": "Strippenkaart blok {block}: {hours} uur vooraf"},
    "en": {"monthly": "{ref}: {hours} hours from the fixed monthly hours", "punch_card": "{ref}: {hours} hours from "
           "the punch card (block {block})", "ad_hoc": "{ref}: {hours} hours ad hoc", "urgent": "{ref}: {hours} hours "
           "urgent ad hoc", "block": "Punch card block {block}: {hours} hours prepaid"},
}


# -- the outage line (Twilio Voice): what a caller hears, spoken as one answer (bot.voice) --------------------------

VOICE_TEXTS: dict[Language, dict[str, str]] = {
    "nl": {
        "paged": "U belt met de storingslijn van {company}. Uw melding is vastgelegd en de dienstdoende "
                 "engineer wordt nu opgeroepen.",
        "charge": "Let op: ligt de oorzaak van de storing binnen uw eigen domein, dan kunnen de kosten van de "
                  "storingsdienst in rekening worden gebracht.",
        "through": "U wordt nu doorverbonden.",
        "later": "Wij nemen zo snel mogelijk contact met u op.",
        "not_taken": "U belt met de storingslijn van {company}. Uw oproep is genoteerd, maar kan op deze lijn "
                     "niet als storing worden aangenomen. Neem contact met ons op via WhatsApp of e-mail.",
        "no_line": "U belt met {company}. Wij hebben geen storingsdienst buiten kantoortijden. Uw oproep is "
                   "genoteerd; wij nemen binnen onze openingstijden contact met u op.",
        "hidden": "U belt met {company}. Uw nummer is afgeschermd, zodat wij uw oproep niet kunnen vastleggen. "
                  "Bel opnieuw met zichtbaar nummer, of stuur ons een bericht via WhatsApp of e-mail.",
    },
    "en": {
        "paged": "You have reached the outage line of {company}. Your report is logged and the engineer on "
                 "call is being paged now.",
        "charge": "Please note: if the cause of the outage lies in your own domain, the outage service may be "
                  "charged.",
        "through": "You are being put through now.",
        "later": "We will get back to you as soon as possible.",
        "not_taken": "You have reached the outage line of {company}. Your call is noted, but this line cannot "
                     "take it as an outage. Please contact us on WhatsApp or by e-mail.",
        "no_line": "You have reached {company}. We have no outage service outside office hours. Your call is "
                   "noted; we will get back to you during our opening hours.",
        "hidden": "You have reached {company}. Your number is withheld, so we cannot log your call. Please "
                  "call again with your number shown, or write to us on WhatsApp or by e-mail.",
    },
}
