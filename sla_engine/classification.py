"""Free support or paid service (R18), as an ordered table of rules.

Each :class:`ClassificationRule` states its conditions (a diagnosed root cause,
keywords in the request, the 30-day template window) and the kind it decides.
The first rule whose conditions all hold wins; :func:`classify` returns the
kind together with the rule and the reasons, so the bot can explain itself.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from sla_engine.errors import PolicyError


class Kind(StrEnum):
    """Free support, paid service, or not yet known."""

    SUPPORT = "support"
    SERVICE = "service"
    UNDETERMINED = "undetermined"


class RootCause(StrEnum):
    """What a diagnosis found: a platform bug (free) or a cause outside it (paid)."""

    PLATFORM = "platform"
    OUTSIDE = "outside"


class TemplateWindow(StrEnum):
    """Where a request stands relative to the template window."""

    INSIDE = "inside"
    OUTSIDE = "outside"
    UNKNOWN = "unknown"  # the account has no template-delivery date


@dataclass(frozen=True)
class ClassificationRule:
    """One row of the table: conditions and the kind they decide."""

    name: str
    kind: Kind
    keywords: tuple[str, ...] = ()
    root_cause: RootCause | None = None
    template_window: TemplateWindow | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if not (self.keywords or self.root_cause or self.template_window):
            raise PolicyError(f"classification rule {self.name!r} has no condition")


@dataclass(frozen=True)
class ClassificationInput:
    """What the classifier looks at."""

    text: str
    received_on: date
    templates_delivered: date | None = None
    root_cause: RootCause | None = None


@dataclass(frozen=True)
class Classification:
    """The decision, the rule that made it, and why."""

    kind: Kind
    rule: str
    reasons: tuple[str, ...]


def normalise(text: str) -> str:
    """Lower case, accents removed, whitespace collapsed: the form keywords match on."""
    folded = text.casefold()
    if folded.isascii():  # nothing to decompose
        plain = folded
    else:
        decomposed = unicodedata.normalize("NFKD", folded)
        plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.replace("\u2019", "'").split())


@lru_cache(maxsize=256)
def _keyword_patterns(keywords: tuple[str, ...]) -> tuple[tuple[str, str, re.Pattern[str]], ...]:
    """Each keyword with its normalised form and its whole-word pattern, built once per keyword list."""
    found = []
    for word in keywords:
        plain = normalise(word)
        found.append((word, plain, re.compile(r"(?<!\w)" + re.escape(plain) + r"(?!\w)")))
    return tuple(found)


def find_keyword(text: str, keywords: tuple[str, ...]) -> str | None:
    """The first keyword of the list (as the table orders them) that ``text`` has as a whole word."""
    for word, plain, pattern in _keyword_patterns(keywords):
        # a whole-word match is first of all a substring: the cheap test rules out most keywords
        if plain in text and pattern.search(text):
            return word
    return None


def template_window_state(on: date, delivered: date | None, window: timedelta) -> TemplateWindow:
    """Inside or outside the window counted from the template-delivery date."""
    if delivered is None or on < delivered:
        return TemplateWindow.UNKNOWN  # no delivery date, or not delivered yet: staff decide
    return TemplateWindow.INSIDE if delivered <= on <= delivered + window else TemplateWindow.OUTSIDE


def classify(
    request: ClassificationInput,
    rules: tuple[ClassificationRule, ...],
    *,
    template_window: timedelta = timedelta(days=30),
    default: Kind = Kind.UNDETERMINED,
) -> Classification:
    """Run the table: the first rule whose conditions all hold decides."""
    text = normalise(request.text)
    window = template_window_state(request.received_on, request.templates_delivered, template_window)
    for rule in rules:
        reasons: list[str] = []
        if rule.root_cause is not None:
            if request.root_cause != rule.root_cause:
                continue
            reasons.append(f"root cause recorded as {rule.root_cause.value}")
        if rule.keywords:
            hit = find_keyword(text, rule.keywords)
            if hit is None:
                continue
            reasons.append(f"the request mentions {hit!r}")
        if rule.template_window is not None:
            if window != rule.template_window:
                continue
            if window is TemplateWindow.UNKNOWN and request.templates_delivered is None:
                reasons.append("no template-delivery date is known for the account")
            elif window is TemplateWindow.UNKNOWN:
                reasons.append(f"the templates are delivered only on {request.templates_delivered}")
            else:
                days = (request.received_on - request.templates_delivered).days  # type: ignore[operator]
                reasons.append(
                    f"templates delivered {request.templates_delivered}, {days} days before "
                    f"(window {template_window.days} days: {window.value})"
                )
        if rule.reason:
            reasons.append(rule.reason)
        return Classification(rule.kind, rule.name, tuple(reasons))
    return Classification(default, "default", ("no rule matched",))
