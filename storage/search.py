"""Finding tickets: full text over references, subjects, sender addresses and message texts, customer and contact
names, e-mail addresses and phone numbers; filters; one page at a time.

How it works
------------
One repository method, :meth:`TicketSearch.find`, on two engines:

- SQLite: two FTS5 tables on the rows of ``tickets`` and ``messages`` (external content, kept by triggers that
  migration 0017 creates; :func:`sqlite_search_ddl`), queried with the words of the query, the last one as a prefix;
- PostgreSQL: GIN indexes on ``to_tsvector('simple', ...)`` of the same texts, queried with ``to_tsquery``
  (the last word as a prefix: it may be unfinished).

The messages searched are the inbound ones and those a person wrote, not slabot's own automatic ones
(:data:`SEARCHED_MESSAGES`, since migration 0021).

Names, e-mail addresses and phone numbers of accounts and contacts are matched as a part of the text
(``LIKE``): those tables are small. A ticket matches when all the words are in its reference, subject and
sender address, or all in one of its messages, or the query is part of its customer's or contact's name or
address. Filters narrow it down (state, plan, channel, kind, assignee, due state); results come in queue order
(R15's rank, then the current response deadline), a page at a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from storage import models as m
from storage.records import OPEN_STATES, TicketRecord, TicketState
from storage.repositories import Repository, TicketRepository

DueFilter = Literal["soon", "breached"]
PER_PAGE = 50
_WORD = re.compile(r"\w+", re.UNICODE)
_PG_TERM = re.compile(r"[^\w@.+-]+", re.UNICODE)
_PG_TICKET_DOC = ("to_tsvector('simple', coalesce(ref, '') || ' ' || coalesce(subject, '') || ' ' || "
                  "coalesce(thread_key, ''))")
_PG_MESSAGE_DOC = "to_tsvector('simple', coalesce(text, ''))"


# the messages searched: every inbound one, and those a person wrote (staff replies, call notes). slabot's own
# automatic messages (acknowledgements, notices, invoices' covering mails) are not: their words are the templates',
# the same in every ticket, and the specific ones (reference, name) are found through the ticket and its contact.
# Their texts are long: indexing them was most of what the search cost a new ticket's intake (migration 0021).
def _searched(row: str = "") -> str:
    """The condition on a message (of the trigger's ``row``, ``new`` or ``old``) that it is searched."""
    of = f"{row}." if row else ""
    return f"({of}direction = 'in' OR NOT {of}auto)"


SEARCHED_MESSAGES = _searched()


def _sqlite_triggers(table: str, source: str, columns: tuple[str, ...], searched: bool) -> list[str]:
    """The triggers that keep ``table`` (FTS5, external content) in step with ``source``; with ``searched`` only for
    the messages :data:`SEARCHED_MESSAGES` names (an FTS5 row may be deleted only as it was inserted)."""
    cols = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    new_if = f" WHERE {_searched('new')}" if searched else ""
    old_if = f" WHERE {_searched('old')}" if searched else ""
    watched = f"{cols}, direction, auto" if searched else cols
    return [
        (f"CREATE TRIGGER {table}_insert AFTER INSERT ON {source} BEGIN "
         f"INSERT INTO {table}(rowid, {cols}) SELECT new.id, {new}{new_if}; END"),
        (f"CREATE TRIGGER {table}_delete AFTER DELETE ON {source} BEGIN "
         f"INSERT INTO {table}({table}, rowid, {cols}) SELECT 'delete', old.id, {old}{old_if}; END"),
        (f"CREATE TRIGGER {table}_update AFTER UPDATE OF {watched} ON {source} BEGIN "
         f"INSERT INTO {table}({table}, rowid, {cols}) SELECT 'delete', old.id, {old}{old_if}; "
         f"INSERT INTO {table}(rowid, {cols}) SELECT new.id, {new}{new_if}; END"),
    ]


def sqlite_search_ddl(*, every_message: bool = False) -> list[str]:
    """The FTS5 tables, their triggers and their first fill (SQLite). ``every_message``: as migration 0017 made
    them, automatic messages searched too."""
    statements = []
    for table, source, columns in (("search_tickets", "tickets", ("ref", "subject", "thread_key")),
                                   ("search_messages", "messages", ("text",))):
        searched = source == "messages" and not every_message
        statements += [
            (f"CREATE VIRTUAL TABLE {table} USING fts5({', '.join(columns)}, content='{source}', "
             "content_rowid='id', tokenize='unicode61 remove_diacritics 2')"),
            *_sqlite_triggers(table, source, columns, searched),
            f"INSERT INTO {table}({table}) VALUES ('rebuild')",
        ]
        if searched:
            statements.append(_SQLITE_UNINDEX_AUTOMATIC)
    return statements


# what 'rebuild' took of the automatic messages, out of the index again
_SQLITE_UNINDEX_AUTOMATIC = ("INSERT INTO search_messages(search_messages, rowid, text) "
                             f"SELECT 'delete', id, text FROM messages WHERE NOT {SEARCHED_MESSAGES}")


def sqlite_message_search_ddl(*, every_message: bool) -> list[str]:
    """From one way of searching messages to the other (SQLite; migration 0021): the triggers made again, the index
    without the automatic messages or, ``every_message``, with them."""
    drop = [f"DROP TRIGGER IF EXISTS search_messages_{w}" for w in ("insert", "delete", "update")]
    triggers = _sqlite_triggers("search_messages", "messages", ("text",), not every_message)
    fill = ["INSERT INTO search_messages(search_messages) VALUES ('rebuild')"]
    return drop + triggers + fill + ([] if every_message else [_SQLITE_UNINDEX_AUTOMATIC])


def pg_search_ddl(*, every_message: bool = False) -> list[str]:
    """The GIN indexes (PostgreSQL). ``every_message``: as migration 0017 made them, automatic messages searched
    too."""
    return [f"CREATE INDEX ix_search_tickets ON tickets USING gin ({_PG_TICKET_DOC})", *pg_message_search_ddl(
        every_message=every_message)]


def pg_message_search_ddl(*, every_message: bool) -> list[str]:
    """The messages' GIN index (PostgreSQL): of the messages searched (:data:`SEARCHED_MESSAGES`), or of every one."""
    where = "" if every_message else f" WHERE {SEARCHED_MESSAGES}"
    return [f"CREATE INDEX ix_search_messages ON messages USING gin ({_PG_MESSAGE_DOC}){where}"]


SEARCH_DROP_DDL: dict[str, list[str]] = {
    "sqlite": [f"DROP TRIGGER IF EXISTS {t}_{w}" for t in ("search_tickets", "search_messages")
               for w in ("insert", "delete", "update")] + ["DROP TABLE IF EXISTS search_tickets",
                                                           "DROP TABLE IF EXISTS search_messages"],
    "postgresql": ["DROP INDEX IF EXISTS ix_search_tickets", "DROP INDEX IF EXISTS ix_search_messages"],
}
SEARCH_NAMES = frozenset({"search_tickets", "search_messages", "ix_search_tickets", "ix_search_messages"})


def is_search_structure(name: str | None) -> bool:
    """Whether ``name`` is one of the search tables or indexes (outside the models: the migration makes them)."""
    return name is not None and (name in SEARCH_NAMES or name.startswith(("search_tickets_", "search_messages_")))


@dataclass(frozen=True)
class TicketFilter:
    """What to find: words (``text``) and filters; ``state`` "open" means every open state."""

    text: str = ""
    state: str | None = None
    plan: str | None = None
    channel: str | None = None
    kind: str | None = None
    assignee: str | None = None  # the staff member who took it, else the account's staff member
    due: DueFilter | None = None
    page: int = 1
    per_page: int = PER_PAGE


@dataclass(frozen=True)
class SearchPage:
    """One page of tickets found, in queue order, and how many there are in all."""

    tickets: list[TicketRecord]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


class TicketSearch(Repository):
    """The search; see the module docstring."""

    def find(self, wanted: TicketFilter, now: datetime, soon: timedelta) -> SearchPage:
        """The page ``wanted.page`` of the tickets that match (due filters as of ``now``, ``soon`` ahead)."""
        d = self.direct
        where, params = self._conditions(wanted, now, soon)
        clause = " AND ".join(where) or "1 = 1"
        total = int(d.scalar(f"SELECT count(*) FROM tickets t WHERE {clause}", params) or 0)
        page = max(1, wanted.page)
        rows = d.execute(
            f"SELECT t.id FROM tickets t WHERE {clause} ORDER BY t.queue_priority DESC, "
            "CASE WHEN coalesce(t.response_due, t.first_response_due) IS NULL THEN 1 ELSE 0 END, "
            f"coalesce(t.response_due, t.first_response_due), t.id LIMIT {int(wanted.per_page)} "
            f"OFFSET {(page - 1) * int(wanted.per_page)}", params).fetchall()
        tickets = TicketRepository(self._session if self._session is not None else d)
        return SearchPage([tickets.get(int(row[0])) for row in rows], total, page, wanted.per_page)

    def first_texts(self, ticket_ids: list[int]) -> dict[int, str]:
        """The text of each ticket's first incoming message (for a ticket without a subject: WhatsApp, a call)."""
        if not ticket_ids:
            return {}
        found: dict[int, str] = {}
        rows = self.direct.execute(
            "SELECT msg.ticket_id, msg.text FROM messages msg WHERE msg.id IN (SELECT min(id) FROM messages "
            f"WHERE direction = 'in' AND ticket_id IN ({', '.join(str(int(i)) for i in ticket_ids)}) "
            "GROUP BY ticket_id)").fetchall()
        for ticket_id, text in rows:
            found[int(ticket_id)] = str(text or "")
        return found

    def change_stamp(self, ref: str | None = None) -> str:
        """A value that changes whenever the ticket ``ref`` changes (every ticket without one): its row, its
        messages and their delivery states, its audit trail. The dashboard polls it to refresh a page."""
        d = self.direct
        if ref is None:
            row = d.one("SELECT (SELECT max(id) FROM events), (SELECT max(id) FROM messages), "
                        "(SELECT count(*) FROM messages WHERE delivery_state IN ('queued', 'sending'))")
            return ":".join(str(v) for v in row or ())
        found = d.one("SELECT id, updated_at, state FROM tickets WHERE ref = :ref", {"ref": ref.strip().upper()})
        if found is None:
            return ""
        ticket_id = found[0]
        messages = d.execute("SELECT id, delivery_state FROM messages WHERE ticket_id = :t ORDER BY id",
                             {"t": ticket_id}).fetchall()
        last_event = d.scalar("SELECT max(id) FROM events WHERE ticket_id = :t", {"t": ticket_id})
        return ":".join([str(found[1]), str(found[2]), str(last_event), *(f"{i}{s}" for i, s in messages)])

    def _conditions(self, wanted: TicketFilter, now: datetime, soon: timedelta) -> tuple[list[str], dict[str, Any]]:
        d = self.direct
        where: list[str] = []
        params: dict[str, Any] = {}
        if wanted.state == TicketState.OPEN:
            where.append(f"t.state IN ({', '.join(repr(str(s)) for s in OPEN_STATES)})")
        elif wanted.state:
            where.append("t.state = :state")
            params["state"] = wanted.state
        for name in ("plan", "channel", "kind"):
            value = getattr(wanted, name)
            if value:
                where.append(f"t.{name} = :{name}")
                params[name] = value
        if wanted.assignee:
            where.append("coalesce((SELECT e.actor FROM events e WHERE e.ticket_id = t.id AND e.kind = 'taken' "
                         "ORDER BY e.id DESC LIMIT 1), (SELECT a.staff FROM accounts a WHERE a.id = t.account_id)) "
                         "= :assignee")
            params["assignee"] = wanted.assignee
        if wanted.due:
            table = m.Ticket.__table__
            due = "coalesce(t.response_due, t.first_response_due)"
            waiting = "(t.first_responded_at IS NULL OR t.followup_at IS NOT NULL)"
            where.append(f"t.state IN ({', '.join(repr(str(s)) for s in OPEN_STATES)}) AND {waiting}")
            params["now"] = d.value(table, "first_response_due", now)
            if wanted.due == "breached":
                where.append(f"{due} <= :now")
            else:
                where.append(f"{due} > :now AND {due} <= :soon")
                params["soon"] = d.value(table, "first_response_due", now + soon)
        text = wanted.text.strip()
        if text:
            where.append(self._text_condition(text, params))
        return where, params

    def _text_condition(self, text: str, params: dict[str, Any]) -> str:
        escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params["like"] = f"%{escaped}%"
        like = "LIKE :like ESCAPE '\\'"
        names = (f"t.account_id IN (SELECT a.id FROM accounts a WHERE lower(a.name) {like}) "
                 f"OR t.contact_id IN (SELECT c.id FROM contacts c WHERE lower(c.name) {like} "
                 f"UNION SELECT i.contact_id FROM identities i WHERE lower(i.value) {like})")
        if self.direct.dialect.name == "sqlite":
            words = _WORD.findall(text.lower())
            if not words:
                return f"({names})"
            params["fts"] = " ".join(f'"{w}"' for w in words) + "*"  # the last word may be unfinished
            return ("(t.id IN (SELECT rowid FROM search_tickets WHERE search_tickets MATCH :fts) "
                    "OR t.id IN (SELECT msg.ticket_id FROM messages msg WHERE msg.id IN "
                    "(SELECT rowid FROM search_messages WHERE search_messages MATCH :fts)) "
                    f"OR {names})")
        terms = [w.strip(".-+@") for w in _PG_TERM.sub(" ", text.lower()).split()]
        terms = [w for w in terms if w]
        if not terms:
            return f"({names})"
        params["tsq"] = " & ".join(f"'{w}'" for w in terms) + ":*"  # the last word may be unfinished
        return (f"(t.id IN (SELECT id FROM tickets WHERE {_PG_TICKET_DOC} @@ to_tsquery('simple', :tsq)) "
                f"OR t.id IN (SELECT ticket_id FROM messages WHERE {SEARCHED_MESSAGES} "
                f"AND {_PG_MESSAGE_DOC} @@ to_tsquery('simple', :tsq)) "
                f"OR {names})")


__all__ = ["PER_PAGE", "SEARCHED_MESSAGES", "SEARCH_DROP_DDL", "SearchPage", "TicketFilter", "TicketSearch",
           "is_search_structure", "pg_message_search_ddl", "pg_search_ddl", "sqlite_message_search_ddl",
           "sqlite_search_ddl"]
