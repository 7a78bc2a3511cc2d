"""Repositories: the queries slabot needs, on one session, returning records.

Each repository works inside the caller's transaction (``Database.run``); none
commits on its own, so the intake can store ticket, message, outbox row and
reminders all or nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, UniqueConstraint, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from channels.messages import DeliveryState
from storage import models as m
from storage.database import DuplicateError, LockBusy, is_unique_violation
from storage.direct import Answer, Direct
from storage.webhooks import EVENT_TYPES, MESSAGE_CREATED, insert_recording
from storage.records import (
    OPEN_STATES,
    AccountInput,
    AccountRecord,
    AttachmentRecord,
    ContactRecord,
    MessageRecord,
    OutboundDraft,
    OutboxRecord,
    OutboxState,
    QuoteState,
    ReminderContext,
    ReminderRecord,
    ReminderState,
    SendingRow,
    TicketRecord,
    TicketState,
)

FIRST_TICKET_NUMBER = 10001
TICKET_NUMBERS = "ticket_numbers"  # PostgreSQL: the sequence of the ticket numbers (migration 0019)
_NEXT_TICKET_NUMBER = f"SELECT nextval('{TICKET_NUMBERS}')"
_NEXT_TICKET_NUMBER_TOO = f", nextval('{TICKET_NUMBERS}')"
# a number whose ref is taken already (the sequence behind the rows) is used up: the constraint that says so
_REF_UNIQUE = next(str(c.name) for c in cast(Table, m.Ticket.__table__).constraints
                   if isinstance(c, UniqueConstraint) and [col.name for col in c.columns] == ["ref"])


def _contact(row: m.Contact, identities: Iterable[m.Identity]) -> ContactRecord:
    ids = list(identities)
    return ContactRecord(
        id=row.id,
        account_id=row.account_id,
        name=row.name,
        role=row.role,
        authorised=row.authorised,
        language=row.language,
        emails=tuple(sorted(i.value for i in ids if i.kind == "email")),
        phones=tuple(sorted(i.value for i in ids if i.kind == "phone")),
    )


_CONTACT_COLUMNS = ("id", "account_id", "name", "role", "authorised", "language")
_ACCOUNT_COLUMNS = ("id", "name", "plan", "staff", "templates_delivered", "language", "monthly_hours",
                   "billing_email")
_TICKET_COLUMNS = tuple(c.name for c in m.Ticket.__table__.columns)
# the intake's lookups, written once (a statement's text is also the driver's cache key)
_FIND_SQL = (
    f"SELECT {', '.join('c.' + n for n in _CONTACT_COLUMNS)}, {', '.join('a.' + n for n in _ACCOUNT_COLUMNS)} "
    "FROM identities i JOIN contacts c ON c.id = i.contact_id JOIN accounts a ON a.id = c.account_id "
    "WHERE i.kind = :kind AND i.value = :value ORDER BY c.id"
)
# the states in constant statements: written from the enums once, so each statement stays one text (its index used)
_OPEN_SQL = ", ".join(f"'{state.value}'" for state in OPEN_STATES)
_PENDING, _SENDING = f"'{OutboxState.PENDING.value}'", f"'{OutboxState.SENDING.value}'"
_PLANNED, _CLAIMED = f"'{ReminderState.PLANNED.value}'", f"'{ReminderState.CLAIMED.value}'"
_CANCELLED = f"'{ReminderState.CANCELLED.value}'"
_TICKET_ROW = f"SELECT {', '.join('t.' + n for n in _TICKET_COLUMNS)}, a.name, c.name"
_TICKET_FROM = (" FROM tickets t LEFT JOIN accounts a ON a.id = t.account_id "
                "LEFT JOIN contacts c ON c.id = t.contact_id WHERE ")
_TICKET_ROW_SQL = _TICKET_ROW + _TICKET_FROM
_GET_TICKET_SQL = _TICKET_ROW_SQL + "t.id = :id"
# a ticket's current quote: its newest one not superseded (R19; storage.billing reads it whole)
CURRENT_QUOTE_SQL = (f"FROM quotes WHERE ticket_id = {{ticket}} AND state <> '{QuoteState.SUPERSEDED.value}' "
                     "ORDER BY id DESC LIMIT 1")
# the intake's lookup of a message's ticket, with the state of its current quote (a reply may answer it)
_THREAD_ROW_SQL = f"{_TICKET_ROW}, (SELECT state {CURRENT_QUOTE_SQL.format(ticket='t.id')}){_TICKET_FROM}"
_STORED_AS_SQL = ("SELECT id, direction FROM messages WHERE channel = :channel AND direction IN ('in', 'out') "
                  "AND external_id = :external_id ORDER BY direction LIMIT 1")  # the unique index; 'in' sorts first
_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || :key, 0))"
_TRY_LOCK_SQL = "SELECT pg_try_advisory_xact_lock(hashtextextended(current_schema() || :key, 0))"


class Thread(NamedTuple):
    """The ticket a message belongs to, as the intake asks for it: with the state of its current quote (the newest
    not superseded; None when it has none)."""

    ticket: TicketRecord
    quote: QuoteState | None


def _account(row: m.Account, contacts: Sequence[ContactRecord] = ()) -> AccountRecord:
    return AccountRecord(
        id=row.id,
        name=row.name,
        plan=row.plan,
        staff=row.staff,
        templates_delivered=row.templates_delivered,
        language=row.language,
        monthly_hours=row.monthly_hours,
        contacts=tuple(contacts),
        billing_email=row.billing_email,
    )


def raise_counter(direct: Direct, name: str, value: int) -> bool:
    """Set the counter ``name`` to ``value`` unless it is there already or higher; True when it moved.

    For checkpoints that only go forward (the last Telegram update handled, the last event announced).
    """
    moved = direct.one(
        "INSERT INTO counters (name, value) VALUES (:name, :value) ON CONFLICT (name) "
        "DO UPDATE SET value = :value WHERE counters.value < :value RETURNING value",
        {"name": name, "value": value},
    )
    return moved is not None


def next_number(direct: Direct, name: str, first: int) -> int:
    """The next number of the sequence ``name`` (``first`` the first time), taken inside the caller's transaction."""
    # one atomic upsert: two first numbers at once must not both insert the counter row
    # (the loser's unique-key violation would lose its message on PostgreSQL)
    return int(direct.scalar(
        "INSERT INTO counters (name, value) VALUES (:name, :first) "
        "ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
        {"name": name, "first": first},
    ))


def counter(direct: Direct, name: str) -> int | None:
    """The counter ``name``, or None when it was never set."""
    value = direct.scalar("SELECT value FROM counters WHERE name = :name", {"name": name})
    return None if value is None else int(value)


class Repository:
    """The base of every repository: on an ORM session, or on plain statements (:meth:`Database.run_direct`) for the hot-path queries."""

    def __init__(self, source: Session | Direct) -> None:
        self._session = source if isinstance(source, Session) else None
        self._direct = source if isinstance(source, Direct) else None

    @property
    def session(self) -> Session:
        if self._session is None:
            raise TypeError(f"{type(self).__name__}: this query needs an ORM session (Database.run)")
        return self._session

    @property
    def direct(self) -> Direct:
        """Plain statements for the intake's hot path (see :mod:`storage.direct`)."""
        if self._session is not None:
            self._session.flush()  # the statements see every pending ORM change of the transaction
            return Direct.of(self._session)
        assert self._direct is not None
        return self._direct


class AccountRepository(Repository):
    """Accounts, their contacts and identities."""

    def upsert(self, data: AccountInput, now: datetime) -> tuple[int, bool]:
        """Create or update an account by name, replacing its contacts' identities."""
        row = self.session.scalar(select(m.Account).where(m.Account.name == data.name))
        created = row is None
        if row is None:
            row = m.Account(name=data.name, created_at=now)
            self.session.add(row)
        row.plan = data.plan
        row.staff = data.staff
        row.templates_delivered = data.templates_delivered
        row.language = data.language
        row.monthly_hours = data.monthly_hours
        row.billing_email = data.billing_email
        row.updated_at = now
        self.session.flush()
        existing = {c.name: c for c in self.session.scalars(select(m.Contact).where(m.Contact.account_id == row.id))}
        for contact in data.contacts:
            crow = existing.pop(contact.name, None)
            if crow is None:
                crow = m.Contact(account_id=row.id, name=contact.name)
                self.session.add(crow)
            crow.role = contact.role
            crow.authorised = contact.authorised
            crow.language = contact.language
            self.session.flush()
            self.session.execute(delete(m.Identity).where(m.Identity.contact_id == crow.id))
            for kind, values in (("email", contact.emails), ("phone", contact.phones)):
                for value in dict.fromkeys(values):
                    self.session.add(m.Identity(contact_id=crow.id, kind=kind, value=value))
        for gone in existing.values():
            # a contact no longer listed keeps its history but can no longer be matched
            self.session.execute(delete(m.Identity).where(m.Identity.contact_id == gone.id))
            gone.role = "third_party"
            gone.authorised = False
        self.session.flush()
        return row.id, created

    def all(self) -> list[AccountRecord]:
        accounts = self.session.scalars(select(m.Account).order_by(m.Account.name)).all()
        contacts = self.session.scalars(select(m.Contact).order_by(m.Contact.id)).all()
        identities = self.session.scalars(select(m.Identity)).all()
        by_contact: dict[int, list[m.Identity]] = {}
        for ident in identities:
            by_contact.setdefault(ident.contact_id, []).append(ident)
        by_account: dict[int, list[ContactRecord]] = {}
        for c in contacts:
            by_account.setdefault(c.account_id, []).append(_contact(c, by_contact.get(c.id, [])))
        return [_account(a, by_account.get(a.id, [])) for a in accounts]

    def get(self, account_id: int) -> AccountRecord:
        row = self.session.get(m.Account, account_id)
        if row is None:
            raise KeyError(account_id)
        return _account(row)

    def contacts_of(self, account_id: int) -> list[ContactRecord]:
        """The account's contacts with their e-mail addresses and phone numbers."""
        contacts = self.session.scalars(select(m.Contact).where(m.Contact.account_id == account_id)
                                        .order_by(m.Contact.id)).all()
        identities = self.session.scalars(select(m.Identity).where(
            m.Identity.contact_id.in_([c.id for c in contacts]))).all() if contacts else []
        return [_contact(c, [i for i in identities if i.contact_id == c.id]) for c in contacts]

    def by_name(self, name: str) -> AccountRecord | None:
        row = self.session.scalar(select(m.Account).where(func.lower(m.Account.name) == name.lower()))
        return None if row is None else _account(row)

    def contact(self, contact_id: int) -> ContactRecord:
        row = self.session.get(m.Contact, contact_id)
        if row is None:
            raise KeyError(contact_id)
        idents = self.session.scalars(select(m.Identity).where(m.Identity.contact_id == contact_id)).all()
        return _contact(row, idents)

    def find(self, kind: str, value: str) -> list[tuple[ContactRecord, AccountRecord]]:
        """Every contact with this identity, with its account (contacts before third parties)."""
        return self.ask_find(kind, value)()

    def ask_find(self, kind: str, value: str) -> Callable[[], list[tuple[ContactRecord, AccountRecord]]]:
        """:meth:`find`, asked now (:meth:`storage.direct.Direct.ask`) and answered when called."""
        answer = self.direct.ask(_FIND_SQL, {"kind": kind, "value": value})
        return lambda: self._found(answer.all())

    def _found(self, rows: Sequence[Sequence[Any]]) -> list[tuple[ContactRecord, AccountRecord]]:
        direct = self.direct
        split = len(_CONTACT_COLUMNS)
        found = []
        for row in rows:
            c = direct.decode(m.Contact.__table__, _CONTACT_COLUMNS, row[:split])
            a = direct.decode(m.Account.__table__, _ACCOUNT_COLUMNS, row[split:])
            found.append((ContactRecord(c["id"], c["account_id"], c["name"], c["role"], bool(c["authorised"]),
                                        c["language"]), AccountRecord(**a)))
        return sorted(found, key=lambda pair: (not pair[0].may_open_requests, pair[0].id))


    def identity(self, contact_id: int, kind: str) -> str | None:
        """The contact's first identity of ``kind`` (``email``, ``phone``), or None."""
        found = self.direct.scalar("SELECT value FROM identities WHERE contact_id = :c AND kind = :kind ORDER BY id "
                                   "LIMIT 1", {"c": contact_id, "kind": kind})
        return None if found is None else str(found)


class TicketRepository(Repository):
    """Tickets, their messages and attachments, and the audit trail."""

    # -- references -----------------------------------------------------------

    def next_ref(self, prefix: str) -> str:
        """The next human reference for ``prefix`` (``MC-10001``, ``MC-10002``, ...).

        SQLite: a counter per prefix, in the caller's transaction (one writer at a time). PostgreSQL: the sequence
        ``ticket_numbers`` (migration 0019), so that a worker opening a ticket does not wait until another
        worker's new ticket has committed (a counter's row stays locked until then). The numbers stay unique and
        rising. A transaction that fails after taking one, and is rolled back, gives it back for the next new ticket
        (:meth:`storage.direct.Direct.use_value`); one whose ``COMMIT`` got no answer leaves it unused (a gap),
        since whether it committed is not known. A number the intake's first
        reads took along (:meth:`ask_stored_as`) is used first, in this transaction or a later one of the same
        database: so a new ticket waits for no number of its own. With several workers, each keeps the one it took
        until its next new ticket, so their numbers rise per worker, and across workers only roughly.
        """
        d = self.direct
        if d.dialect.name == "postgresql":
            number = d.spare.take(TICKET_NUMBERS)  # one a message's first reads took along (ask_stored_as)
            if number is None:
                number = int(d.scalar(_NEXT_TICKET_NUMBER))
            d.use_value(TICKET_NUMBERS, number, unique=_REF_UNIQUE)  # back to the spare if rolled back
            return f"{prefix}-{number}"
        return f"{prefix}-{next_number(d, f'ticket:{prefix}', FIRST_TICKET_NUMBER)}"

    # -- messages -------------------------------------------------------------

    def message_id_for(self, channel: str, direction: str, external_id: str) -> int | None:
        found = self.direct.scalar(
            "SELECT id FROM messages WHERE channel = :channel AND direction = :direction AND external_id = :external_id",
            {"channel": channel, "direction": direction, "external_id": external_id},
        )
        return None if found is None else int(found)

    def stored_as(self, channel: str, external_id: str) -> tuple[int | None, str | None]:
        """The stored message with this channel id and its direction (an inbound one first), or (None, None)."""
        return self.ask_stored_as(channel, external_id)()

    def ask_stored_as(self, channel: str, external_id: str, *,
                      reserve: bool = False) -> Callable[[], tuple[int | None, str | None]]:
        """:meth:`stored_as`, asked now and answered when called. With ``reserve`` the same statement takes the ids
        a new ticket needs (the ticket, its message, the acknowledgement) on a pipelined connection, for the
        inserts to use (:meth:`storage.direct.Direct.take_reserved`), and a ticket number unless the database keeps
        one already (:meth:`next_ref`)."""
        d = self.direct
        params = {"channel": channel, "external_id": external_id}
        if not (reserve and d.pipelined):
            answer = d.ask(_STORED_AS_SQL, params)

            def stored() -> tuple[int | None, str | None]:
                found = answer.one()
                return (None, None) if found is None else (int(found[0]), str(found[1]))

            return stored
        tickets, messages = m.Ticket.__table__, m.Message.__table__
        number = d.spare.wanted(TICKET_NUMBERS)  # and the next ticket number, unless one is kept already

        def keep_number(answer: Answer) -> None:  # taken whether this transaction commits or not: kept for next_ref
            found = answer.one()
            assert found is not None
            d.spare.keep(TICKET_NUMBERS, int(found[5]))

        reserving = d.ask(f"SELECT s.id, s.direction, {d.sequence_next(tickets)}, {d.sequence_next(messages)}, "
                          f"{d.sequence_next(messages)}{_NEXT_TICKET_NUMBER_TOO if number else ''} FROM (SELECT 1) one "
                          f"LEFT JOIN LATERAL ({_STORED_AS_SQL}) s ON true", params,
                          answered=keep_number if number else None)

        def stored_reserving() -> tuple[int | None, str | None]:
            found = reserving.one()
            assert found is not None
            d.take_reserved(tickets, found[2:3])
            d.take_reserved(messages, found[3:5])
            return (None, None) if found[0] is None else (int(found[0]), str(found[1]))

        return stored_reserving

    def add_message(self, **values: Any) -> int:
        """Store a message (and its attachments); :class:`DuplicateError` when its channel already has a message of
        that direction with that id (the same message delivered twice at once). With an id reserved
        (:meth:`storage.direct.Direct.take_reserved`) the insert is sent, not waited for: a duplicate is then told
        by the error of the transaction's end (:func:`storage.database.is_unique_violation`)."""
        attachments = values.pop("attachments", ())
        ticket_id = values.get("ticket_id")
        try:
            if ticket_id is not None:  # the outgoing webhooks hear of it in this transaction
                message_id = insert_recording(self.direct, m.Message.__table__, values, MESSAGE_CREATED,
                                              values["at"], values["created_at"], ticket_id=ticket_id, own_id=True)
            else:
                message_id = self.direct.insert(m.Message.__table__, values)
            assert message_id is not None
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
            raise DuplicateError(f"{values.get('channel')} message {values.get('external_id')} is stored already") \
                from exc
        self.direct.insert_many(m.Attachment.__table__, ({"message_id": message_id, **att} for att in attachments))
        return message_id

    def ticket_for_thread(self, channel: str, refs: Sequence[str]) -> int | None:
        """The ticket of a message we saw or sent whose id is among ``refs`` (R6)."""
        if not refs:
            return None
        params: dict[str, Any] = {f"ref{i}": ref for i, ref in enumerate(dict.fromkeys(refs))}
        params["channel"] = channel
        found = self.direct.scalar(
            "SELECT ticket_id FROM messages WHERE channel = :channel AND direction IN ('in', 'out') "
            f"AND external_id IN ({', '.join(':' + k for k in params if k != 'channel')}) "
            "AND ticket_id IS NOT NULL ORDER BY id DESC LIMIT 1",
            params,
        )
        return None if found is None else int(found)

    def open_ticket_for_key(self, channel: str, thread_key: str, priority: str | None = None) -> int | None:
        """The newest open ticket on ``channel`` (WhatsApp or phone) from ``thread_key`` (the number), of
        ``priority`` if given."""
        if channel not in m.THREADED_BY_NUMBER:
            raise ValueError(f"tickets are threaded by number on WhatsApp and phone only, not on {channel}")
        found = self.direct.scalar(
            f"SELECT id FROM tickets WHERE {m.THREAD_KEY_CHANNELS} AND channel = :channel AND thread_key = :key "
            f"AND state IN ({_OPEN_SQL})"
            + (" AND priority = :priority" if priority else "") + " ORDER BY id DESC LIMIT 1",
            {"channel": channel, "key": thread_key, "priority": priority},
        )
        return None if found is None else int(found)

    def ask_ticket_for_thread(self, channel: str, refs: Sequence[str]) -> Callable[[], Thread | None]:
        """The ticket :meth:`ticket_for_thread` names, whole; asked now and answered when called."""
        if not refs:
            return lambda: None
        params: dict[str, Any] = {f"ref{i}": ref for i, ref in enumerate(dict.fromkeys(refs))}
        params["channel"] = channel
        return self._ask_ticket(
            "t.id = (SELECT ticket_id FROM messages WHERE channel = :channel AND direction IN ('in', 'out') "
            f"AND external_id IN ({', '.join(':' + k for k in params if k != 'channel')}) "
            "AND ticket_id IS NOT NULL ORDER BY id DESC LIMIT 1)", params)

    def ask_ticket_for_ref(self, ref: str) -> Callable[[], Thread | None]:
        """The ticket with the reference ``ref``, whole; asked now and answered when called."""
        return self._ask_ticket("t.ref = :ref", {"ref": ref.upper()})

    def ask_open_ticket_for_key(self, channel: str, thread_key: str,
                                priority: str | None = None) -> Callable[[], Thread | None]:
        """The ticket :meth:`open_ticket_for_key` names, whole; asked now and answered when called."""
        if channel not in m.THREADED_BY_NUMBER:
            raise ValueError(f"tickets are threaded by number on WhatsApp and phone only, not on {channel}")
        return self._ask_ticket(
            f"t.id = (SELECT id FROM tickets WHERE {m.THREAD_KEY_CHANNELS} AND channel = :channel "
            f"AND thread_key = :key AND state IN ({_OPEN_SQL})"
            + (" AND priority = :priority" if priority else "") + " ORDER BY id DESC LIMIT 1)",
            {"channel": channel, "key": thread_key, "priority": priority})

    def _ask_ticket(self, where: str, params: Mapping[str, Any]) -> Callable[[], Thread | None]:
        direct = self.direct
        answer = direct.ask(_THREAD_ROW_SQL + where, params)

        def ticket() -> Thread | None:
            row = answer.one()
            if row is None:
                return None
            found = self._ticket(direct.decode(m.Ticket.__table__, _TICKET_COLUMNS, row[:-3]), row[-3], row[-2],
                                 False)
            return Thread(found, None if row[-1] is None else QuoteState(row[-1]))

        return ticket

    def lock_thread(self, channel: str, thread_key: str) -> None:
        """Hold the thread of ``thread_key`` on ``channel`` until the transaction ends, so that two messages of one
        conversation arriving at once are decided one after the other: the second sees the ticket the first opened
        (R6) instead of opening another. PostgreSQL: a transaction-scoped advisory lock on the key (within the
        schema); SQLite's write transaction admits one writer at a time already. Inside a group of transactions
        (:meth:`storage.database.Database.group`) the lock is only tried: :class:`LockBusy` when another
        transaction holds it, and the call runs again alone."""
        self.ask_lock_thread(channel, thread_key)()

    def ask_lock_thread(self, channel: str, thread_key: str) -> Callable[[], None]:
        """:meth:`lock_thread`, asked now (on a pipelined connection the statements after it run once the lock is
        held); the call raises :class:`LockBusy` where :meth:`lock_thread` would."""
        return self._ask_lock(f"/thread/{channel}/{thread_key}",
                              f"the {channel} conversation of {thread_key} is being decided by another worker")

    def ask_lock_message(self, channel: str, external_id: str) -> Callable[[], None]:
        """Hold the message ``external_id`` of ``channel`` until the transaction ends (PostgreSQL), as
        :meth:`ask_lock_thread` holds a conversation: the same message delivered twice at once is decided once,
        and the second delivery finds it stored (no ticket number taken for it, none lost)."""
        return self._ask_lock(f"/message/{channel}/{external_id}",
                              f"the {channel} message {external_id} is being stored by another worker")

    def _ask_lock(self, key: str, busy: str) -> Callable[[], None]:
        direct = self.direct
        if direct.dialect.name == "sqlite":
            return lambda: None
        params = {"key": key}
        if not direct.grouped:
            if direct.pipelined:
                direct.send(_LOCK_SQL, params)
            else:
                direct.execute(_LOCK_SQL, params)
            return lambda: None
        answer = direct.ask(_TRY_LOCK_SQL, params)

        def held() -> None:
            if not answer.scalar():
                raise LockBusy(busy)

        return held

    def open_ticket_of_contact(self, contact_id: int) -> int | None:
        """The contact's newest open ticket on any channel (an outbound call joins it), or None."""
        found = self.direct.scalar(f"SELECT id FROM tickets WHERE contact_id = :c AND state IN ({_OPEN_SQL}) "
                                   "ORDER BY id DESC LIMIT 1", {"c": contact_id})
        return None if found is None else int(found)

    def id_for_ref(self, ref: str) -> int | None:
        found = self.direct.scalar("SELECT id FROM tickets WHERE ref = :ref", {"ref": ref.upper()})
        return None if found is None else int(found)

    # -- tickets --------------------------------------------------------------

    def add_ticket(self, **values: Any) -> int:
        ticket_id = self.direct.insert(m.Ticket.__table__, values)
        assert ticket_id is not None
        return ticket_id

    def terms_value(self, terms: dict[str, Any]) -> Any:
        """An SLA-terms snapshot as ``terms`` of :meth:`add_ticket`, converted once: the tickets of one plan and
        day share it."""
        return self.direct.bound(m.Ticket.__table__, "terms", terms)

    def update_ticket(self, ticket_id: int, **values: Any) -> None:
        self.direct.update(m.Ticket.__table__, ticket_id, values, wait=False)

    def get(self, ticket_id: int, *, with_messages: bool = False) -> TicketRecord:
        direct = self.direct
        row = direct.one(_GET_TICKET_SQL, {"id": ticket_id})
        if row is None:
            raise KeyError(ticket_id)
        values = direct.decode(m.Ticket.__table__, _TICKET_COLUMNS, row[:-2])
        return self._ticket(values, row[-2], row[-1], with_messages)

    def by_ref(self, ref: str, *, with_messages: bool = False) -> TicketRecord | None:
        row = self.session.scalar(select(m.Ticket).where(m.Ticket.ref == ref.strip().upper()))
        return None if row is None else self._record(row, with_messages)

    def queue(self, state: TicketState | str | None = None) -> list[TicketRecord]:
        """Tickets in queue order: higher ``queue_priority`` first, then by the current response deadline (R24: a
        follow-up question's, else the first response's); ``state`` "open" means every open state
        (:data:`OPEN_STATES`). ``queue_priority`` is the ticket's R15 rank, set at intake by
        :func:`sla_engine.policy.queue_rank` (critical Premium, critical Business, other critical, Premium, the
        rest)."""
        query = select(m.Ticket)
        if state == TicketState.OPEN:
            query = query.where(m.Ticket.state.in_(OPEN_STATES))
        elif state:
            query = query.where(m.Ticket.state == state)
        rows = self.session.scalars(query).all()
        far = datetime.max.replace(tzinfo=None)

        def order(t: m.Ticket) -> tuple[int, datetime, int]:
            current = t.response_due or t.first_response_due
            due = current.astimezone(timezone.utc).replace(tzinfo=None) if current else far
            return (-t.queue_priority, due, t.id)

        return [self._record(t, False) for t in sorted(rows, key=order)]

    def messages(self, ticket_id: int) -> list[MessageRecord]:
        rows = self.session.scalars(
            select(m.Message).where(m.Message.ticket_id == ticket_id).order_by(m.Message.at, m.Message.id)
        ).all()
        return [self._message(r) for r in rows]

    def kept_messages(self) -> list[MessageRecord]:
        """Inbound messages kept without a ticket (third parties, channels not in the plan)."""
        rows = self.session.scalars(
            select(m.Message).where(m.Message.ticket_id.is_(None), m.Message.direction == "in").order_by(m.Message.id)
        ).all()
        return [self._message(r) for r in rows]

    def message(self, message_id: int) -> MessageRecord:
        row = self.session.get(m.Message, message_id)
        if row is None:
            raise KeyError(message_id)
        return self._message(row)

    def delivery_state(self, message_id: int) -> str:
        found = self.direct.scalar("SELECT delivery_state FROM messages WHERE id = :id", {"id": message_id})
        if found is None:
            raise KeyError(message_id)
        return str(found)

    def staff_message(self, message_id: int) -> tuple[int, str] | None:
        """(ticket id, purpose) of a staff member's message on a ticket, or None for any other message."""
        row = self.direct.one("SELECT ticket_id, purpose FROM messages WHERE id = :id AND staff IS NOT NULL "
                              "AND ticket_id IS NOT NULL", {"id": message_id})
        return None if row is None else (int(row[0]), str(row[1] or ""))

    def set_staff(self, message_id: int, staff: str) -> None:
        """Record who at the desk handled a message (an answered call: the staff member who took it)."""
        self.direct.update(m.Message.__table__, message_id, {"staff": staff})

    def standing_responses(self, ticket_id: int, excluding: int) -> int:
        """How many staff responses on the ticket still stand besides message ``excluding``: staff replies not
        failed for good, and answered calls (R8)."""
        return int(self.direct.scalar(
            "SELECT count(*) FROM messages WHERE ticket_id = :ticket AND id <> :id AND staff IS NOT NULL "
            f"AND delivery_state NOT IN ('{DeliveryState.FAILED.value}', '{DeliveryState.NEEDS_STAFF.value}')",
            {"ticket": ticket_id, "id": excluding}))

    def follow_up_answered_by(self, ticket_id: int, message_id: int) -> tuple[datetime, int, datetime | None] | None:
        """When the staff message ``message_id`` answered a customer's follow-up question (R24, its event says
        ``follow_up``): (when the question arrived, its message id, when staff had answered before it); None
        when the message answered no follow-up question."""
        d, events = self.direct, m.Event.__table__
        answer_id = None
        for event_id, data in d.execute("SELECT id, data FROM events WHERE ticket_id = :t AND message_id = :id "
                                        "ORDER BY id", {"t": ticket_id, "id": message_id}).fetchall():
            if (d.decode(events, ("data",), (data,))["data"] or {}).get("follow_up"):
                answer_id = int(event_id)
        if answer_id is None:
            return None
        before, asked = None, None  # the answer before the question, then the first question after it
        for _, kind, at, data in d.execute("SELECT id, kind, at, data FROM events WHERE ticket_id = :t AND id < :e "
                                           "ORDER BY id", {"t": ticket_id, "e": answer_id}).fetchall():
            values = d.decode(events, ("at", "data"), (at, data))
            info = values["data"] or {}
            if info.get("follow_up") or info.get("first_response"):
                before, asked = values["at"], None
            elif kind == "follow_up" and asked is None and info.get("message") is not None:
                asked = int(info["message"])
        if asked is None:
            return None
        arrived = d.scalar("SELECT at FROM messages WHERE id = :id", {"id": asked})
        return d.decode(m.Message.__table__, ("at",), (arrived,))["at"], asked, before

    def standing_responses_since(self, ticket_id: int, excluding: int, since: datetime) -> int:
        """:meth:`standing_responses` made at or after ``since`` (those that answered a question of that time)."""
        d = self.direct
        return int(d.scalar(
            "SELECT count(*) FROM messages WHERE ticket_id = :ticket AND id <> :id AND staff IS NOT NULL "
            f"AND delivery_state NOT IN ('{DeliveryState.FAILED.value}', '{DeliveryState.NEEDS_STAFF.value}') "
            "AND at >= :since", {"ticket": ticket_id, "id": excluding,
                                 "since": d.value(m.Message.__table__, "at", since)}))

    def set_delivery_state(self, message_id: int, state: str, external_id: str | None = None) -> None:
        values: dict[str, Any] = {"delivery_state": state}
        if external_id is not None:
            values["external_id"] = external_id
        self.direct.update(m.Message.__table__, message_id, values)

    def add_event(self, kind: str, at: datetime, *, ticket_id: int | None = None, message_id: int | None = None,
                  actor: str = "slabot", data: dict[str, Any] | None = None) -> None:
        row = {"kind": kind, "at": at, "ticket_id": ticket_id, "message_id": message_id, "actor": actor,
               "data": data or {}}
        if kind in EVENT_TYPES:  # ticket.created, ticket.resolved: the outgoing webhooks hear of it
            insert_recording(self.direct, m.Event.__table__, row, EVENT_TYPES[kind], at, at, ticket_id=ticket_id,
                             message_id=message_id, returning=False)
        else:
            self.direct.insert(m.Event.__table__, row, returning=False)

    def events(self, ticket_id: int) -> list[dict[str, Any]]:
        rows = self.session.scalars(select(m.Event).where(m.Event.ticket_id == ticket_id).order_by(m.Event.id)).all()
        return [{"at": r.at, "kind": r.kind, "actor": r.actor, "data": r.data} for r in rows]

    def _message(self, row: m.Message) -> MessageRecord:
        atts = self.session.scalars(select(m.Attachment).where(m.Attachment.message_id == row.id)).all()
        return MessageRecord(
            id=row.id, ticket_id=row.ticket_id, direction=row.direction, channel=row.channel,
            external_id=row.external_id, sender=row.sender, recipient=row.recipient, subject=row.subject,
            text=row.text, at=row.at, auto=row.auto, purpose=row.purpose, decision=row.decision,
            reasons=tuple(row.reasons or ()), delivery_state=row.delivery_state, staff=row.staff,
            attachments=tuple(AttachmentRecord(a.id, a.filename, a.content_type, a.size, a.url, a.fetched,
                                               None if a.fetched else a.fetch_error)
                              for a in atts),
        )

    def _record(self, row: m.Ticket, with_messages: bool) -> TicketRecord:
        account = self.session.get(m.Account, row.account_id) if row.account_id else None
        contact = self.session.get(m.Contact, row.contact_id) if row.contact_id else None
        values = {name: getattr(row, name) for name in _TICKET_COLUMNS}
        return self._ticket(values, account.name if account else None, contact.name if contact else None,
                            with_messages)

    def _ticket(self, v: dict[str, Any], account: str | None, contact: str | None,
                with_messages: bool) -> TicketRecord:
        pauses = tuple(
            (datetime.fromisoformat(p[0]), datetime.fromisoformat(p[1]) if p[1] else None) for p in v["pauses"] or ()
        )
        return TicketRecord(
            id=v["id"], ref=v["ref"], account_id=v["account_id"], account=account,
            contact_id=v["contact_id"], contact=contact, channel=v["channel"],
            thread_key=v["thread_key"], subject=v["subject"], kind=v["kind"], kind_rule=v["kind_rule"],
            kind_reasons=tuple(v["kind_reasons"] or ()), priority=v["priority"], state=TicketState(v["state"]),
            plan=v["plan"],
            queue_priority=v["queue_priority"], terms=v["terms"], received_at=v["received_at"],
            first_response_due=v["first_response_due"], first_responded_at=v["first_responded_at"],
            resolution_due_min=v["resolution_due_min"], resolution_due_max=v["resolution_due_max"],
            needs_release=bool(v["needs_release"]), waiting_since=v["waiting_since"], pauses=pauses,
            resolved_at=v["resolved_at"], decision=v["decision"], reasons=tuple(v["reasons"] or ()),
            messages=tuple(self.messages(v["id"])) if with_messages else (), root_cause=v["root_cause"],
            response_due=v["response_due"], followup_at=v["followup_at"], responded_at=v["responded_at"],
            sla_priority=v["sla_priority"], priority_rule=v["priority_rule"],
            priority_reasons=tuple(v["priority_reasons"] or ()),
        )


    def last_whatsapp_at(self, sender: str) -> datetime | None:
        """When ``sender`` last wrote to us on WhatsApp (its 24-hour window)."""
        row = self.direct.one(f"SELECT MAX(at) FROM messages WHERE sender = :sender AND {m.WHATSAPP_IN}",
                              {"sender": sender})
        if row is None or row[0] is None:
            return None
        at: datetime = self.direct.decode(m.Message.__table__, ("at",), row)["at"]
        return at

    def add_early_status(self, channel: str, external_id: str, state: str, error_code: int | None,
                         now: datetime) -> None:
        """Keep a status callback that arrived before its message's id was stored; a day at most."""
        self.session.execute(delete(m.EarlyStatus).where(m.EarlyStatus.received_at < now - timedelta(days=1)))
        self.session.add(m.EarlyStatus(channel=channel, external_id=external_id, state=state, error_code=error_code,
                                       received_at=now))

    def take_early_statuses(self, channel: str, external_id: str) -> list[tuple[str, int | None]]:
        """The kept status callbacks for ``external_id`` (state, error code), oldest first, removed."""
        rows = self.direct.execute(
            "SELECT id, state, error_code FROM early_statuses WHERE channel = :channel AND external_id = :external_id "
            "ORDER BY id", {"channel": channel, "external_id": external_id},
        ).fetchall()
        if not rows:
            return []
        ids = {f"id{n}": row[0] for n, row in enumerate(rows)}
        self.direct.execute(f"DELETE FROM early_statuses WHERE id IN ({', '.join(':' + k for k in ids)})", ids)
        return [(str(state), None if code is None else int(code)) for _, state, code in rows]

    def unfetched_attachments(self, channel: str, limit: int, now: datetime | None = None) -> list[tuple[int, str]]:
        """Attachments known only by URL and due for a (next) download, oldest first."""
        query = (
            select(m.Attachment.id, m.Attachment.url)
            .join(m.Message, m.Message.id == m.Attachment.message_id)
            .where(m.Message.channel == channel, m.Attachment.fetched.is_(False), m.Attachment.url.is_not(None),
                   m.Attachment.fetch_failed.is_(False))
            .order_by(m.Attachment.id).limit(limit)
        )
        if now is not None:
            query = query.where((m.Attachment.next_fetch_at.is_(None)) | (m.Attachment.next_fetch_at <= now))
        return [(int(i), str(u)) for i, u in self.session.execute(query).all()]

    def attachment_fetch_failed(self, attachment_id: int, error: str, now: datetime, *, max_attempts: int,
                                backoff: timedelta, max_backoff: timedelta = timedelta(hours=1)) -> datetime | None:
        """Record a failed download; when to try again (backoff doubling), or None after ``max_attempts`` (given
        up, and an event tells staff)."""
        row = self.session.get(m.Attachment, attachment_id)
        if row is None:
            raise KeyError(attachment_id)
        row.fetch_attempts = (row.fetch_attempts or 0) + 1
        row.fetch_error = error[:2000]
        if row.fetch_attempts >= max_attempts:
            row.next_fetch_at = None
            row.fetch_failed = True
            self.add_event("attachment_failed", now, message_id=row.message_id,
                           data={"attachment": attachment_id, "attempts": row.fetch_attempts, "error": error[:500],
                                 "staff_told": True})
            return None
        row.next_fetch_at = now + min(backoff * 2 ** (row.fetch_attempts - 1), max_backoff)
        return row.next_fetch_at

    def store_attachment(self, attachment_id: int, data: bytes, content_type: str | None) -> None:
        values: dict[str, Any] = {"data": data, "size": len(data), "fetched": True}
        if content_type:
            values["content_type"] = content_type.split(";")[0].strip()
        self.session.execute(update(m.Attachment).where(m.Attachment.id == attachment_id).values(**values))


_OUTBOX_RECORD = ("id", "message_id", "channel", "recipient", "payload", "state", "attempts", "next_attempt_at",
                  "last_error", "claimed_by", "uncertain_since", "send_key")
_CLAIM = (f"UPDATE outbox SET state = {_SENDING}, claimed_by = :worker, claimed_at = :now, attempts = attempts + 1 "
          f"WHERE id = {{row}} AND state = {_PENDING} AND next_attempt_at <= :now RETURNING "
          + ", ".join(_OUTBOX_RECORD))
# the next due row, for _CLAIM's {row} (claim_next closes it, with PostgreSQL's row lock)
_DUE = (f"(SELECT id FROM outbox WHERE state = {_PENDING} AND next_attempt_at <= :now "
        "ORDER BY next_attempt_at, id LIMIT 1")


class OutboxRepository(Repository):
    """Outbound messages waiting to go, claimed one at a time so none is sent twice.

    The dispatcher's statements (claim, finish) are plain ones (:mod:`storage.direct`): it runs them for every
    message sent, beside the intake.
    """

    def queue(self, draft: OutboundDraft, now: datetime) -> int:
        """Queue ``draft``: its outbound ``messages`` row and its outbox row, in the caller's transaction; the
        message's id."""
        message_id = TicketRepository(self.direct).add_message(
            ticket_id=draft.ticket_id, account_id=draft.account_id, contact_id=draft.contact_id, direction="out",
            channel=draft.channel, external_id=None, sender=None, recipient=draft.recipient, subject=draft.subject,
            text=draft.text, at=now, auto=draft.auto, staff=draft.staff, purpose=draft.purpose,
            delivery_state=DeliveryState.QUEUED.value, reasons=[], thread_refs=list(draft.references[-1:]),
            created_at=now, attachments=[{"filename": name, "content_type": kind, "size": len(data), "data": data,
                                          "fetched": True} for name, kind, data in draft.files],
        )
        self.enqueue(message_id, draft.channel, draft.recipient, draft.payload(), now, returning=False)
        return message_id

    def files(self, message_id: int) -> list[tuple[str, str, bytes]]:
        """The files an outbound message carries (filename, content type, bytes), in the order queued."""
        rows = self.direct.execute("SELECT filename, content_type, data FROM attachments WHERE message_id = :m "
                                   "ORDER BY id", {"m": message_id}).fetchall()
        return [(r[0] or "attachment", r[1], bytes(r[2] or b"")) for r in rows]

    def enqueue(self, message_id: int, channel: str, recipient: str, payload: dict[str, Any], now: datetime, *,
                returning: bool = True) -> int | None:
        """The outbox row alone, for a message stored already, with its payload as stored (:meth:`queue` writes
        both from one :class:`OutboundDraft`); the row's id (None with ``returning=False``: sent, not waited
        for)."""
        return self.direct.insert(m.Outbox.__table__, {
            "message_id": message_id, "channel": channel, "recipient": recipient, "payload": payload,
            "state": OutboxState.PENDING.value, "attempts": 0, "next_attempt_at": now, "created_at": now,
            "send_key": secrets.token_hex(16),
        }, returning=returning)

    def claim(self, outbox_id: int, worker: str, now: datetime) -> OutboxRecord | None:
        """Move a due pending row to ``sending`` for ``worker``; None when someone else took it (or it is not due:
        a worker with a stale list of due rows must not resend one that another worker put back for a retry)."""
        return self._claim(":id", {"id": outbox_id}, worker, now)

    def claim_next(self, worker: str, now: datetime) -> OutboxRecord | None:
        """Claim the next due row (the longest due first), or None when none is due.

        On PostgreSQL the candidate is locked with ``SKIP LOCKED``, so a second worker takes the next row rather
        than waiting for this one; on SQLite the write transaction admits one claimer at a time.
        """
        lock = "" if self.direct.dialect.name == "sqlite" else " FOR UPDATE SKIP LOCKED"
        return self._claim(f"{_DUE}{lock})", {}, worker, now)

    def _claim(self, row: str, params: dict[str, Any], worker: str, now: datetime) -> OutboxRecord | None:
        direct = self.direct
        found = direct.one(_CLAIM.format(row=row), {
            **params, "worker": worker, "now": direct.value(m.Outbox.__table__, "next_attempt_at", now)})
        if found is None:
            return None
        values = direct.decode(m.Outbox.__table__, _OUTBOX_RECORD, found)
        values["state"] = OutboxState(values["state"])
        return OutboxRecord(**values)

    def get(self, outbox_id: int) -> OutboxRecord:
        row = self.session.get(m.Outbox, outbox_id)
        if row is None:
            raise KeyError(outbox_id)
        self.session.refresh(row)
        return self._record(row)

    def all(self) -> list[OutboxRecord]:
        """Every outbox row, oldest first."""
        return [self._record(r) for r in self.session.scalars(select(m.Outbox).order_by(m.Outbox.id))]

    @staticmethod
    def _record(row: m.Outbox) -> OutboxRecord:
        return OutboxRecord(row.id, row.message_id, row.channel, row.recipient, row.payload, OutboxState(row.state),
                            row.attempts, row.next_attempt_at, row.last_error, row.claimed_by, row.uncertain_since,
                            row.send_key)

    def finish(self, outbox_id: int, state: OutboxState, now: datetime, *, error: str | None = None,
               retry_at: datetime | None = None, attempts: int | None = None,
               uncertain_since: datetime | None = None) -> None:
        """Record an attempt's outcome; ``uncertain_since`` marks a send that may have arrived (kept until sent)."""
        values: dict[str, Any] = {"state": OutboxState(state).value, "last_error": error, "claimed_by": None}
        if uncertain_since is not None:
            values["uncertain_since"] = uncertain_since
        if attempts is not None:
            values["attempts"] = attempts
        if state == OutboxState.SENT:
            values["sent_at"] = now
        if retry_at is not None:
            values["next_attempt_at"] = retry_at
        self.direct.update(m.Outbox.__table__, outbox_id, values)

    def sending(self) -> list[SendingRow]:
        """Rows in ``sending`` now: being sent by a worker, or left so by one that stopped mid-send."""
        d = self.direct
        names = ("id", "claimed_by", "claimed_at", "uncertain_since")
        rows = d.execute(f"SELECT {', '.join(names)} FROM outbox WHERE state = {_SENDING} ORDER BY id").fetchall()
        return [SendingRow(**d.decode(m.Outbox.__table__, names, row)) for row in rows]

    def take_back(self, outbox_id: int, since: datetime | None, now: datetime, error: str) -> bool:
        """A row whose worker stopped while sending it: ``pending`` again, due now, marked ``uncertain_since``
        (the channel is asked before it is sent again; None: it was never handed to the channel); False when it is
        no longer in ``sending``."""
        d = self.direct
        table = m.Outbox.__table__
        return int(d.execute(
            f"UPDATE outbox SET state = {_PENDING}, claimed_by = NULL, next_attempt_at = :now, "
            f"uncertain_since = :since, last_error = :error WHERE id = :id AND state = {_SENDING}",
            {"now": d.value(table, "next_attempt_at", now), "since": d.value(table, "uncertain_since", since),
             "error": error, "id": outbox_id}).rowcount) == 1

    def other_channel_ids(self, outbox_id: int, since: datetime) -> set[str]:
        """The channel ids of the other messages sent to this row's recipient on its channel since ``since``: a
        channel's record with one of them is not this row's message."""
        d = self.direct
        rows = d.execute(
            "SELECT msg.external_id FROM outbox o JOIN messages msg ON msg.recipient = o.recipient "
            "AND msg.channel = o.channel AND msg.direction = 'out' AND msg.id <> o.message_id "
            "WHERE o.id = :id AND msg.external_id IS NOT NULL AND msg.at >= :since",
            {"id": outbox_id, "since": d.value(m.Message.__table__, "at", since)}).fetchall()
        return {str(r[0]) for r in rows}

    def counts(self) -> dict[OutboxState, int]:
        """How many rows are in each state."""
        rows = self.session.execute(select(m.Outbox.state, func.count()).group_by(m.Outbox.state)).all()
        return {OutboxState(state): count for state, count in rows}


class ReminderRepository(Repository):
    """Planned pings to staff (R16); sent exactly once."""

    def plan(self, ticket_id: int, items: Iterable[tuple[str, datetime, bool]]) -> None:
        self.direct.insert_many(m.Reminder.__table__, (
            {"ticket_id": ticket_id, "spec": spec, "due_at": due_at, "escalate": escalate,
             "state": ReminderState.PLANNED.value}
            for spec, due_at, escalate in items
        ))

    def cancel_for(self, ticket_id: int, now: datetime) -> int:
        """Cancel every planned reminder of the ticket; how many."""
        d = self.direct
        return int(d.execute(
            f"UPDATE reminders SET state = {_CANCELLED}, done_at = :now WHERE ticket_id = :ticket AND state = {_PLANNED}",
            {"now": d.value(m.Reminder.__table__, "done_at", now), "ticket": ticket_id}).rowcount)

    def plan_again(self, ticket_id: int, items: Iterable[tuple[str, datetime, bool]]) -> int:
        """Plan reminders again that were cancelled (a response undone); one never planned is planned, one sent
        stays sent (no ping twice). How many are planned now."""
        d = self.direct
        planned = 0
        for spec, due_at, escalate in items:
            moved = d.execute(
                f"UPDATE reminders SET state = {_PLANNED}, due_at = :due, done_at = NULL, claimed_by = NULL, "
                f"claimed_at = NULL WHERE ticket_id = :ticket AND spec = :spec AND state = {_CANCELLED}",
                {"due": d.value(m.Reminder.__table__, "due_at", due_at), "ticket": ticket_id, "spec": spec}).rowcount
            if not moved and d.scalar("SELECT id FROM reminders WHERE ticket_id = :ticket AND spec = :spec",
                                      {"ticket": ticket_id, "spec": spec}) is None:
                self.plan(ticket_id, [(spec, due_at, escalate)])
                moved = 1
            planned += int(moved)
        return planned

    def cancel_deadline_reminders(self, ticket_id: int, now: datetime, prefix: str) -> int:
        """Cancel the ticket's planned reminders of a response deadline (R16): all but those whose spec starts with
        ``prefix`` (the callbacks of missed calls); how many."""
        d = self.direct
        return int(d.execute(
            f"UPDATE reminders SET state = {_CANCELLED}, done_at = :now WHERE ticket_id = :ticket "
            f"AND state = {_PLANNED} AND spec NOT LIKE :prefix",
            {"now": d.value(m.Reminder.__table__, "done_at", now), "ticket": ticket_id, "prefix": f"{prefix}%"},
        ).rowcount)

    def for_ticket(self, ticket_id: int) -> list[ReminderRecord]:
        rows = self.session.scalars(
            select(m.Reminder).where(m.Reminder.ticket_id == ticket_id).order_by(m.Reminder.due_at)
        ).all()
        return [ReminderRecord(r.id, r.ticket_id, r.spec, r.due_at, r.escalate, ReminderState(r.state)) for r in rows]

    def cancel_specs(self, ticket_id: int, prefix: str, due_by: datetime, now: datetime) -> int:
        """Cancel the ticket's planned reminders whose spec starts with ``prefix``, due by ``due_by``; how many."""
        d = self.direct
        return int(d.execute(
            f"UPDATE reminders SET state = {_CANCELLED}, done_at = :now WHERE ticket_id = :ticket "
            f"AND state = {_PLANNED} AND spec LIKE :prefix AND due_at <= :due_by",
            {"now": d.value(m.Reminder.__table__, "done_at", now), "ticket": ticket_id, "prefix": f"{prefix}%",
             "due_by": d.value(m.Reminder.__table__, "due_at", due_by)},
        ).rowcount)

    def missed_call(self, message_id: int) -> tuple[str | None, bool]:
        """The caller of the call stored as ``message_id``, and whether staff wrote on its ticket since the call."""
        d = self.direct
        row = d.one("SELECT sender, ticket_id, at FROM messages WHERE id = :id", {"id": message_id})
        if row is None:
            return None, False
        answered = d.scalar(
            "SELECT count(*) FROM messages WHERE ticket_id = :ticket AND direction = 'out' AND staff IS NOT NULL "
            "AND at >= :at", {"ticket": row[1], "at": row[2]})
        return row[0], bool(answered)

    # -- sending (bot.reminders): claims that only one process wins ------------------------

    def due_ids(self, now: datetime, limit: int) -> list[int]:
        """Planned reminders due at ``now`` in R15 order (the tickets' ``queue_priority``), then by when they fell
        due."""
        d = self.direct
        rows = d.execute(
            "SELECT r.id FROM reminders r JOIN tickets t ON t.id = r.ticket_id "
            f"WHERE r.state = {_PLANNED} AND r.due_at <= :now "
            "ORDER BY t.queue_priority DESC, r.due_at, r.id LIMIT :limit",
            {"now": d.value(m.Reminder.__table__, "due_at", now), "limit": limit},
        ).fetchall()
        return [int(r[0]) for r in rows]

    def claim(self, reminder_id: int, worker: str, now: datetime) -> bool:
        """Move a planned reminder to ``claimed`` for ``worker``; False when another process has it."""
        d = self.direct
        return int(d.execute(
            f"UPDATE reminders SET state = {_CLAIMED}, claimed_by = :worker, claimed_at = :now "
            f"WHERE id = :id AND state = {_PLANNED}",
            {"worker": worker, "now": d.value(m.Reminder.__table__, "claimed_at", now), "id": reminder_id},
        ).rowcount) == 1

    def context(self, reminder_id: int) -> ReminderContext:
        """The reminder with what a staff ping says about its ticket and account."""
        d = self.direct
        names = ("ticket_id", "spec", "escalate", "due_at")
        ticket_names = ("ref", "state", "first_responded_at", "first_response_due", "plan", "subject",
                        "queue_priority", "terms", "response_due", "followup_at")
        row = d.one(
            f"SELECT {d.columns(m.Reminder.__table__, names, 'r')}, "
            f"{d.columns(m.Ticket.__table__, ticket_names, 't')}, a.name, a.staff "
            "FROM reminders r JOIN tickets t ON t.id = r.ticket_id LEFT JOIN accounts a ON a.id = t.account_id "
            "WHERE r.id = :id", {"id": reminder_id})
        if row is None:
            raise KeyError(reminder_id)
        r = d.decode(m.Reminder.__table__, names, row[:4])
        t = d.decode(m.Ticket.__table__, ticket_names, row[4:14])
        return ReminderContext(
            reminder_id=reminder_id, ticket_id=int(r["ticket_id"]), spec=str(r["spec"]), escalate=bool(r["escalate"]),
            due_at=r["due_at"], ref=str(t["ref"]), ticket_state=TicketState(t["state"]),
            first_responded_at=t["first_responded_at"], first_response_due=t["first_response_due"], plan=t["plan"],
            subject=t["subject"], queue_priority=int(t["queue_priority"] or 0), terms=t["terms"], account=row[14],
            account_staff=row[15], response_due=t["response_due"], followup_at=t["followup_at"])

    def release(self, reminder_id: int, claimer: str | None = None) -> int:
        """A claimed reminder back to planned (the notifier failed; with ``claimer``, only while that worker's claim
        holds it: its process died); how many (0 or 1)."""
        mine = "" if claimer is None else " AND claimed_by = :claimer"
        return int(self.direct.execute(
            f"UPDATE reminders SET state = {_PLANNED}, claimed_by = NULL, claimed_at = NULL "
            f"WHERE id = :id AND state = {_CLAIMED}{mine}", {"id": reminder_id, "claimer": claimer}).rowcount)

    def claims(self) -> list[tuple[int, str | None]]:
        """The reminders claimed now, and by whom (a range of the index on state and due_at)."""
        return [(int(rid), by) for rid, by in self.direct.execute(
            f"SELECT id, claimed_by FROM reminders WHERE state = {_CLAIMED}").fetchall()]

    def finish(self, reminder_id: int, state: ReminderState, now: datetime) -> int:
        """Record ``state`` (sent, skipped); returns the reminder's ticket id."""
        d = self.direct
        d.execute("UPDATE reminders SET state = :state, done_at = :now WHERE id = :id",
                  {"state": ReminderState(state).value, "now": d.value(m.Reminder.__table__, "done_at", now),
                   "id": reminder_id})
        return int(d.scalar("SELECT ticket_id FROM reminders WHERE id = :id", {"id": reminder_id}))

    def release_stale(self, before: datetime) -> int:
        """Claims older than ``before`` (their process died): planned again; how many."""
        d = self.direct
        return int(d.execute(
            f"UPDATE reminders SET state = {_PLANNED}, claimed_by = NULL, claimed_at = NULL "
            f"WHERE state = {_CLAIMED} AND claimed_at < :before",
            {"before": d.value(m.Reminder.__table__, "claimed_at", before)},
        ).rowcount)

    def next_due(self) -> datetime | None:
        """When the earliest planned reminder falls due (None: nothing planned); one seek in the index on
        (state, due_at)."""
        d = self.direct
        row = d.one(f"SELECT due_at FROM reminders WHERE state = {_PLANNED} ORDER BY due_at LIMIT 1")
        if row is None:
            return None
        due: datetime = d.decode(m.Reminder.__table__, ("due_at",), row)["due_at"]
        return due

    def count_planned(self) -> int:
        """How many reminders are planned (a count of one range of the same index)."""
        return int(self.direct.scalar(f"SELECT count(*) FROM reminders WHERE state = {_PLANNED}"))

    def planned(self) -> list[ReminderRecord]:
        """Planned reminders in R15 order (the tickets' ``queue_priority``), then by when they fall due."""
        rows = self.session.scalars(
            select(m.Reminder).join(m.Ticket, m.Ticket.id == m.Reminder.ticket_id)
            .where(m.Reminder.state == ReminderState.PLANNED.value)
            .order_by(m.Ticket.queue_priority.desc(), m.Reminder.due_at, m.Reminder.id)
        ).all()
        return [ReminderRecord(r.id, r.ticket_id, r.spec, r.due_at, r.escalate, ReminderState(r.state)) for r in rows]


__all__ = ["CURRENT_QUOTE_SQL", "OPEN_STATES", "AccountRepository", "OutboxRepository", "ReminderRepository", "Thread",
           "TicketRepository", "counter", "raise_counter"]
