"""The intake's hot path on PostgreSQL: few round trips, prepared statements, commits as safe as by default."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from sqlalchemy.exc import IntegrityError

from bot.intake import Outcome
from storage.database import Database
from storage.direct import Direct
from storage import models as m
from storage.repositories import _STORED_AS_SQL, TicketRepository
from storage.webhooks import sync_endpoints
from storage.wire import Wire
from storage.writer import SerialWriter
from tests.helpers import add_account, contact, downgrade, end_backends, pipeline, whatsapp


def _statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements that reach the driver from now on (executemany: once per row)."""
    sent: list[str] = []
    execute, execute_many = psycopg.Cursor.execute, psycopg.Cursor.executemany

    def counted(self: psycopg.Cursor[Any], query: Any, params: Any = None, **kwargs: Any) -> Any:
        sent.append(str(query))
        return execute(self, query, params, **kwargs)

    def counted_many(self: psycopg.Cursor[Any], query: Any, rows: Any, **kwargs: Any) -> None:
        rows = list(rows)
        sent.extend([str(query)] * len(rows))
        execute_many(self, query, rows, **kwargs)

    send = Wire.send

    def counted_send(self: Wire, statement: str, params: Any) -> Any:
        sent.append(statement)
        return send(self, statement, params)

    monkeypatch.setattr(psycopg.Cursor, "execute", counted)
    monkeypatch.setattr(psycopg.Cursor, "executemany", counted_many)
    monkeypatch.setattr(Wire, "send", counted_send)
    return sent


def _round_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The round trips of each transaction Direct ends from now on (its commit the last of them)."""
    trips: list[int] = []
    commit = Direct.commit

    def counted(self: Direct) -> None:
        commit(self)
        trips.append(self.round_trips)
        self.round_trips = 0

    monkeypatch.setattr(Direct, "commit", counted)
    return trips


@pytest.mark.parametrize("subscribed", [False, True])
def test_a_new_whatsapp_ticket_stores_each_row_with_its_webhook_event_in_one_statement(
        pg_db: Database, monkeypatch: pytest.MonkeyPatch, subscribed: bool) -> None:
    """The message, its acknowledgement and the ticket's opening each write their row, their webhook event and its
    deliveries in one statement (three round trips before), whether an endpoint takes the events or not."""
    if subscribed:
        pg_db.run(lambda s: sync_endpoints(s, {"crm": ["message.created", "ticket.created"]}))
    add_account(pg_db, "Bakkerij Jansen", "licentie", contact("Piet", phone="+31612345678"))
    intake = pipeline(pg_db, "mailcampaigns")
    intake.ingest(whatsapp("SM0", "+31699999999", "Warming up"))  # a connection made and held, a number taken
    sent = _statements(monkeypatch)
    result = intake.ingest(whatsapp("SM1", "+31612345678", "De mailing werkt niet"))
    assert result.ticket_ref is not None
    assert not [s for s in sent if s.startswith("INSERT INTO webhook_events")]
    assert len([s for s in sent if s.startswith("WITH new AS (INSERT INTO")]) == 3
    # BEGIN, the lock, the reads (the ids and the ticket number reserved with them), the rows (the reminders in
    # one), COMMIT; before: the pool's check and 14 more, BEGIN and COMMIT not among them (each reminder one), and
    # then the ticket number on its own
    assert len(sent) <= 12, sent

    def events(d: Direct) -> list[tuple[str, int | None]]:
        rows = d.execute("SELECT e.type, e.message_id FROM webhook_events e JOIN webhook_deliveries w "
                         "ON w.event_id = e.id ORDER BY e.id").fetchall()
        return [(str(r[0]), r[1]) for r in rows]

    found = pg_db.read_direct(events)[-3:]  # the warm-up's before them
    if subscribed:  # the inbound message, the acknowledgement, the ticket (the message it opened with)
        assert [t for t, _ in found] == ["message.created", "message.created", "ticket.created"]
        assert found[0][1] == result.message_id and found[2][1] == result.message_id
    else:
        assert found == []


def test_a_new_ticket_a_reply_and_a_duplicate_each_take_two_round_trips(pg_db: Database,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """On a pipelined connection a new ticket waits for the server twice: for what the decision reads (with the ids
    its rows take and its ticket number), and for the COMMIT that takes its rows along (once per statement before:
    11 to 14 times; three times while the ticket number had a round trip of its own).
    A reply waits for its reads (its ticket's open quote among them) and its commit; a duplicate for its reads and
    its commit. Every row is there afterwards."""
    add_account(pg_db, "Bakkerij Jansen", "licentie", contact("Piet", phone="+31612345678"))
    intake = pipeline(pg_db, "mailcampaigns")
    trips = _round_trips(monkeypatch)
    intake.ingest(whatsapp("SM0", "+31699999999", "Warming up"))  # a connection made and held
    del trips[:]
    first = intake.ingest(whatsapp("SM1", "+31612345678", "De mailing werkt niet"))
    again = intake.ingest(whatsapp("SM1", "+31612345678", "De mailing werkt niet"))
    reply = intake.ingest(whatsapp("SM2", "+31612345678", "Nog een vraag"))
    assert (first.outcome, again.outcome, reply.outcome) == (Outcome.NEW_TICKET, Outcome.DUPLICATE, Outcome.REPLY)
    assert trips == [2, 2, 2], trips

    def stored(d: Direct) -> tuple[int, ...]:
        row = d.one("SELECT (SELECT count(*) FROM tickets), (SELECT count(*) FROM messages WHERE direction = 'in'), "
                    "(SELECT count(*) FROM outbox), (SELECT count(*) FROM reminders), "
                    "(SELECT count(*) FROM events WHERE kind = 'ticket_opened')")
        assert row is not None
        return tuple(int(v) for v in row)

    tickets, inbound, outbox, reminders, opened = pg_db.read_direct(stored)
    assert (tickets, inbound, outbox, opened) == (2, 3, 2, 2)
    assert reminders > 0


def _end_connection(pg_db: Database) -> int:
    """PostgreSQL ends the connection ``pg_db`` holds between transactions (as its restart would); its pid."""
    pid = int(pg_db.read_direct(lambda d: d.scalar("SELECT pg_backend_pid()")))
    assert end_backends(pg_db.engine.url.render_as_string(hide_password=False), "pid = :pid", {"pid": pid}) == 1
    return pid


def test_a_read_and_a_message_on_a_held_connection_the_server_ended_run_again_on_a_new_one(
        pg_db: Database) -> None:
    """A held connection that PostgreSQL ended while it was idle (a restart ends them all) shows it only when it is
    used. What failed on it before its COMMIT was sent has not been committed: it runs once more on a new
    connection instead of failing (a read asked before a send, a message of the intake), and is stored once."""
    add_account(pg_db, "Bakkerij Jansen", "licentie", contact("Piet", phone="+31612345678"))
    intake = pipeline(pg_db, "mailcampaigns")
    ended = _end_connection(pg_db)
    assert pg_db.read_direct(lambda d: d.scalar("SELECT pg_backend_pid()")) != ended
    _end_connection(pg_db)
    assert intake.ingest(whatsapp("SM1", "+31612345678", "De mailing werkt niet")).outcome is Outcome.NEW_TICKET
    _end_connection(pg_db)
    assert intake.ingest(whatsapp("SM1", "+31612345678", "De mailing werkt niet")).outcome is Outcome.DUPLICATE
    assert pg_db.read_direct(lambda d: d.one(
        "SELECT (SELECT count(*) FROM tickets), (SELECT count(*) FROM messages WHERE direction = 'in')")) == (1, 1)


def test_a_ticket_number_taken_along_by_a_message_that_opened_no_ticket_is_the_next_new_tickets(
        pg_db: Database) -> None:
    """A message's first reads take the next ticket number along (no round trip of its own for it). A message that
    opens no ticket (here a reply, then a duplicate) leaves it for the next new ticket: the numbers stay without
    gaps, one taken at a time. Another worker takes its own."""
    add_account(pg_db, "Bakkerij Jansen", "licentie", contact("Piet", phone="+31612345678"),
                contact("Anna", phone="+31687654321"), contact("Kees", phone="+31611111111"))
    intake = pipeline(pg_db, "mailcampaigns")

    def last(d: Direct) -> int:
        return int(d.scalar("SELECT last_value FROM ticket_numbers"))

    refs = [intake.ingest(whatsapp("SM1", "+31612345678", "De mailing werkt niet")).ticket_ref]
    assert intake.ingest(whatsapp("SM2", "+31612345678", "Nog een vraag")).outcome is Outcome.REPLY
    assert pg_db.read_direct(last) == 10002  # taken along by the reply's reads, kept
    assert intake.ingest(whatsapp("SM2", "+31612345678", "Nog een vraag")).outcome is Outcome.DUPLICATE
    refs.append(intake.ingest(whatsapp("SM3", "+31687654321", "Vraag van Anna")).ticket_ref)
    assert pg_db.read_direct(last) == 10002  # the duplicate took none: one was kept
    other = Database(pg_db.url)  # another worker
    try:
        refs.append(pipeline(other, "mailcampaigns").ingest(whatsapp("SM4", "+31611111111", "Vraag")).ticket_ref)
    finally:
        other.dispose()
    assert refs == ["MC-10001", "MC-10002", "MC-10003"]


def test_a_ticket_number_whose_reference_exists_already_is_used_up_not_given_back(pg_db: Database) -> None:
    """A sequence behind the rows (a restore, a restart of the sequence) gives a number whose reference exists: that
    message fails on the unique reference, and its number is used up, not given back for the next ticket to fail
    on again. The messages after it get the next numbers."""
    people = ["+31612345678", "+31687654321", "+31611111111", "+31622222222"]
    add_account(pg_db, "Bakkerij Jansen", "licentie", *[contact(f"Klant {i}", phone=p) for i, p in enumerate(people)])
    intake = pipeline(pg_db, "mailcampaigns")
    assert intake.ingest(whatsapp("SM0", people[0], "Vraag")).ticket_ref == "MC-10001"
    pg_db.run_direct(lambda d: d.execute("ALTER SEQUENCE ticket_numbers RESTART WITH 10001"))
    with pytest.raises(IntegrityError, match="uq_tickets_ref"):
        intake.ingest(whatsapp("SM1", people[1], "Vraag"))
    refs = [intake.ingest(whatsapp(f"SM{i}", p, "Vraag")).ticket_ref for i, p in enumerate(people[1:], start=1)]
    assert refs == ["MC-10002", "MC-10003", "MC-10004"]


def test_an_error_of_a_statement_not_waited_for_rolls_back_the_whole_message(pg_db: Database,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A row that fails after it was sent (here the acknowledgement's outbox row, refused by a check) fails the
    message's transaction at its commit: nothing of the message is stored, and the error is SQLAlchemy's, as
    when each statement was waited for."""
    add_account(pg_db, "Bakkerij Jansen", "licentie", contact("Piet", phone="+31612345678"))
    intake = pipeline(pg_db, "mailcampaigns")
    pg_db.run_direct(lambda d: d.execute("ALTER TABLE outbox ADD CONSTRAINT refuse_all CHECK (attempts < 0) "
                                         "NOT VALID"))
    with pytest.raises(IntegrityError):
        intake.ingest(whatsapp("SM1", "+31612345678", "De mailing werkt niet"))
    pg_db.run_direct(lambda d: d.execute("ALTER TABLE outbox DROP CONSTRAINT refuse_all"))
    counts = pg_db.read_direct(lambda d: d.one("SELECT (SELECT count(*) FROM tickets), (SELECT count(*) FROM messages)"))
    assert counts == (0, 0)
    assert intake.ingest(whatsapp("SM1", "+31612345678", "De mailing werkt niet")).outcome == Outcome.NEW_TICKET


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


def _grouped(pg_db: Database, intake: Any, messages: list[Any]) -> list[Any]:
    """``messages`` ingested on a writer in one group (queued behind a gate, so that they go together); each one's
    result, or its exception."""
    writer = SerialWriter(group=pg_db.group, again=pg_db.retry_alone)
    try:
        gate = threading.Event()
        writer.submit(gate.wait)
        futures = [writer.submit(intake.ingest, msg) for msg in messages]
        gate.set()
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result(timeout=20))
            except Exception as exc:  # noqa: BLE001 - the test looks at it
                outcomes.append(exc)
        return outcomes
    finally:
        writer.shutdown()


def test_in_a_group_each_message_waits_once_its_writes_going_with_the_next_ones_reads(
        pg_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the writer (a group of messages in one transaction, group commit) a message waits for the server once:
    for its reads, which take the writes of the message before along; the COMMIT takes the last one's (before: each
    message also waited for its own writes at its end)."""
    people = [f"+3161234{i:04d}" for i in range(6)]
    add_account(pg_db, "Bakkerij Jansen", "licentie", *[contact(f"Klant {i}", phone=p) for i, p in enumerate(people)])
    intake = pipeline(pg_db, "mailcampaigns")
    trips = _round_trips(monkeypatch)
    intake.ingest(whatsapp("SM0", "+31699999999", "Warming up"))  # a connection made and held
    del trips[:]
    results = _grouped(pg_db, intake, [whatsapp(f"SM{i + 1}", p, f"Vraag {i}") for i, p in enumerate(people)])
    assert [r.outcome for r in results] == [Outcome.NEW_TICKET] * 6
    # one per message and one for each group's COMMIT (the writer may take them in more than one group; before:
    # two per message)
    assert sum(trips) == 6 + len(trips), trips


def test_a_write_that_fails_after_its_message_went_on_breaks_the_group_and_each_message_runs_again_alone(
        pg_db: Database) -> None:
    """A message's writes in a group are waited for with the next message's reads. When one of them fails (here a
    check refuses the second message's acknowledgement), the group is not committed: every message runs again in
    a transaction of its own, the failing one gets its own error, the others are stored once."""
    people = ["+31612345678", "+31687654321", "+31611111111"]
    add_account(pg_db, "Bakkerij Jansen", "licentie", *[contact(f"Klant {i}", phone=p) for i, p in enumerate(people)])
    intake = pipeline(pg_db, "mailcampaigns")
    pg_db.run_direct(lambda d: d.execute(f"ALTER TABLE outbox ADD CONSTRAINT refuse_one CHECK (recipient <> "
                                         f"'{people[1]}') NOT VALID"))
    results = _grouped(pg_db, intake, [whatsapp(f"SM{i}", p, f"Vraag {i}") for i, p in enumerate(people)])
    assert results[0].outcome is Outcome.NEW_TICKET and results[2].outcome is Outcome.NEW_TICKET
    assert isinstance(results[1], IntegrityError) and "refuse_one" in str(results[1])

    def stored(d: Direct) -> list[tuple[str, int]]:
        rows = d.execute("SELECT sender, count(*) FROM messages WHERE direction = 'in' GROUP BY sender "
                         "ORDER BY sender").fetchall()
        return [(str(r[0]), int(r[1])) for r in rows]

    assert pg_db.read_direct(stored) == sorted([(people[0], 1), (people[2], 1)])
    # the numbers the uncommitted group's tickets took went back for the runs alone: no gap
    refs = pg_db.read_direct(lambda d: sorted(str(r[0]) for r in d.execute("SELECT ref FROM tickets").fetchall()))
    assert refs == ["MC-10001", "MC-10002"]


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
        anna_ref = anna.result(timeout=10).ticket_ref  # committed with the group, Piet's waiting
        assert not piet.done()
        other.rollback()  # the other worker is done
        piet_ref = piet.result(timeout=10).ticket_ref
        # the number Piet's reads took along in the group, before his lock was refused, is not lost
        assert sorted([anna_ref, piet_ref]) == ["MC-10001", "MC-10002"]
    finally:
        other.close()
        writer.shutdown()


def test_a_worker_takes_a_ticket_number_while_another_has_one_not_yet_committed(pg_db: Database) -> None:
    """Two workers open tickets at the same time: the second does not wait for the first one's commit to get its
    number (a counter row would be locked until then: every new ticket of every worker in turn). The numbers stay
    unique and rising, and go on from those given before."""
    add_account(pg_db, "Bakkerij Jansen", "licentie", contact("Piet", phone="+31612345678"),
                contact("Anna", phone="+31687654321"))
    intake = pipeline(pg_db, "mailcampaigns")
    first = intake.ingest(whatsapp("SM1", "+31612345678", "De mailing werkt niet"))
    other = Database(pg_db.url)  # another worker, its ticket's transaction still open
    started, release = threading.Event(), threading.Event()

    def open_slowly(d: Direct) -> str:
        ref = TicketRepository(d).next_ref("MC")
        started.set()
        release.wait(10)
        return ref

    try:
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(other.run_direct, open_slowly)
            assert started.wait(10)
            second = pool_result(lambda: intake.ingest(whatsapp("SM2", "+31687654321", "Vraag van Anna")), 5)
            release.set()
            slow_ref = held.result(10)
    finally:
        release.set()
        other.dispose()
    assert first.ticket_ref == "MC-10001"
    assert second.ticket_ref is not None and slow_ref == "MC-10002" and second.ticket_ref == "MC-10003"


def pool_result(work: Any, seconds: float) -> Any:
    """``work()`` on a thread of its own, given ``seconds`` at most (a TimeoutError does not wait for it)."""
    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(work).result(seconds)
    finally:
        pool.shutdown(wait=False)


def test_ticket_numbers_go_on_from_the_counters_of_an_earlier_slabot(pg_db: Database) -> None:
    """A database whose tickets were numbered by the counters (before migration 0019) goes on after their
    highest number; going back down leaves the counters after the last number the sequence gave."""
    downgrade(pg_db, "0018")
    pg_db.run_direct(lambda d: d.execute("INSERT INTO counters (name, value) VALUES ('ticket:MC', 10041), "
                                         "('ticket:OLD', 10007)"))
    pg_db.upgrade()
    add_account(pg_db, "Bakkerij Jansen", "licentie", contact("Piet", phone="+31612345678"))
    assert pipeline(pg_db, "mailcampaigns").ingest(whatsapp("SM1", "+31612345678", "Vraag")).ticket_ref == "MC-10042"
    downgrade(pg_db, "0018")
    assert pg_db.run_direct(lambda d: d.scalar("SELECT value FROM counters WHERE name = 'ticket:MC'")) == 10042


def test_the_duplicate_check_reads_its_own_entries_on_a_table_without_statistics(pg_db: Database) -> None:
    """The duplicate check asks for a message id in both directions. On a table PostgreSQL has no statistics of
    (a new database; autovacuum off) it read every message of the channel with the direction second in the unique
    index; with the id second (migration 0020) it reads the few pages down to its own entries."""
    add_account(pg_db, "Bakkerij Jansen", "licentie", contact("Piet", phone="+31612345678"))
    pipeline(pg_db, "mailcampaigns").ingest(whatsapp("SM0", "+31612345678", "De mailing werkt niet"))
    columns = ", ".join(c.name for c in m.Message.__table__.columns if c.name not in ("id", "external_id"))
    pg_db.run_direct(lambda d: d.execute(
        f"INSERT INTO messages ({columns}, external_id) SELECT {columns}, 'SM' || g || 'x' FROM messages, "
        "generate_series(1, 4000) g"))

    def plan(d: Direct) -> dict[str, Any]:
        sql = _STORED_AS_SQL.replace(":channel", "'whatsapp'").replace(":external_id", "'SM2000x'")
        return d.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}").fetchone()[0][0]  # type: ignore[index]

    found = pg_db.read_direct(plan)
    assert found["Plan"]["Shared Hit Blocks"] <= 6, found
