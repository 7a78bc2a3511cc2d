"""The staff chat posts every event once, also when transactions commit out of the order of their events' ids.

Several workers write events at the same time: a transaction that took an event id early may commit after one that
took a later id, and the staff chat's poller may have read that later one in between. A checkpoint on the id alone
passed over the earlier event for good (an alert never posted, a ticket never announced).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from storage.database import Database
from storage.direct import Direct
from storage.staffchat import StaffChatRepository



def _now() -> datetime:
    """An event's time: the present (the hold-back compares it with the server's clock), whenever the tests run."""
    return datetime.now(timezone.utc)


def _pending(db: Database) -> list[int]:
    return [p.event_id for p in db.run_direct(lambda d: StaffChatRepository(d).pending_posts())]


def _post_all(db: Database) -> list[int]:
    """What a round of the staff chat posts: each pending event, then its checkpoint moved."""
    posted = []
    for post in db.run_direct(lambda d: StaffChatRepository(d).pending_posts()):
        db.run_direct(lambda d, p=post: StaffChatRepository(d).posted(p))
        posted.append(post.event_id)
    return posted


def _post_until(db: Database, count: int, seconds: float = 10) -> list[int]:
    """Rounds of the staff chat until ``count`` events are posted (or ``seconds`` pass): another test's write
    transaction on the same server (tests run side by side) holds the events back while it runs."""
    posted: list[int] = []
    deadline = time.monotonic() + seconds
    while len(posted) < count and time.monotonic() < deadline:
        posted += _post_all(db)
        if len(posted) < count:
            time.sleep(0.05)
    return posted


@contextmanager
def _writing_elsewhere(db: Database) -> Iterator[None]:
    """A write transaction of another connection to the server runs meanwhile (it holds the snapshot's xmin)."""
    other = db.engine.raw_connection()
    try:
        other.cursor().execute("SELECT pg_current_xact_id()")  # it has begun writing
        yield
    finally:
        other.rollback()
        other.close()


def _alert(d: Direct, text: str) -> int:
    return int(d.scalar("INSERT INTO events (kind, at, actor, data) VALUES ('message_failed', :at, 'slabot', :data) "
                        "RETURNING id", {"at": _now(), "data": f'{{"error": "{text}"}}'}))


def test_an_event_committed_after_a_later_one_was_posted_is_posted_too(pg_db: Database) -> None:
    assert _pending(pg_db) == []  # the first round sets the checkpoint: from now on
    slow = pg_db.engine.raw_connection()  # a worker whose transaction takes its event id first, commits last
    try:
        cursor = slow.cursor()
        cursor.execute("INSERT INTO events (kind, at, actor, data) VALUES ('message_failed', %s, 'slabot', "
                       "'{\"error\": \"first\"}') RETURNING id", (_now(),))
        first = int(cursor.fetchone()[0])
        second = pg_db.run_direct(lambda d: _alert(d, "second"))  # another worker's, committed at once
        assert second > first
        early = _post_all(pg_db)  # a round while the first is still open
        slow.commit()
        late = _post_until(pg_db, 2 - len(early))
    finally:
        slow.close()
    assert sorted(early + late) == [first, second], (early, late)
    assert _post_all(pg_db) == []  # each once


def test_events_are_posted_in_order_once_on_either_database(db: Database) -> None:
    assert _pending(db) == []
    ids = [db.run_direct(lambda d, i=i: _alert(d, f"alert {i}")) for i in range(3)]
    assert _post_until(db, 3) == ids
    assert _post_all(db) == []


def test_a_long_transaction_elsewhere_holds_the_events_back_for_half_a_minute_at_most(pg_db: Database) -> None:
    """Another write transaction on the server (any database) keeps the events after it back while it runs, so
    that one of slabot's that began before them is not passed over; once the first of them is HOLD_BACK_SECONDS
    old they go all the same, in order."""
    assert _pending(pg_db) == []
    with _writing_elsewhere(pg_db):  # e.g. another application's long batch job on the same server
        first = pg_db.run_direct(lambda d: _alert(d, "first"))
        old = pg_db.run_direct(lambda d: int(d.scalar(
            "INSERT INTO events (kind, at, actor, data) VALUES ('message_failed', now() - interval '1 minute', "
            "'slabot', '{}') RETURNING id")))
        held_back = _pending(pg_db)  # the old one waits behind the first
        pg_db.run_direct(lambda d: d.execute("UPDATE events SET at = now() - interval '31 seconds' WHERE id = :id",
                                             {"id": first}))  # half a minute later
        posted = _post_all(pg_db)
    assert held_back == []
    assert posted == [first, old]
    assert _post_all(pg_db) == []


def test_the_first_round_takes_every_event_committed_before_it_as_history_while_a_transaction_runs_elsewhere(
        pg_db: Database) -> None:
    """The first round sets the checkpoint: what was committed before it is history, not posted, even while
    another transaction on the server (any database) holds the snapshot's xmin behind those events. Before, the
    checkpoint was that xmin, and the history after it was posted."""
    with _writing_elsewhere(pg_db):
        history = [pg_db.run_direct(lambda d, i=i: _alert(d, f"history {i}")) for i in range(2)]
        first_round = _pending(pg_db)
        new = pg_db.run_direct(lambda d: _alert(d, "new"))
        pg_db.run_direct(lambda d: d.execute("UPDATE events SET at = now() - interval '31 seconds' WHERE id = :id",
                                             {"id": new}))  # held back no longer
        posted = _post_all(pg_db)
    assert history and first_round == []
    assert posted == [new]
