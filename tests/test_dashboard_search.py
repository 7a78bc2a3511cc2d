"""Finding tickets: full text over references, subjects, message texts, names, e-mail addresses and phone numbers
(SQLite FTS5, PostgreSQL full-text search, one repository method), filters kept in the URL, paging. On SQLite and
PostgreSQL, through the repository and through the dashboard's queue page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from helpers import MONDAY_10, add_account, contact, downgrade, email, pipeline, preset, whatsapp
from test_dashboard import Browser, anna_hash, dashboard_config, serve  # noqa: F401 - anna_hash is a fixture

from bot.desk import Desk
from bot.web.dashboard.web import Dashboard
from storage.database import Database, open_database
from storage.direct import Direct
from storage.search import TicketFilter, TicketSearch

LATER = MONDAY_10 + timedelta(hours=1)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_database(db_url)
    add_account(database, "Bakkerij Jansen", "ondersteuning",
                contact("Piet Jansen", email="piet@bakkerij-jansen.nl", phone="+31612345678"), staff="anna")
    add_account(database, "Fietsen Noord", "licentie", contact("Eva de Vries", email="eva@fietsen-noord.nl"))
    intake = pipeline(database, "mailcampaigns", LATER)
    intake.ingest(email("<a@jansen>", "piet@bakkerij-jansen.nl", "De verzendknop geeft een foutmelding",
                        subject="Verzenden lukt niet"))
    intake.ingest(whatsapp("SM-1", "+31612345678", "Mijn campagne staat nog op concept"))
    intake.ingest(email("<b@noord>", "eva@fietsen-noord.nl", "Hoe importeer ik contactpersonen?",
                        subject="Import"))
    intake.ingest(email("<c@elders>", "onbekend@elders.example", "Graag een offerte voor een sjabloon",
                        subject="Sjabloon"))
    yield database
    database.dispose()


def refs(db: Database, **wanted: object) -> list[str]:
    page = db.run(lambda s: TicketSearch(s).find(TicketFilter(**wanted), LATER, timedelta(hours=2)))  # type: ignore[arg-type]
    return [t.ref for t in page.tickets]


def test_words_of_a_message_a_subject_a_reference_a_name_an_address_or_a_number(db: Database) -> None:
    everything = refs(db)
    assert len(everything) == 4
    first, chat, eva, stranger = sorted(everything)
    assert refs(db, text="foutmelding") == [first]  # a word of the message
    assert refs(db, text="verzendkn") == [first]  # the start of one
    assert refs(db, text="Verzenden lukt") == [first]  # the subject
    assert refs(db, text="concept") == [chat]  # a WhatsApp message
    assert refs(db, text=first) == [first]  # the reference
    assert sorted(refs(db, text="Piet Jansen")) == sorted([first, chat])  # the contact's name
    assert refs(db, text="fietsen noord") == [eva]  # the customer's name
    assert refs(db, text="eva@fietsen-noord.nl") == [eva]  # an e-mail address
    assert sorted(refs(db, text="+31612345678")) == sorted([first, chat])  # a phone number
    assert refs(db, text="onbekend@elders.example") == [stranger]  # an unknown sender's address
    assert refs(db, text="nergens") == []
    assert refs(db, text="%") == [] and refs(db, text='"*') == []  # no syntax error, nothing found


def test_filters_and_paging(db: Database) -> None:
    assert len(refs(db, state="open")) == 4  # every open state, the unverified one too
    assert len(refs(db, state="unverified")) == 1
    assert len(refs(db, channel="whatsapp")) == 1
    assert len(refs(db, plan="licentie")) == 1
    assert len(refs(db, assignee="anna")) == 2  # the account's staff member
    first = min(refs(db))
    Desk(db, now=lambda: LATER).take(first, "bram")
    assert len(refs(db, assignee="anna")) == 1 and refs(db, assignee="bram") == [first]
    assert refs(db, due="breached") == []
    late = db.run(lambda s: TicketSearch(s).find(TicketFilter(due="breached"), LATER + timedelta(days=30),
                                                 timedelta(hours=2)))
    assert late.total == 3  # the unverified ticket has no deadline
    pages = [db.run(lambda s, n=n: TicketSearch(s).find(TicketFilter(page=n, per_page=3), LATER, timedelta(hours=2)))
             for n in (1, 2)]
    assert [len(p.tickets) for p in pages] == [3, 1] and pages[0].total == 4 and pages[0].pages == 2
    assert not {t.ref for t in pages[0].tickets} & {t.ref for t in pages[1].tickets}


def test_new_messages_and_changes_are_found_at_once(db: Database) -> None:
    pipeline(db, "mailcampaigns", LATER).ingest(
        email("<d@noord>", "eva@fietsen-noord.nl", "Ook de bijlage ontbreekt", subject="Re: Import"))
    found = refs(db, text="bijlage")
    assert len(found) == 1
    Desk(db, now=lambda: LATER).reply(found[0], "De bijlage staat nu klaar als xylofoon", "anna")
    assert refs(db, text="xylofoon") == found


def test_the_queue_page_searches_with_the_filter_in_the_url(db: Database, anna_hash: str) -> None:  # noqa: F811
    async def body(b: Browser) -> None:
        await b.login()
        page = await b.get("/?q=foutmelding")
        assert page.status_code == 200 and 'id="found"' in page.text
        assert len(re.findall(r'data-ref="', page.text)) == 1 and 'value="foutmelding"' in page.text
        filtered = await b.get("/?channel=whatsapp&state=open")
        assert len(re.findall(r'data-ref="', filtered.text)) == 1
        assert '<option value="whatsapp" selected>' in filtered.text
        nothing = await b.get("/?q=nergens")
        assert 'id="no-results"' in nothing.text
        odd = await b.get("/?state=bogus&page=x&due=never")  # values that are no choice: no filter
        assert odd.status_code == 200 and len(re.findall(r'data-ref="', odd.text)) == 4
        mine = await b.get("/?mine=1")
        assert len(re.findall(r'data-ref="', mine.text)) == 2

    serve(Dashboard(dashboard_config(anna_hash), db, preset("mailcampaigns"), now=lambda: LATER), body)


def indexed(db: Database, word: str) -> int:
    """How many messages the search index holds ``word`` of: FTS5's table (SQLite); the messages within the GIN
    index's condition, if it has one (PostgreSQL)."""
    def count(d: Direct) -> int:
        if db.is_sqlite:
            return int(d.scalar("SELECT count(*) FROM search_messages WHERE search_messages MATCH :w", {"w": word}))
        condition = d.scalar("SELECT pg_get_expr(x.indpred, x.indrelid) FROM pg_index x JOIN pg_class c "
                             "ON c.oid = x.indexrelid WHERE c.relname = 'ix_search_messages' "
                             "AND c.relnamespace = current_schema()::regnamespace")
        return int(d.scalar(f"SELECT count(*) FROM messages WHERE ({condition or 'true'}) AND "
                            "to_tsvector('simple', coalesce(text, '')) @@ to_tsquery('simple', :w)", {"w": word}))

    return db.read_direct(count)


def test_the_words_of_slabots_automatic_messages_find_nothing_and_a_persons_words_do(db: Database) -> None:
    """An acknowledgement's words are its template's, the same in every ticket: a search for one found every ticket
    (before migration 0021; the reference and the contact's name are found through the ticket and its contact).
    The inbound messages and those a person wrote are searched; going back below 0021 searches every message again."""
    def automatic_texts(d: Direct) -> list[str]:
        return [str(r[0]) for r in d.execute("SELECT text FROM messages WHERE direction = 'out' AND auto").fetchall()]

    acknowledged = [t for t in db.read_direct(automatic_texts) if "openingstijden" in t]
    assert len(acknowledged) == 3  # the three contacts' acknowledgements say "binnen onze openingstijden"
    assert refs(db, text="openingstijden") == [] and indexed(db, "openingstijden") == 0
    downgrade(db, "0020")
    assert indexed(db, "openingstijden") == 3  # as before: every message in the index
    db.upgrade()
    assert refs(db, text="openingstijden") == [] and indexed(db, "openingstijden") == 0
    first = min(refs(db))
    Desk(db, now=lambda: LATER).reply(first, "Buiten onze openingstijden bellen we terug", "anna")
    assert refs(db, text="openingstijden") == [first]  # a staff reply is searched
    pipeline(db, "mailcampaigns", LATER).ingest(
        email("<e@noord>", "eva@fietsen-noord.nl", "Wat zijn jullie openingstijden?", subject="Re: Import"))
    assert len(refs(db, text="openingstijden")) == 2  # and a customer's message
