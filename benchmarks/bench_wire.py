"""Benchmark: the client's cost of a statement on PostgreSQL, psycopg's pipeline mode against storage.wire.

Transactions of ten single-row inserts and a COMMIT, in pipeline mode, waited
for once per transaction: once through psycopg's cursors (``Connection.pipeline``,
as storage.direct sent them before storage.wire) and once through
:class:`storage.wire.Wire`. Prints the benchmark's CPU time (user and system)
and the wall time per statement.

    SLABOT_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python benchmarks/bench_wire.py [--n 20000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage.wire import Wire  # noqa: E402

ROW = ("één ✓", 42, datetime(2026, 11, 22, 9, 30, tzinfo=timezone.utc), "<a@b>")
PER_TRANSACTION = 10


def timed(label: str, n: int, run: Callable[[], None]) -> None:
    before, started = os.times(), time.perf_counter()
    run()
    after, wall = os.times(), time.perf_counter() - started
    print(f"    {label:<28} user {(after.user - before.user) / n * 1e6:6.1f} µs   system "
          f"{(after.system - before.system) / n * 1e6:6.1f} µs   wall {wall / n * 1e6:6.1f} µs per statement")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="statements in each run (default 20000)")
    args = parser.parse_args(argv)
    url = os.environ.get("SLABOT_TEST_PG_URL")
    if not url:
        parser.error("needs SLABOT_TEST_PG_URL")
    parsed = make_url(url)
    conninfo = psycopg.conninfo.make_conninfo(
        host=parsed.host or "", port=parsed.port or "", user=parsed.username or "", password=parsed.password or "",
        dbname=parsed.database or "", **{k: str(v) for k, v in parsed.query.items()})
    transactions = args.n // PER_TRANSACTION
    n = transactions * PER_TRANSACTION
    print(f"bench_wire: {n:,} single-row inserts in transactions of {PER_TRANSACTION}, in pipeline mode, "
          "waited for once per transaction")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CREATE TEMPORARY TABLE bench_wire (id serial PRIMARY KEY, a text, b int, c timestamptz, "
                     "d text)")

        def cursors() -> None:
            with conn.pipeline() as pipeline:
                cursor = conn.cursor()
                for _ in range(transactions):
                    cursor.execute("BEGIN")
                    for _ in range(PER_TRANSACTION):
                        cursor.execute("INSERT INTO bench_wire (a, b, c, d) VALUES (%s, %s, %s, %s)", ROW)
                    cursor.execute("COMMIT")
                    pipeline.sync()

        def wire() -> None:
            on = Wire(conn)
            try:
                for _ in range(transactions):
                    on.send("BEGIN", ())
                    for _ in range(PER_TRANSACTION):
                        on.send("INSERT INTO bench_wire (a, b, c, d) VALUES (%s, %s, %s, %s)", ROW)
                    on.send("COMMIT", ())
                    error = on.sync()
                    assert error is None, error
            finally:
                on.close()

        for label, run in (("psycopg's pipeline mode", cursors), ("storage.wire", wire)) * 2:
            timed(label, n, run)
        count = conn.execute("SELECT count(*) FROM bench_wire").fetchone()
        assert count is not None and count[0] == 4 * n, count
    return 0


if __name__ == "__main__":
    sys.exit(main())
