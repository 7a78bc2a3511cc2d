"""Live pages: what the dashboard's script polls to refresh the queue and a ticket without a reload, and who else
has the same ticket open (and whether they are typing).

The script asks ``GET /dashboard/api/live?ref=REF&typing=0|1`` every few seconds; the answer carries a stamp
that changes whenever the ticket (or, without ``ref``, any ticket) changes
(:meth:`storage.search.TicketSearch.change_stamp`) and the other staff members on that ticket. Presence is kept in
this process's memory: a staff member is there while their page keeps asking (``PRESENT_FOR``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

PRESENT_FOR = timedelta(seconds=20)  # a page that has not asked for this long has been closed
POLL_SECONDS = 4  # how often the script asks


@dataclass(frozen=True)
class Presence:
    name: str
    typing: bool
    seen: datetime


class PresenceBoard:
    """Who has which ticket open (thread-safe; in memory)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_ref: dict[str, dict[str, Presence]] = {}

    def here(self, ref: str, name: str, typing: bool, now: datetime) -> list[Presence]:
        """Note that ``name`` has ``ref`` open (typing or not) at ``now``; the others there, by name."""
        with self._lock:
            people = self._by_ref.setdefault(ref, {})
            people[name] = Presence(name, typing, now)
            for other, seen in list(people.items()):
                if now - seen.seen > PRESENT_FOR:
                    del people[other]
            return sorted((p for p in people.values() if p.name != name), key=lambda p: p.name)


__all__ = ["POLL_SECONDS", "PRESENT_FOR", "Presence", "PresenceBoard"]
