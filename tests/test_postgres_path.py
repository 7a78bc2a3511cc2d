"""The intake's hot path on PostgreSQL: few round trips, prepared statements, commits as safe as by default."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from storage.database import Database
from storage.direct import Direct
from storage.webhooks import sync_endpoints
from storage.writer import SerialWriter
from tests.helpers import add_account, contact, pipeline, whatsapp


def _statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements Direct sends from now on (each one round trip)."""
    sent: list[str] = []
    run, run_many = Direct._run, Direct._run_many

    def counted(self: Direct, statement: str, params: Any) -> Any:
        sent.append(statement)
        return run(self, statement, params)

    def counted_many(self: Direct, statement: str, rows: Any) -> None:
        sent.append(statement)
        run_many(self, statement, rows)

    monkeypatch.setattr(Direct, "_run", counted)
    monkeypatch.setattr(Direct, "_run_many", counted_many)
    return sent


@pytest.mark.parametrize("subscribed", [False, True])
def test_a_new_whatsapp_ticket_stores_each_row_with_its_webhook_event_in_one_statement(
        pg_db: Database, monkeypatch: pytest.MonkeyPatch, subscribed: bool) -> None:
    """The message, its acknowledgement and the ticket's opening each write their row, their webhook event and its
    deliveries in one statement (three round trips before), whether an endpoint takes the events or not."""
    if subscribed:
        pg_db.run(lambda s: sync_endpoints(s, {"crm": ["message.created", "ticket.created"]}))
    add_account(pg_db, "Bakkerij Jansen", "licentie", contact("Piet", phone="+31612345678"))
    intake = pipeline(pg_db, "mailcampaigns")
    sent = _statements(monkeypatch)
    result = intake.ingest(whatsapp("SM1", "+31612345678", "De mailing werkt niet"))
    assert result.ticket_ref is not None
    assert not [s for s in sent if s.startswith("INSERT INTO webhook_events")]
    assert len([s for s in sent if s.startswith("WITH new AS (INSERT INTO")]) == 3
    assert len(sent) <= 11, sent  # 14 before

    def events(d: Direct) -> list[tuple[str, int | None]]:
        rows = d.execute("SELECT e.type, e.message_id FROM webhook_events e JOIN webhook_deliveries w "
                         "ON w.event_id = e.id ORDER BY e.id").fetchall()
        return [(str(r[0]), r[1]) for r in rows]

    found = pg_db.read_direct(events)
    if subscribed:  # the inbound message, the acknowledgement, the ticket (the message it opened with)
        assert [t for t, _ in found] == ["message.created", "message.created", "ticket.created"]
        assert found[0][1] == result.message_id and found[2][1] == result.message_id
    else:
        assert found == []


def test_statements_are_prepared_and_commits_wait_for_the_wal_flush(pg_db: Database) -> None:
    """psycopg prepares a statement on its fifth use on a connection: the intake's statements are prepared after a
    few messages; ``synchronous_commit`` stays at PostgreSQL's safe default."""
    add_account(pg_db, "Bakkerij Jansen", "licentie", contact("Piet", phone="+31612345678"))
    intake = pipeline(pg_db, "mailcampaigns")
    with pg_db.group():  # one connection for all of them
        for i in range(8):
            intake.ingest(whatsapp(f"SM{i}", "+31612345678", f"Bericht {i}"))
        prepared = pg_db.run_direct(lambda d: [str(r[0]) for r in d.execute(
            "SELECT statement FROM pg_prepared_statements").fetchall()])
        synchronous = pg_db.run_direct(lambda d: d.scalar("SHOW synchronous_commit"))
    assert any("FROM messages" in s for s in prepared), prepared
    assert synchronous == "on"


def test_a_conversation_another_worker_is_deciding_waits_outside_the_group_and_the_group_goes_on(
        pg_db: Database) -> None:
    """Inside a group the conversation's lock is only tried: a message whose conversation another worker holds
    does not hold up the others of the group (nor deadlock with that worker's group); it runs again alone."""
    add_account(pg_db, "Bakkerij Jansen", "licentie", contact("Piet", phone="+31612345678"),
                contact("Anna", phone="+31687654321"))
    intake = pipeline(pg_db, "mailcampaigns")
    other = pg_db.engine.raw_connection()  # another worker, deciding Piet's conversation
    cursor = other.cursor()
    cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '/thread/whatsapp/"
                   "+31612345678', 0))")
    writer = SerialWriter(group=pg_db.group, again=pg_db.retry_alone)
    try:
        gate = threading.Event()
        writer.submit(gate.wait)
        piet = writer.submit(intake.ingest, whatsapp("SM1", "+31612345678", "Vraag van Piet"))
        anna = writer.submit(intake.ingest, whatsapp("SM2", "+31687654321", "Vraag van Anna"))
        gate.set()
        assert anna.result(timeout=10).ticket_ref is not None  # committed with the group, Piet's waiting
        assert not piet.done()
        other.rollback()  # the other worker is done
        assert piet.result(timeout=10).ticket_ref is not None
    finally:
        other.close()
        writer.shutdown()
