"""Statements below psycopg's cursors (storage.wire), through storage.database's pipelined connections."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError, ProgrammingError

from storage.database import Database
from storage.direct import Direct
from storage.wire import numbered


def test_placeholders_become_numbered_in_order_of_first_use() -> None:
    assert numbered("SELECT %(a)s, %(b)s, %(a)s LIKE 'x%%'") == (b"SELECT $1, $2, $1 LIKE 'x%'", ("a", "b"))
    assert numbered("INSERT INTO t (a, b) VALUES (%s, %s), (%s, %s)") == (
        b"INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)", 4)
    assert numbered("SELECT 1") == (b"SELECT 1", 0)
    with pytest.raises(ValueError):
        numbered("SELECT %(a)s, %s")


def _prepared(d: Direct) -> list[str]:
    return [str(r[0]) for r in d.execute("SELECT name FROM pg_prepared_statements ORDER BY name").fetchall()]


def test_statements_are_prepared_on_first_use_and_a_connection_in_use_again_prepares_under_new_names(
        pg_db: Database) -> None:
    """The second Direct on the same connection (after it was back in the pool) knows what the first prepared;
    psycopg's own statements work on it in between."""
    with pg_db.group():
        pg_db.run_direct(lambda d: d.execute("CREATE TABLE wire_t (id serial PRIMARY KEY, a text, n int)"))
        pg_db.run_direct(lambda d: d.send("INSERT INTO wire_t (a, n) VALUES (:a, :n)", {"a": "één", "n": 1}))
        names = pg_db.run_direct(_prepared)
    assert any(n.startswith("_slabot_") for n in names), names
    raw = pg_db.engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None
        for _ in range(2):  # made, given back, made again on the same connection
            direct = Direct(driver, pg_db.engine.dialect, pipelined=True)
            direct.send("INSERT INTO wire_t (a, n) VALUES (:a, :n)", {"a": "twee", "n": 2})
            direct.commit()
            direct.leave_pipeline()
            cursor = driver.cursor()
            cursor.execute("SELECT count(*) FROM wire_t WHERE n = %s", (2,))  # psycopg's own, out of pipeline mode
            assert cursor.fetchone() is not None
            driver.commit()
    finally:
        raw.close()
    assert pg_db.read_direct(lambda d: d.execute("SELECT count(*) FROM wire_t WHERE n = 2").fetchone()) == (2,)


def test_an_error_names_the_statement_that_failed_and_the_next_transaction_runs(pg_db: Database) -> None:
    """A statement the server cannot prepare raises its own error (not that the pipeline was aborted); one that
    fails when run raises its error at the next wait. Nothing of the transaction stays; the same statements work
    in the next one (a statement whose preparing failed is prepared again)."""
    pg_db.run_direct(lambda d: d.execute("CREATE TABLE wire_u (id serial PRIMARY KEY, a text UNIQUE)"))

    def typo(d: Direct) -> None:
        d.send("INSERT INTO wire_u (a) VALUES (:a)", {"a": "x"})
        d.execute("SELEC 1")

    with pytest.raises(ProgrammingError, match="syntax error"):
        pg_db.run_direct(typo)

    def twice(d: Direct) -> None:
        d.send("INSERT INTO wire_u (a) VALUES (:a)", {"a": "y"})
        d.send("INSERT INTO wire_u (a) VALUES (:a)", {"a": "y"})
        d.execute("SELECT 1")

    with pytest.raises(IntegrityError, match="wire_u_a_key"):
        pg_db.run_direct(twice)

    def missing_then_fine(d: Direct) -> None:
        d.execute("SELECT a FROM wire_v")

    pg_db.run_direct(lambda d: d.execute("SELECT 1"))
    with pytest.raises(ProgrammingError, match="wire_v"):
        pg_db.run_direct(missing_then_fine)
    pg_db.run_direct(lambda d: d.execute("CREATE TABLE wire_v (a text)"))
    pg_db.run_direct(lambda d: d.send("INSERT INTO wire_v (a) VALUES (:a)", {"a": "z"}))
    assert pg_db.read_direct(lambda d: d.execute("SELECT a FROM wire_v").fetchall()) == [("z",)]
    assert pg_db.read_direct(lambda d: d.execute("SELECT count(*) FROM wire_u").fetchone()) == (0,)


def test_rows_counts_and_answers_asked_together(pg_db: Database) -> None:
    pg_db.run_direct(lambda d: d.execute("CREATE TABLE wire_w (id serial PRIMARY KEY, a text, n int)"))

    def work(d: Direct) -> tuple[int, list[tuple[object, ...]], object]:
        d.execute_many("INSERT INTO wire_w (a, n) VALUES (:a, :n)", [{"a": f"r{i}", "n": i} for i in range(5)])
        first = d.ask("SELECT a FROM wire_w WHERE n < :n ORDER BY n", {"n": 2})
        second = d.ask("SELECT count(*) FROM wire_w")
        trips = d.round_trips
        rows = first.all()
        assert d.round_trips == trips + 1 and second.scalar() == 5 and d.round_trips == trips + 1
        changed = d.execute("UPDATE wire_w SET a = 'x' WHERE n >= :n", {"n": 3}).rowcount
        return changed, rows, d.execute("SELECT a FROM wire_w WHERE n = 99").fetchone()

    assert pg_db.run_direct(work) == (2, [("r0",), ("r1",)], None)
