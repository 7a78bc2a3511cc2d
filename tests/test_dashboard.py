"""The staff dashboard over HTTP: no data without a login, wrong passwords and missing CSRF tokens refused, failed
logins throttled, the queue in R15 order with its deadline states, a ticket's timeline, the report, both languages;
the config and ``slabot dashboard hash-password``; ``slabot run`` serving it beside /healthz.

Requests go to the dashboard's ASGI app through httpx (the Starlette app as it is mounted in slabot's HTTP app);
the last test runs the whole application on a loopback port.
"""

from __future__ import annotations

import asyncio
import html
import io
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import AMS, MONDAY_10, add_account, app_running, at, contact, email, free_port, pipeline, preset, run_cli, whatsapp
from pydantic import SecretStr
from starlette.applications import Starlette

from bot.billing import Billing
from bot.config import ConfigError, DashboardConfig, DashboardUser, load_config, masked
from bot.web.dashboard.auth import LoginThrottle, hash_password, verify_password
from bot.web.dashboard.language import accepted_language
from bot.web.dashboard.web import PREFIX, SESSION_COOKIE, Dashboard
from bot.desk import Desk
from storage.database import Database, open_database

PASSWORD = "correct horse battery staple"
SECRET_KEY = "k" * 40
# Monday 23 November 2026, 16:00: one business ticket past its deadline, one due within the hour, two Premium
NOW = at(2026, 11, 23, 16, 0)


@pytest.fixture(scope="module")
def anna_hash() -> str:
    return hash_password(PASSWORD)


def dashboard_config(password_hash: str, **settings: Any) -> DashboardConfig:
    users = [DashboardUser(name="anna", password_hash=SecretStr(password_hash)),
             DashboardUser(name="Bram", password_hash=SecretStr(password_hash), language="en")]
    return DashboardConfig(users=users, secret_key=SecretStr(SECRET_KEY), **settings)


# -- data ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Queue:
    """The refs of the seeded pay.nl queue by what they are."""

    premium_first: str  # Premium, due Tuesday 09:30
    premium_second: str  # Premium, due Tuesday 10:30
    breached: str  # Business, due Friday 20 November
    soon: str  # Business, due Monday 17:00
    answered: str  # Business, answered by staff
    no_sla: str  # Professional: no guarantee

    @property
    def order(self) -> list[str]:
        # R15's order, the answered ticket apart below the ones that wait for the desk
        return [self.premium_first, self.premium_second, self.breached, self.soon, self.no_sla, self.answered]


def seed_queue(db: Database) -> Queue:
    """pay.nl accounts and six open tickets around ``NOW``; see :class:`Queue`."""
    add_account(db, "Premium BV", "premium", contact("Pia", email="pia@premium.example"), staff="anna")
    add_account(db, "Business BV", "business", contact("Bob", email="bob@business.example"))
    add_account(db, "Pro BV", "professional", contact("Pim", email="pim@pro.example"))

    def write(sender: str, when: datetime, subject: str) -> str:
        ref = pipeline(db, "paynl", when).ingest(email(f"<{subject}@{sender}>", sender, f"Vraag over {subject}",
                                                       received_at=when, subject=subject)).ticket_ref
        assert ref is not None
        return ref

    breached = write("bob@business.example", at(2026, 11, 18, 10), "uitbetaling")
    soon = write("bob@business.example", at(2026, 11, 19, 10), "terugboeking")
    premium_first = write("pia@premium.example", MONDAY_10, "storing")
    no_sla = write("pim@pro.example", at(2026, 11, 23, 10, 30), "koppeling")
    premium_second = write("pia@premium.example", at(2026, 11, 23, 11), "webhook")
    answered = write("bob@business.example", at(2026, 11, 23, 12), "factuur")
    Desk(db, now=lambda: at(2026, 11, 23, 13)).reply(answered, "We kijken ernaar.", "anna")
    return Queue(premium_first, premium_second, breached, soon, answered, no_sla)


def seed_billed_ticket(db: Database) -> str:
    """A MailCampaigns service ticket over WhatsApp: quoted, agreed, answered by staff, hours logged."""
    add_account(db, "Bakkerij Jansen", "licentie", contact("Piet Jansen", phone="+31612345678"), staff="anna")
    clock = MONDAY_10
    intake = pipeline(db, "mailcampaigns", clock)
    ref = intake.ingest(whatsapp("SM-q1", "+31612345678", "Kunnen jullie helpen met de opmaak van onze nieuwsbrief?",
                                 received_at=clock)).ticket_ref
    assert ref is not None
    billing = Billing(db, preset("mailcampaigns"), now=lambda: clock + timedelta(minutes=30))
    billing.quote(ref, "2", "anna")
    later = pipeline(db, "mailcampaigns", clock + timedelta(hours=1))
    later.ingest(whatsapp("SM-q2", "+31612345678", "Akkoord!", received_at=clock + timedelta(hours=1)))
    Desk(db, now=lambda: clock + timedelta(hours=2)).reply(ref, "We gaan aan de slag met de opmaak.", "anna")
    Billing(db, preset("mailcampaigns"), now=lambda: clock + timedelta(hours=3)).log_hours(
        ref, "1.5", "anna", note="Sjabloon aangepast")
    return ref


# -- the client -------------------------------------------------------------------------------------------------


class Browser:
    """An httpx client on the dashboard app, keeping its cookies like a browser."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.get(f"{PREFIX}{path}", **kw)

    async def post(self, path: str, data: dict[str, str], **kw: Any) -> httpx.Response:
        return await self.client.post(f"{PREFIX}{path}", data=data, **kw)

    async def csrf(self, path: str = "/login") -> str:
        """The CSRF token in the form of ``path`` (which sets the session cookie)."""
        page = await self.get(path)
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found, page.text
        return found.group(1)

    async def login(self, name: str = "anna", password: str = PASSWORD, next_: str = "") -> httpx.Response:
        token = await self.csrf()
        return await self.post("/login", {"csrf": token, "name": name, "password": password, "next": next_})


def serve(dashboard: Dashboard, body: Callable[[Browser], Awaitable[None]], *,
          base_url: str = "http://testserver") -> None:
    async def main() -> None:
        app = Starlette(routes=dashboard.routes())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("192.0.2.7", 4711)),
                                     base_url=base_url) as client:
            await body(Browser(client))

    asyncio.run(main())


@pytest.fixture
def paynl_db(sqlite_url: str) -> Iterator[tuple[Database, Queue]]:
    database = open_database(sqlite_url)
    yield database, seed_queue(database)
    database.dispose()


def make_dashboard(db: Database, anna_hash: str, preset_name: str = "paynl", **kw: Any) -> Dashboard:
    settings = kw.pop("settings", {})
    return Dashboard(dashboard_config(anna_hash, **settings), db, preset(preset_name), now=lambda: NOW, **kw)


@dataclass(frozen=True)
class Site:
    """The pay.nl queue behind a dashboard on ``NOW``'s clock."""

    db: Database
    queue: Queue
    password_hash: str

    def run(self, body: Callable[[Browser], Awaitable[None]], *, base_url: str = "http://testserver",
            **dashboard: Any) -> None:
        serve(make_dashboard(self.db, self.password_hash, **dashboard), body, base_url=base_url)


@pytest.fixture
def site(paynl_db: tuple[Database, Queue], anna_hash: str) -> Site:
    return Site(*paynl_db, anna_hash)


def refs_in(html: str) -> list[str]:
    return re.findall(r'data-ref="([A-Z]+-\d+)"', html)


# -- no data without a login ----------------------------------------------------------------------------------


def test_nothing_without_a_login_pages_redirect_json_answers_401(site: Site) -> None:
    queue = site.queue

    async def body(b: Browser) -> None:
        for path in ("/", f"/tickets/{queue.premium_first}", "/report?from=2026-11-01"):
            page = await b.get(path)
            assert page.status_code == 303
            location = page.headers["location"]
            assert location.startswith(f"{PREFIX}/login?next=")
            assert queue.premium_first not in page.text
        assert (await b.get(f"/tickets/{queue.premium_first}")).headers["location"] == (
            f"{PREFIX}/login?next={PREFIX}/tickets/{queue.premium_first}")
        api = await b.get("/api/queue")
        assert api.status_code == 401 and api.json() == {"error": "login required"}
        login = await b.get("/login")
        assert login.status_code == 200 and "PN-" not in login.text
        for name, value in {"x-frame-options": "DENY", "x-content-type-options": "nosniff",
                            "cache-control": "no-store"}.items():
            assert login.headers[name] == value
        assert "default-src 'none'" in login.headers["content-security-policy"]
        style = await b.get("/static/dashboard.css")  # the only things served without a login
        assert style.status_code == 200 and "data-due-state" in style.text
        script = await b.get("/static/dashboard.js")
        assert script.status_code == 200 and "setInterval" in script.text

    site.run(body)


def test_a_wrong_password_or_an_unknown_name_is_refused(site: Site) -> None:

    async def body(b: Browser) -> None:
        for name, password in (("anna", "wrong"), ("nobody", PASSWORD), ("anna", "")):
            refused = await b.login(name, password)
            assert refused.status_code == 401
            assert "Onbekende naam of verkeerd wachtwoord." in refused.text
        assert (await b.get("/")).status_code == 303
        assert (await b.get("/api/queue")).status_code == 401

    site.run(body)


def test_login_queue_and_logout_with_a_signed_httponly_lax_cookie(site: Site) -> None:
    queue = site.queue

    async def body(b: Browser) -> None:
        done = await b.login("ANNA", next_=f"{PREFIX}/tickets/{queue.soon}")  # names are not case-sensitive
        assert done.status_code == 303 and done.headers["location"] == f"{PREFIX}/tickets/{queue.soon}"
        cookie = done.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=")
        assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower() and f"path={PREFIX}" in cookie
        assert "secure" not in cookie.lower()  # http.public_url is not https here
        page = await b.get("/")
        assert page.status_code == 200 and "Ingelogd als anna" in page.text
        assert refs_in(page.text) == queue.order
        # a tampered cookie is no login
        stored = next(c for c in b.client.cookies.jar if c.name == SESSION_COOKIE)
        value = stored.value or ""
        b.client.cookies.set(SESSION_COOKIE, value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"),
                             domain=stored.domain, path=stored.path)
        assert (await b.get("/")).status_code == 303
        b.client.cookies.set(SESSION_COOKIE, value, domain=stored.domain, path=stored.path)
        assert (await b.get("/")).status_code == 200
        # logging out is a POST with the session's token
        refused = await b.post("/logout", {"csrf": "made-up"})
        assert refused.status_code == 403
        assert (await b.get("/")).status_code == 200
        out = await b.post("/logout", {"csrf": await b.csrf("/")})
        assert out.status_code == 303 and out.headers["location"] == f"{PREFIX}/login"
        assert (await b.get("/")).status_code == 303
        assert (await b.get("/api/queue")).status_code == 401

    site.run(body)


def test_the_cookie_is_secure_when_slabot_is_served_over_https(site: Site) -> None:

    async def body(b: Browser) -> None:
        done = await b.login()
        assert done.status_code == 303
        assert "secure" in done.headers["set-cookie"].lower()

    site.run(body, base_url="https://testserver", secure_cookies=True)


def test_a_post_without_the_sessions_csrf_token_is_refused(site: Site) -> None:
    dashboard = make_dashboard(site.db, site.password_hash)

    async def body(b: Browser) -> None:
        await b.csrf()
        for form in ({"name": "anna", "password": PASSWORD},
                     {"csrf": "", "name": "anna", "password": PASSWORD},
                     {"csrf": "not-the-token", "name": "anna", "password": PASSWORD}):
            refused = await b.post("/login", form)
            assert refused.status_code == 403
            assert "Dit formulier is verlopen of ongeldig" in refused.text
        assert (await b.get("/")).status_code == 303
        # a token from another session (another browser) does not do either
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=Starlette(routes=dashboard.routes())),
                                     base_url="http://testserver") as other:
            foreign = await Browser(other).csrf()
        refused = await b.post("/login", {"csrf": foreign, "name": "anna", "password": PASSWORD})
        assert refused.status_code == 403
        # nor one from before the login: the login gives the session a new one
        before = await b.csrf()
        assert (await b.post("/login", {"csrf": before, "name": "anna", "password": PASSWORD})).status_code == 303
        assert (await b.post("/logout", {"csrf": before})).status_code == 403
        assert (await b.post("/language", {"csrf": before, "language": "en"})).status_code == 403
        assert (await b.get("/")).status_code == 200

    serve(dashboard, body)


def test_failed_logins_are_throttled_per_account_and_client(site: Site) -> None:
    clock = [1000.0]
    throttle = LoginThrottle(limit=3, window=600, client_limit=5, clock=lambda: clock[0])

    async def body(b: Browser) -> None:
        for _ in range(3):
            assert (await b.login("anna", "guess")).status_code == 401
        blocked = await b.login("anna", PASSWORD)  # even the right password waits
        assert blocked.status_code == 429 and blocked.headers["retry-after"] == "600"
        assert "Te veel mislukte pogingen; probeer het over 10 minuten opnieuw." in blocked.text
        assert (await b.login("nobody", "guess")).status_code == 401  # the client's fourth failure
        clock[0] += 1
        assert (await b.login("Bram", "guess")).status_code == 401  # and its fifth
        refused = await b.login("Bram", PASSWORD)  # the client has reached its limit, whatever the name
        assert refused.status_code == 429 and refused.headers["retry-after"] == "599"
        clock[0] += 600
        assert (await b.login("anna", PASSWORD)).status_code == 303

    site.run(body, throttle=throttle)


def test_login_does_not_redirect_to_another_site(site: Site) -> None:

    async def body(b: Browser) -> None:
        for target in ("https://evil.example/", "//evil.example/x", f"{PREFIX}//evil.example", "/healthz"):
            b.client.cookies.clear()
            done = await b.login(next_=target)
            assert done.headers["location"] == f"{PREFIX}/", target
        already = await b.get(f"/login?next=https://evil.example/")  # logged in: straight on, but not there
        assert already.status_code == 303 and already.headers["location"] == f"{PREFIX}/"

    site.run(body)


# -- the pages ------------------------------------------------------------------------------------------------


def test_queue_premium_first_then_by_deadline_with_its_states(site: Site) -> None:
    queue = site.queue

    async def body(b: Browser) -> None:
        await b.login()
        page = (await b.get("/")).text
        assert refs_in(page) == queue.order
        states = dict(re.findall(r'data-ref="([A-Z]+-\d+)" data-due-state="(\w+)"', page))
        assert states == {queue.premium_first: "ok", queue.premium_second: "ok", queue.breached: "breached",
                          queue.soon: "soon", queue.answered: "met", queue.no_sla: "none"}
        premium_row = page[page.index(f'data-ref="{queue.premium_first}"') - 40:]
        assert "premium" in premium_row[:60]
        # the live countdown carries its deadline; the page carries the server's clock
        assert f'data-due="{at(2026, 11, 24, 9, 30).astimezone(AMS).isoformat()}"' not in page  # stored in UTC
        assert 'data-due="2026-11-24T08:30:00+00:00"' in page
        assert f'data-server-now="{NOW.isoformat()}"' in page
        assert 'data-soon-seconds="7200"' in page
        assert "di 24 nov. 09:30" in page or "di 24 nov 09:30" in page
        api = (await b.get("/api/queue")).json()
        assert [t["ref"] for t in api["tickets"]] == queue.order
        assert api["tickets"][0]["premium"] is True and api["tickets"][0]["plan"] == "Premium"
        assert api["tickets"][2]["due_state"] == "breached"

    site.run(body)


def test_due_soon_follows_the_configured_window(site: Site) -> None:
    queue = site.queue

    async def body(b: Browser) -> None:
        await b.login()
        states = dict(re.findall(r'data-ref="([A-Z]+-\d+)" data-due-state="(\w+)"', (await b.get("/")).text))
        assert states[queue.soon] == "ok" and states[queue.breached] == "breached"

    site.run(body, settings={"due_soon_minutes": 30})


def test_ticket_page_timeline_with_messages_decisions_reminders_hours_and_quote(db_url: str,
                                                                              anna_hash: str) -> None:
    db = open_database(db_url)
    try:
        ref = seed_billed_ticket(db)

        async def body(b: Browser) -> None:
            await b.login()
            page = await b.get(f"/tickets/{ref.lower()}")
            assert page.status_code == 200
            content = page.text
            assert f'<h1 id="ticket-ref">{ref}' in content
            assert "Bakkerij Jansen" in content and "Piet Jansen" in content and "Licentie" in content
            # messages in and out, in time order, with their delivery state
            timeline = content[content.index('id="timeline"'):]
            order = [timeline.index(text) for text in (
                "Kunnen jullie helpen met de opmaak van onze nieuwsbrief?",  # in
                "Offerte: 2 uur",  # the quote
                "Akkoord!",  # the customer agrees
                "We gaan aan de slag met de opmaak.",  # the staff reply
                "1,5 uur werk door anna",  # the hours
            )]
            assert order == sorted(order)
            assert "Bericht van +31612345678" in timeline and "Bericht aan +31612345678" in timeline
            assert "automatisch" in timeline and "door anna" in timeline
            assert 'class="badge state-queued"' in timeline  # nothing dispatched these messages
            assert "Sjabloon aangepast" in timeline
            # decisions with their reasons: the intake's, the classification's and the audit trail
            decisions = content[content.index('id="decisions"'):content.index('id="timeline"')]
            assert "Intake: new_ticket" in decisions and "Piet Jansen is a contact person of Bakkerij Jansen" in decisions
            assert "Soort: service" in decisions
            for sentence in ("Ticket geopend", "anna stuurde een offerte van 2 uur", "De klant ging akkoord met de "
                             "offerte", "anna antwoordde de klant", "anna schreef uren"):  # sentences, not internals
                assert f"<strong>{sentence}" in timeline, sentence
            assert "first_response" not in timeline and "kind_rule" not in timeline and "<li>()</li>" not in timeline
            assert "Herinnering" in timeline
            assert 'state-agreed' in timeline and "€\xa0260,00" in timeline
            # hours and the invoice line
            assert "Geschreven uren: 1,5" in content
            lines = content[content.index('id="invoice-lines"'):]
            assert "€\xa0195,00" in lines and "monthly" in lines
            missing = await b.get("/tickets/MC-99999")
            assert missing.status_code == 404 and "Geen ticket MC-99999." in missing.text

        serve(make_dashboard(db, anna_hash, "mailcampaigns"), body)
    finally:
        db.dispose()


def report_rows(html: str, table: str) -> dict[str, list[str]]:
    """The numbers of a report table by group: tickets, then met, late, running, share, median, p90 per target."""
    body = html[html.index(f'id="{table}"'):]
    body = body[:body.index("</table>")]
    return {name: re.findall(r'<td class="num[^"]*">([^<]*)</td>', cells)
            for name, cells in re.findall(r'<tr data-group="([^"]+)">(.*?)</tr>', body, re.S)}


def test_report_page_renders_the_sla_report_and_its_chart(site: Site) -> None:
    queue = site.queue
    period = "from=2026-11-16&to=2026-11-23"

    async def body(b: Browser) -> None:
        assert (await b.get(f"/report/chart.png?{period}")).status_code == 401  # the chart is data too
        await b.login()
        page = (await b.get(f"/report?{period}")).text
        running = ["0", "0", "2", "—", "—", "—"]
        assert report_rows(page, "report-plans") == {
            # first response: answered in an hour, one breached, one running; resolution: all running
            # the plans by their titles, as the queue shows them
            "Business": ["3", "1", "1", "1", "50%", "1.0h", "1.0h", "0", "0", "3", "—", "—", "—"],
            "Premium": ["2", *running, *running],
            "Professional": ["1", *["0", "0", "0", "—", "—", "—"] * 2],
            "Totaal": ["6", "1", "1", "3", "50%", "1.0h", "1.0h", "0", "0", "5", "—", "—", "—"],
        }
        staff = report_rows(page, "report-staff")
        assert staff["anna"][:5] == ["3", "1", "0", "2", "100%"]
        assert staff["(unassigned)"][:5] == ["3", "0", "1", "1", "0%"]
        breaches = page[page.index('id="report-breaches"'):]
        assert f'<a href="{PREFIX}/tickets/{queue.breached}">{queue.breached}</a>' in breaches
        assert "31.5h" in breaches and "24.0h (business)" in breaches and "nog open" in breaches
        chart_url = re.search(r'id="report-chart" class="chart" src="([^"]+)"', page)
        assert chart_url and html.unescape(chart_url.group(1)) == f"{PREFIX}/report/chart.png?{period}"
        chart = await b.client.get(html.unescape(chart_url.group(1)))
        assert chart.status_code == 200 and chart.headers["content-type"] == "image/png"
        assert chart.content.startswith(b"\x89PNG\r\n\x1a\n") and len(chart.content) > 10_000
        only = (await b.get("/report?from=2026-11-23&to=2026-11-23&plan=business")).text
        assert list(report_rows(only, "report-plans")) == ["Business", "Totaal"]
        assert 'id="report-no-breaches"' in only
        assert (await b.get("/report?from=2026-11-23&to=2026-11-01")).status_code == 400
        assert (await b.get("/report?from=yesterday")).status_code == 400
        assert (await b.get("/report/chart.png?from=yesterday")).status_code == 400

    site.run(body)


def test_dutch_by_default_english_by_browser_choice_or_per_user(site: Site) -> None:

    async def body(b: Browser) -> None:
        assert "Inloggen" in (await b.get("/login")).text
        english = await b.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9,nl;q=0.5"})
        assert "Log in" in english.text and '<html lang="en">' in english.text
        await b.login()
        assert "Wachtrij" in (await b.get("/", headers={"Accept-Language": "fr,nl;q=0.5"})).text
        switched = await b.post("/language", {"csrf": await b.csrf("/"), "language": "en", "next": f"{PREFIX}/report"})
        assert switched.status_code == 303 and switched.headers["location"] == f"{PREFIX}/report"
        page = (await b.get("/report")).text
        assert "SLA report" in page and "In time %" in page and "Per staff member" in page
        await b.post("/logout", {"csrf": await b.csrf("/")})
        await b.login("bram")  # Bram's own language is English
        assert "Logged in as Bram" in (await b.get("/")).text

    site.run(body)


def test_accept_language_is_read_by_its_weights() -> None:
    assert accepted_language("en-US,en;q=0.9,nl;q=0.8") == "en"
    assert accepted_language("de, nl;q=0.3, en;q=0.7") == "en"
    assert accepted_language("nl-BE") == "nl"
    assert accepted_language("fr, en;q=0") is None
    assert accepted_language("") is None and accepted_language(None) is None


# -- configuration and the command line -------------------------------------------------------------------------


def test_config_dashboard_section_is_checked_and_its_secrets_masked(tmp_path: Path, anna_hash: str) -> None:
    config = tmp_path / "slabot.toml"

    def load(text: str, **env: str) -> Any:
        config.write_text(text, encoding="utf-8")
        return load_config(config, environ=env)

    assert not load("").config.dashboard.configured  # off by default
    user = f'[[dashboard.users]]\nname = "anna"\npassword_hash = "{anna_hash}"\n'
    with pytest.raises(ConfigError) as missing:
        load(user)
    assert "dashboard.secret_key" in str(missing.value) and "expected a secret_key with users" in str(missing.value)
    loaded = load(user, SLABOT_DASHBOARD_SECRET_KEY=SECRET_KEY)
    assert loaded.config.dashboard.configured and "SLABOT_DASHBOARD_SECRET_KEY" in loaded.from_env
    shown = masked(loaded.config)["dashboard"]
    assert shown["secret_key"] == "***" and anna_hash not in str(shown)
    with pytest.raises(ConfigError) as short:
        load(f'[dashboard]\nsecret_key = "short"\n{user}')
    assert "at least 32 characters" in str(short.value)
    with pytest.raises(ConfigError) as plain:
        load(f'[dashboard]\nsecret_key = "{SECRET_KEY}"\n[[dashboard.users]]\nname = "anna"\npassword_hash = "pw"\n')
    assert "dashboard.users[0].password_hash" in str(plain.value) and "Argon2" in str(plain.value)
    with pytest.raises(ConfigError) as twice:
        load(f'[dashboard]\nsecret_key = "{SECRET_KEY}"\n{user}{user.replace("anna", "Anna")}')
    assert "named twice: anna" in str(twice.value)
    with pytest.raises(ConfigError) as unknown:
        load(f'[dashboard]\nsecret_key = "{SECRET_KEY}"\npasword = "x"\n')
    assert "dashboard.pasword" in str(unknown.value)


def test_hash_password_reads_stdin_and_prints_an_argon2_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret wachtwoord\n"))
    code, out, err = run_cli("dashboard", "hash-password")
    assert code == 0, err
    hashed = out.strip()
    assert hashed.startswith("$argon2id$") and verify_password(hashed, "s3cret wachtwoord")
    assert not verify_password(hashed, "s3cret wachtwoord\n") and not verify_password(None, "x")
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    code, out, err = run_cli("dashboard", "hash-password")
    assert code == 2 and "empty password" in err and out == ""
    code, out, _ = run_cli("dashboard", "secret-key")
    assert code == 0 and len(out.strip()) >= 32


# -- slabot run -----------------------------------------------------------------------------------------------


def test_slabot_run_serves_the_dashboard_beside_healthz(tmp_path: Path, anna_hash: str) -> None:
    from bot.app import Application

    port = free_port()
    config = tmp_path / "slabot.toml"
    config.write_text(
        f'preset = "paynl"\n[database]\nurl = "sqlite:///{tmp_path / "slabot.db"}"\n'
        f'[http]\nhost = "127.0.0.1"\nport = {port}\n'
        f'[dashboard]\nsecret_key = "{SECRET_KEY}"\n'
        f'[[dashboard.users]]\nname = "anna"\npassword_hash = "{anna_hash}"\n', encoding="utf-8")
    seed = open_database(f"sqlite:///{tmp_path / 'slabot.db'}")
    queue = seed_queue(seed)
    seed.dispose()

    async def main() -> None:
        async with app_running(Application(load_config(config), now=lambda: NOW)):
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                health = await client.get("/healthz")
                assert health.status_code == 200 and health.json()["status"] == "ok"
                assert "set-cookie" not in health.headers
                assert (await client.get("/dashboard", follow_redirects=True)).url.path == f"{PREFIX}/login"
                b = Browser(client)
                assert (await b.login()).status_code == 303
                assert refs_in((await b.get("/")).text) == queue.order

    asyncio.run(main())
