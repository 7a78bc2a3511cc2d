"""Plain DBAPI statements (storage.direct): the same rows as the ORM writes, in the same transaction."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from storage import models as m
from storage.database import Database, open_database
from storage.direct import Direct, _for_driver
from storage.repositories import TicketRepository

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


def test_wal_is_checkpointed_in_the_background(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'wal.db'}")
    wal = tmp_path / "wal.db-wal"
    try:
        before = (tmp_path / "wal.db").stat().st_size
        for i in range(1000):
            db.run_direct(lambda d, i=i: TicketRepository(d).add_ticket(**_ticket_values(f"MC-{i}")))
        # pages reach the database file only by a checkpoint, and 1,000 tickets stay below the writers' own checkpoint
        main = tmp_path / "wal.db"
        deadline = time.monotonic() + 10
        while main.stat().st_size < before + 50 * 4096 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert main.stat().st_size >= before + 50 * 4096, "nothing was checkpointed"
        assert wal.exists()
    finally:
        db.dispose()
