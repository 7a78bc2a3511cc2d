"""Plain DBAPI statements (storage.direct): the same rows as the ORM writes, in the same transaction."""

from __future__ import annotations

import threading
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.adapt import Transformer
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError

from bot.mail import mail_reply_guards
from storage import models as m
from storage.database import WAL_CHECKPOINT_PAGES, Database, DuplicateError, StorageError, open_database
from storage.direct import Direct, _codec, _for_driver, _frozen_json
from storage.records import TicketState
from storage.repositories import TicketRepository
from tests.helpers import email

AT = datetime(2026, 11, 22, 9, 30, 15, 123456, tzinfo=timezone.utc)


def test_placeholders_rewritten_for_pyformat_drivers() -> None:
    sql = "SELECT a FROM t WHERE b = :b AND c::text = :c_2 AND d LIKE '5%'"
    assert _for_driver(sql, "named") == sql
    assert _for_driver(sql, "pyformat") == "SELECT a FROM t WHERE b = %(b)s AND c::text = %(c_2)s AND d LIKE '5%%'"


def _ticket_values(ref: str) -> dict[str, object]:
    return {
        "ref": ref, "channel": "email", "thread_key": "piet@example.nl", "subject": "Héllo ✓", "state": "open",
        "terms": {"plan": {"name": "licentie"}, "rate": "130.00"}, "received_at": AT,
        "first_response_due": AT + timedelta(hours=24), "decision": "new_ticket", "reasons": ["één", "two"],
        "created_at": AT, "updated_at": AT,
    }


def test_direct_rows_read_back_through_the_orm_like_orm_rows(db: Database) -> None:
    def write(session: object) -> tuple[int, int]:
        from sqlalchemy.orm import Session
        assert isinstance(session, Session)
        orm = m.Ticket(**_ticket_values("MC-1"))
        session.add(orm)
        session.flush()
        direct_id = TicketRepository(session).add_ticket(**_ticket_values("MC-2"))
        return orm.id, direct_id

    orm_id, direct_id = db.run(write)  # type: ignore[arg-type]

    def read(session: object) -> tuple[m.Ticket, m.Ticket]:
        from sqlalchemy.orm import Session
        assert isinstance(session, Session)
        a, b = (session.get(m.Ticket, i) for i in (orm_id, direct_id))
        assert a is not None and b is not None
        return a, b

    a, b = db.run(read)  # type: ignore[arg-type]
    for column in m.Ticket.__table__.columns:
        if column.name not in ("id", "ref"):
            assert getattr(a, column.name) == getattr(b, column.name), column.name
    assert b.received_at == AT and b.received_at.tzinfo is not None
    assert b.kind == "undetermined" and b.pauses == [] and b.queue_priority == 0  # column defaults applied
    # and the direct read gives the same record as the ORM path
    records = db.run(lambda s: (TicketRepository(s).get(direct_id), TicketRepository(s).by_ref("MC-2")))
    assert records[0] == records[1]


def test_run_direct_is_one_transaction(db: Database) -> None:
    def fail(direct: Direct) -> None:
        TicketRepository(direct).add_ticket(**_ticket_values("MC-9"))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        db.run_direct(fail)
    assert db.run(lambda s: s.scalars(select(m.Ticket)).all()) == []
    db.run_direct(lambda d: TicketRepository(d).add_ticket(**_ticket_values("MC-9")))
    assert [t.ref for t in db.run(lambda s: s.scalars(select(m.Ticket)).all())] == ["MC-9"]


def test_driver_errors_are_sqlalchemy_errors(db: Database) -> None:
    db.run_direct(lambda d: TicketRepository(d).add_ticket(**_ticket_values("MC-5")))
    with pytest.raises(IntegrityError):
        db.run_direct(lambda d: TicketRepository(d).add_ticket(**_ticket_values("MC-5")))


def test_a_message_stored_twice_is_a_duplicate_error_of_storage(db: Database) -> None:
    """The unique key on (channel, direction, external id) is told as storage's own error; another constraint's
    violation is not a duplicate."""
    def store(d: Direct) -> int:
        return TicketRepository(d).add_message(direction="in", channel="email", external_id="<twice@jansen>",
                                               sender="piet@example.nl", text="hallo", at=AT, created_at=AT,
                                               delivery_state="received")

    db.run_direct(store)
    with pytest.raises(DuplicateError, match="twice@jansen") as raised:
        db.run_direct(store)
    assert isinstance(raised.value, StorageError) and isinstance(raised.value.__cause__, IntegrityError)
    with pytest.raises(IntegrityError) as other:
        db.run_direct(lambda d: TicketRepository(d).add_message(direction="in", channel="email", text="x", at=AT,
                                                                created_at=AT))  # without its delivery state
    assert not isinstance(other.value, DuplicateError)


def test_records_carry_the_state_enums(db: Database) -> None:
    ticket_id = db.run_direct(lambda d: TicketRepository(d).add_ticket(**_ticket_values("MC-8")))
    for read in (lambda s: TicketRepository(s).get(ticket_id), lambda s: TicketRepository(s).by_ref("MC-8")):
        assert db.run(read).state is TicketState.OPEN  # type: ignore[union-attr]
    assert [t.state for t in db.run(lambda s: TicketRepository(s).queue(TicketState.OPEN))] == [TicketState.OPEN]


def test_ping_answers_and_raises_when_the_database_cannot(db: Database, tmp_path: Path) -> None:
    db.ping()
    gone = Database(f"sqlite:///{tmp_path / 'no-such-folder' / 'slabot.db'}")
    try:
        with pytest.raises(OperationalError):
            gone.ping()
    finally:
        gone.dispose()


def test_update_converts_values_and_reports_rows(db: Database) -> None:
    ticket_id = db.run_direct(lambda d: TicketRepository(d).add_ticket(**_ticket_values("MC-7")))
    later = AT + timedelta(days=2)
    changed = db.run_direct(lambda d: d.update(m.Ticket.__table__, ticket_id, {
        "state": "waiting", "waiting_since": later, "pauses": [[later.isoformat(), None]]}))
    assert changed == 1
    record = db.run(lambda s: TicketRepository(s).get(ticket_id))
    assert record.state == "waiting" and record.waiting_since == later and record.pauses == ((later, None),)
    assert db.run_direct(lambda d: d.update(m.Ticket.__table__, 999_999, {"state": "open"})) == 0
    with pytest.raises(KeyError):
        db.run_direct(lambda d: d.update(m.Ticket.__table__, ticket_id, {"no_such_column": 1}))


def test_decimal_and_date_columns(db: Database) -> None:
    def write(d: Direct) -> int:
        return d.insert(m.Account.__table__, {"name": "Bakkerij", "plan": "licentie", "monthly_hours": Decimal("2.50"),
                                              "templates_delivered": date(2026, 11, 1), "created_at": AT,
                                              "updated_at": AT})

    account_id = db.run_direct(write)
    row = db.run(lambda s: s.get(m.Account, account_id))
    assert row.monthly_hours == Decimal("2.50") and row.templates_delivered == date(2026, 11, 1)
    assert row.language == "nl"  # the column default


def test_sqlite_commits_are_synced_unless_configured_otherwise(tmp_path: Path) -> None:
    """synchronous=FULL by default, on the plain-statement path and in ORM sessions alike."""
    for setting, expected in ((None, 2), ("normal", 1), ("full", 2)):
        url = f"sqlite:///{tmp_path / f'{setting}.db'}"
        db = open_database(url) if setting is None else open_database(url, synchronous=setting)
        try:
            assert db.run_direct(lambda d: d.execute("PRAGMA synchronous").fetchone()[0]) == expected
            with db.session() as session:
                assert session.connection().exec_driver_sql("PRAGMA synchronous").scalar() == expected
        finally:
            db.dispose()
    with pytest.raises(StorageError, match="synchronous"):
        Database(f"sqlite:///{tmp_path / 'x.db'}", synchronous="off")


def test_channel_queries_use_their_partial_indexes(tmp_path: Path) -> None:
    """The queries a partial index serves name it in SQLite's plan: one that stopped repeating the index's
    condition word for word would read the whole table on every WhatsApp message or e-mail."""
    db = open_database(f"sqlite:///{tmp_path / 'plans.db'}")
    try:
        def plans(d: Direct) -> list[str]:
            connection = d._cursor.connection
            seen: list[str] = []
            connection.set_trace_callback(seen.append)
            try:
                TicketRepository(d).open_ticket_for_key("whatsapp", "+31612345678")
                TicketRepository(d).last_whatsapp_at("+31612345678")
                mail_reply_guards(5)[0](d, email("<a@x>", "piet@bakkerij-jansen.nl", "Hallo"))
            finally:
                connection.set_trace_callback(None)
            return [" ".join(str(row[-1]) for row in d.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall())
                    for sql in seen if sql.lstrip().upper().startswith("SELECT")]

        found = db.run_direct(plans)
        assert len(found) == 3
        for plan, index in zip(found, ("ix_tickets_thread_key", "ix_messages_sender", "ix_messages_recipient")):
            assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan, plan
        with pytest.raises(ValueError, match="email"):
            db.run_direct(lambda d: TicketRepository(d).open_ticket_for_key("email", "piet@bakkerij-jansen.nl"))
    finally:
        db.dispose()


def test_a_commit_stands_when_the_checkpointer_cannot_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """The background checkpoint starts after the first commit; a thread that cannot start must not turn that
    committed transaction into an error (its caller would store the message again)."""
    db = open_database(f"sqlite:///{tmp_path / 'nothread.db'}")

    class NoThread(threading.Thread):
        def start(self) -> None:
            raise RuntimeError("can't start new thread")

    try:
        with monkeypatch.context() as patched:
            patched.setattr(threading, "Thread", NoThread)
            ticket_id = db.run_direct(lambda d: TicketRepository(d).add_ticket(**_ticket_values("MC-1")))
        assert db.run_direct(lambda d: TicketRepository(d).id_for_ref("MC-1")) == ticket_id
        assert "WAL checkpointer not started" in caplog.text
    finally:
        db.dispose()


def test_wal_is_checkpointed_in_the_background(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'wal.db'}")
    wal = tmp_path / "wal.db-wal"
    try:
        before = (tmp_path / "wal.db").stat().st_size
        for i in range(100):
            db.run_direct(lambda d, i=i: TicketRepository(d).add_ticket(**_ticket_values(f"MC-{i}")))
        # pages reach the database file only by a checkpoint, and 100 tickets stay below the writers' own
        # checkpoint (WAL_CHECKPOINT_PAGES frames in the WAL)
        assert wal.stat().st_size < WAL_CHECKPOINT_PAGES * 4096
        main = tmp_path / "wal.db"
        deadline = time.monotonic() + 10
        while main.stat().st_size < before + 10 * 4096 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert main.stat().st_size >= before + 10 * 4096, "nothing was checkpointed"
        assert wal.exists()
    finally:
        db.dispose()


_DIALECTS = (sqlite.dialect(), postgresql.psycopg.dialect())


@settings(deadline=None)
@given(st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 30),
                    timezones=st.sampled_from([timezone.utc, ZoneInfo("Europe/Amsterdam"),
                                               timezone(timedelta(hours=-9, minutes=-30))])))
def test_datetime_shortcut_writes_what_sqlalchemy_writes(instant: datetime) -> None:
    for dialect in _DIALECTS:
        impl = m.Ticket.__table__.c.received_at.type.dialect_impl(dialect)
        slow = impl.bind_processor(dialect)
        fast = _codec(m.Ticket.__table__, dialect).binds["received_at"]
        assert fast is not slow  # the shortcut is taken
        assert fast(instant) == slow(instant)
        assert fast(instant) == slow(instant)  # the remembered last value too
        with pytest.raises(ValueError):
            fast(instant.replace(tzinfo=None))


@pytest.mark.parametrize("value", [{"plan": {"name": "licentie", "rates": ["130.00", 1.5]}, "x": None}, [], {},
                                   ["één", "<id@host>", {"k": [True, False]}], [[1, 2], []]])
def test_json_shortcut_writes_what_sqlalchemy_writes(value: object) -> None:
    dialect = _DIALECTS[0]
    impl = m.Ticket.__table__.c.terms.type.dialect_impl(dialect)
    fast = _codec(m.Ticket.__table__, dialect).binds["terms"]
    assert fast(value) == impl.bind_processor(dialect)(value)
    # PostgreSQL: psycopg's wrapper, with the C encoder made once; the same text goes to the server, frozen too
    dialect = _DIALECTS[1]
    impl = m.Ticket.__table__.c.terms.type.dialect_impl(dialect)
    slow, fast = impl.bind_processor(dialect), _codec(m.Ticket.__table__, dialect).binds["terms"]
    assert fast is not slow  # the shortcut is taken
    sent = Transformer().as_literal
    assert sent(fast(value)) == sent(slow(value)) == sent(_frozen_json(fast(value)))


def test_bound_value_is_stored_as_converted_once(db: Database) -> None:
    terms = {"plan": {"name": "licentie"}, "rate": "130.00"}

    def write(d: Direct) -> list[int]:
        stored = d.bound(m.Ticket.__table__, "terms", terms)
        assert d.bound(m.Ticket.__table__, "ref", "MC-1") == "MC-1"  # nothing to convert: the value itself
        return [TicketRepository(d).add_ticket(**{**_ticket_values(f"MC-{i}"), "terms": stored}) for i in range(2)]

    ids = db.run_direct(write)
    assert [db.run(lambda s, i=i: s.get(m.Ticket, i)).terms for i in ids] == [terms, terms]


def test_inserted_ids_and_many_rows(db: Database) -> None:
    def write(d: Direct) -> tuple[list[int], list[int]]:
        ticket = TicketRepository(d).add_ticket(**_ticket_values("MC-3"))
        messages = [TicketRepository(d).add_message(
            ticket_id=ticket, direction="in", channel="email", external_id=f"<{i}@x>", at=AT, delivery_state="received",
            created_at=AT, attachments=[{"filename": f"{i}-{j}.txt", "content_type": "text/plain", "data": b"x"}
                                        for j in range(2)]) for i in range(3)]
        with pytest.raises(ValueError):
            d.insert_many(m.Attachment.__table__, [{"message_id": messages[0], "content_type": "a"},
                                                   {"content_type": "a", "message_id": messages[0]}])
        return [ticket], messages

    tickets, messages = db.run_direct(write)
    rows = db.run(lambda s: [(a.message_id, a.filename) for a in s.scalars(select(m.Attachment).order_by(m.Attachment.id))])
    assert rows == [(mid, f"{i}-{j}.txt") for i, mid in enumerate(messages) for j in range(2)]
    assert db.run(lambda s: [t.ref for t in s.scalars(select(m.Ticket).where(m.Ticket.id.in_(tickets)))]) == ["MC-3"]
