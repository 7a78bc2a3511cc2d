"""The dashboard's staff sessions in the database: created at login, looked up on every request, revoked.

Only a hash of the cookie's token is stored (the caller hashes it), so a copy of the database opens no session.
A session ends when it expires, when it is revoked (logout, ``slabot dashboard logout-all``), or when the login's
password changed since (its ``password_tag`` no longer matches; the caller compares and revokes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from storage import models as m
from storage.repositories import Repository

_TABLE = m.DashboardSession.__table__


@dataclass(frozen=True)
class DashboardSessionRecord:
    """A live session: whose, under which password, until when."""

    user_name: str
    password_tag: str
    expires_at: datetime


class DashboardSessionRepository(Repository):
    """Staff sessions of the dashboard, by the hash of their token."""

    def create(self, token_hash: str, user_name: str, password_tag: str, now: datetime, expires_at: datetime) -> None:
        """A new session; sessions that expired by ``now`` are cleared away at the same time."""
        d = self.direct
        d.execute("DELETE FROM dashboard_sessions WHERE expires_at <= :now",
                  {"now": d.value(_TABLE, "expires_at", now)})
        d.insert(_TABLE, {"token_hash": token_hash, "user_name": user_name, "password_tag": password_tag,
                          "created_at": now, "expires_at": expires_at})

    def find(self, token_hash: str, now: datetime) -> DashboardSessionRecord | None:
        """The session with this token hash, unless it has expired or was revoked."""
        d = self.direct
        row = d.one("SELECT user_name, password_tag, expires_at FROM dashboard_sessions "
                    "WHERE token_hash = :token AND expires_at > :now",
                    {"token": token_hash, "now": d.value(_TABLE, "expires_at", now)})
        if row is None:
            return None
        values = d.decode(_TABLE, ("user_name", "password_tag", "expires_at"), row)
        return DashboardSessionRecord(**values)

    def revoke(self, token_hash: str) -> bool:
        """End one session; False when there was none."""
        return int(self.direct.execute("DELETE FROM dashboard_sessions WHERE token_hash = :token",
                                       {"token": token_hash}).rowcount) > 0

    def revoke_all(self, user_name: str | None = None) -> int:
        """End every session, or every session of one login (casefolded name); how many."""
        if user_name is None:
            return int(self.direct.execute("DELETE FROM dashboard_sessions").rowcount)
        return int(self.direct.execute("DELETE FROM dashboard_sessions WHERE user_name = :user",
                                       {"user": user_name}).rowcount)
