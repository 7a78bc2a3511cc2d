"""The queue page's search and filters, read from the URL (so a search can be bookmarked) and written back into it
for the pager links."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast
from urllib.parse import urlencode

from storage.search import DueFilter, TicketFilter

FIELDS = ("q", "state", "plan", "channel", "kind", "mine", "due")
STATES = ("open", "waiting", "unverified", "resolved")
CHANNELS = ("email", "whatsapp", "phone", "platform")
KINDS = ("support", "service", "undetermined")
DUE = ("soon", "breached")
MAX_QUERY = 200  # characters of a search


def _choice(value: str | None, choices: tuple[str, ...]) -> str | None:
    return value if value in choices else None


def search_form(query: Mapping[str, str]) -> dict[str, str]:
    """The search fields as given (for the form to show them again)."""
    return {name: (query.get(name) or "")[:MAX_QUERY] for name in FIELDS}


def search_filter(query: Mapping[str, str], staff: str) -> TicketFilter | None:
    """What the URL asks for; None when it asks for nothing (the plain open queue). A value that is not one of
    a filter's choices is no filter."""
    given = search_form(query)
    if not any(given.values()) and not query.get("page"):
        return None
    try:
        page = max(1, min(int(query.get("page") or 1), 10_000))
    except ValueError:
        page = 1
    return TicketFilter(
        text=given["q"].strip(), state=_choice(given["state"], STATES), plan=given["plan"] or None,
        channel=_choice(given["channel"], CHANNELS), kind=_choice(given["kind"], KINDS),
        assignee=staff if given["mine"] else None, due=cast(DueFilter | None, _choice(given["due"], DUE)), page=page)


def page_url(query: Mapping[str, str], page: int) -> str:
    """The query string of the same search at page ``page``."""
    kept = {name: value for name, value in search_form(query).items() if value}
    return "?" + urlencode({**kept, "page": str(page)})


__all__ = ["CHANNELS", "DUE", "KINDS", "STATES", "page_url", "search_filter", "search_form"]
