"""Leases: a job that one worker at a time does when several share the database.

Several ``slabot run`` processes on one PostgreSQL database share most work
through claims on rows (the outbox, reminders). A few jobs must run in one
worker only: the staff chat's Telegram poller and its rounds (announcements,
pages, the weekly summary), the reader of a mailbox. Each is a row of
``leases``: its name, its holder and when the hold expires. A worker takes a
lease that is free or expired, renews its own well before it expires, and gives
it up when it stops; a worker that dies (kill -9) holds it no longer than its
expiry, after which another takes it over. Time is the database's clock, the
one clock every worker shares, as seconds since the epoch. One statement takes
or renews (``INSERT ... ON CONFLICT DO UPDATE ... WHERE``): on PostgreSQL it
locks the row, so of two workers at once exactly one wins.
"""

from __future__ import annotations

from storage.direct import Direct

_NOW = {
    "postgresql": "extract(epoch from clock_timestamp())::double precision",
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}
_TAKE = ("INSERT INTO leases (name, holder, expires_at) VALUES (:name, :holder, {now} + :seconds) "
         "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
         "WHERE leases.holder = excluded.holder OR leases.expires_at < {now} RETURNING holder")


def _now(direct: Direct) -> str:
    return _NOW.get(direct.dialect.name, _NOW["postgresql"])


def take_lease(direct: Direct, name: str, holder: str, seconds: float) -> bool:
    """Take the lease ``name`` for ``holder`` for ``seconds``, or renew it when ``holder`` has it; False when
    another worker holds it and it has not expired."""
    return direct.one(_TAKE.format(now=_now(direct)), {"name": name, "holder": holder, "seconds": seconds}) is not None


def release_lease(direct: Direct, name: str, holder: str) -> bool:
    """Give the lease ``name`` up, if ``holder`` has it (another worker may take it at once); True when it had."""
    return int(direct.execute("DELETE FROM leases WHERE name = :name AND holder = :holder",
                              {"name": name, "holder": holder}).rowcount) == 1


def lease_holder(direct: Direct, name: str) -> str | None:
    """Who holds the lease ``name`` now (None: free or expired)."""
    found = direct.scalar(f"SELECT holder FROM leases WHERE name = :name AND expires_at >= {_now(direct)}",
                          {"name": name})
    return None if found is None else str(found)


__all__ = ["lease_holder", "release_lease", "take_lease"]
