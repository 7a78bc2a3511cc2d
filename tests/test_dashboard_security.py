"""The dashboard's logins against an attacker, over slabot's own HTTP server on loopback (uvicorn, as `slabot run`
serves it): failed logins throttled per account and per client address, the client read from X-Forwarded-For only
when the peer is a configured trusted proxy; sessions kept server-side, ended by logout, by a changed password and
by ``slabot dashboard logout-all``, and expiring after ``session_hours``. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import app_running, at, free_port, run_cli

from bot.app import Application
from bot.config import load_config
from bot.web.dashboard.auth import hash_password
from bot.web.dashboard.web import PREFIX, SESSION_COOKIE

PASSWORD = "correct horse battery staple"
SECRET_KEY = "s" * 40
NOW = at(2026, 11, 23, 16, 0)


@pytest.fixture(scope="module")
def hashes() -> dict[str, str]:
    return {"old": hash_password(PASSWORD), "new": hash_password("a new password entirely")}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class Staff:
    """A browser on the dashboard, as seen from ``address`` (sent as X-Forwarded-For)."""

    def __init__(self, client: httpx.AsyncClient, address: str | None) -> None:
        self.client = client
        self.headers = {"X-Forwarded-For": address} if address else {}

    async def csrf(self, path: str = "/login") -> str:
        page = await self.client.get(f"{PREFIX}{path}", headers=self.headers)
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found, page.text
        return found.group(1)

    async def login(self, name: str = "anna", password: str = PASSWORD) -> int:
        token = await self.csrf()
        answer = await self.client.post(f"{PREFIX}/login", headers=self.headers,
                                        data={"csrf": token, "name": name, "password": password})
        return answer.status_code

    async def logout(self) -> int:
        token = await self.csrf("/")
        return (await self.client.post(f"{PREFIX}/logout", headers=self.headers, data={"csrf": token})).status_code

    async def queue(self) -> int:
        return (await self.client.get(f"{PREFIX}/api/queue", headers=self.headers)).status_code

    def cookie(self) -> str:
        return next(c.value or "" for c in self.client.cookies.jar if c.name == SESSION_COOKIE)


Browsers = Callable[[str | None], Staff]


class Site:
    """slabot with the dashboard on, its config file written for each run (a password may change between runs)."""

    def __init__(self, tmp_path: Path, db_url: str, hashes: dict[str, str]) -> None:
        self.config = tmp_path / "slabot.toml"
        self.db_url = db_url
        self.hashes = hashes
        self.clock = Clock()

    def write(self, *, password: str = "old", trusted: str | None = None, hours: float = 12) -> Path:
        proxies = f"trusted_proxies = [{trusted}]\n" if trusted is not None else ""
        self.config.write_text(
            f'preset = "paynl"\n[database]\nurl = "{self.db_url}"\n'
            f'[http]\nhost = "127.0.0.1"\nport = {free_port()}\n{proxies}'
            f'[dashboard]\nsecret_key = "{SECRET_KEY}"\nsession_hours = {hours}\n'
            f'[[dashboard.users]]\nname = "anna"\npassword_hash = "{self.hashes[password]}"\n'
            f'[[dashboard.users]]\nname = "bram"\npassword_hash = "{self.hashes["old"]}"\n', encoding="utf-8")
        return self.config

    @asynccontextmanager
    async def running(self, **settings: Any) -> AsyncIterator[Browsers]:
        loaded = load_config(self.write(**settings))
        clients: list[httpx.AsyncClient] = []

        def browser(address: str | None = None) -> Staff:
            client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{loaded.config.http.port}")
            clients.append(client)
            return Staff(client, address)

        try:
            async with app_running(Application(loaded, now=self.clock)):
                yield browser
        finally:
            for client in clients:
                await client.aclose()

    def run(self, body: Callable[[Browsers], Awaitable[None]], **settings: Any) -> None:
        async def main() -> None:
            async with self.running(**settings) as browsers:
                await body(browsers)

        asyncio.run(main())


@pytest.fixture
def site(tmp_path: Path, db_url: str, hashes: dict[str, str]) -> Site:
    return Site(tmp_path, db_url, hashes)


# -- 3. the login throttle ------------------------------------------------------------------------------------


def test_made_up_names_from_one_client_lock_out_no_one_else_behind_the_proxy(site: Site) -> None:
    async def body(browser: Browsers) -> None:
        attacker = browser("203.0.113.9")
        for i in range(5):
            assert await attacker.login(f"made-up-{i}", "guess") == 401
        # a real user with the right password: from another client, and even from the attacker's own address
        assert await browser("198.51.100.4").login() == 303
        assert await browser("203.0.113.9").login("bram") == 303
        # the attacker's address is stopped all the same once it goes on guessing
        answers = [await attacker.login(f"more-{i}", "guess") for i in range(20)]
        assert answers[-1] == 429 and 401 in answers
        assert await browser("198.51.100.4").login("bram") == 303

    site.run(body, trusted='"127.0.0.1"')


def test_failed_passwords_lock_that_account_from_that_client_only(site: Site) -> None:
    async def body(browser: Browsers) -> None:
        guesser = browser("203.0.113.9")
        for _ in range(5):
            assert await guesser.login("anna", "guess") == 401
        assert await guesser.login("anna") == 429  # even the right password waits, from there
        assert await guesser.login("bram") == 303  # another account from that address
        assert await browser("198.51.100.4").login("anna") == 303  # anna from her own address

    site.run(body, trusted='"127.0.0.1/32"')


def test_x_forwarded_for_is_ignored_from_a_peer_that_is_not_a_trusted_proxy(site: Site) -> None:
    async def body(browser: Browsers) -> None:
        answers = [await browser(f"203.0.113.{i}").login(f"made-up-{i}", "guess") for i in range(25)]
        assert answers[-1] == 429  # every guess counted against the peer, whatever address it claims

    site.run(body)  # no trusted_proxies: the peer (127.0.0.1) is the client


# -- 4. sessions ---------------------------------------------------------------------------------------------


def test_a_cookie_saved_before_logout_is_no_login_after_it(site: Site) -> None:
    async def body(browser: Browsers) -> None:
        anna = browser(None)
        assert await anna.login() == 303 and await anna.queue() == 200
        saved = anna.cookie()
        assert await anna.logout() == 303
        replay = browser(None)
        replay.client.cookies.set(SESSION_COOKIE, saved, path=PREFIX)
        assert await replay.queue() == 401

    site.run(body)


def test_sessions_survive_a_restart_and_end_with_a_changed_password(site: Site) -> None:
    async def first(browser: Browsers) -> None:
        for name in ("anna", "bram"):
            staff = browser(None)
            assert await staff.login(name) == 303
            saved[name] = staff.cookie()

    async def again(browser: Browsers, expected: dict[str, int]) -> None:
        for name, status in expected.items():
            staff = browser(None)
            staff.client.cookies.set(SESSION_COOKIE, saved[name], path=PREFIX)
            assert await staff.queue() == status, name

    saved: dict[str, str] = {}
    site.run(first)
    site.run(lambda b: again(b, {"anna": 200, "bram": 200}))
    site.run(lambda b: again(b, {"anna": 401, "bram": 200}), password="new")  # anna's password was changed
    site.run(lambda b: again(b, {"anna": 401}))  # and changing it back does not bring the session back


def test_slabot_dashboard_logout_all_ends_every_session(site: Site) -> None:
    async def body(browser: Browsers) -> None:
        anna, bram = browser(None), browser(None)
        assert await anna.login() == 303 and await bram.login("bram") == 303
        code, out, err = await asyncio.to_thread(run_cli, "--config", str(site.config), "dashboard", "logout-all")
        assert code == 0 and out == "ended 2 dashboard session(s)\n", err
        assert await anna.queue() == 401 and await bram.queue() == 401
        assert await anna.login() == 303 and await anna.queue() == 200  # a new login works

    site.run(body)


def test_a_session_expires_after_session_hours(site: Site) -> None:
    async def body(browser: Browsers) -> None:
        anna = browser(None)
        assert await anna.login() == 303
        site.clock.now += timedelta(hours=1, minutes=59)
        assert await anna.queue() == 200
        site.clock.now += timedelta(minutes=2)
        assert await anna.queue() == 401

    site.run(body, hours=2)


def test_slabot_dashboard_logout_all_names_one_user(site: Site) -> None:
    async def body(browser: Browsers) -> None:
        anna, bram = browser(None), browser(None)
        assert await anna.login() == 303 and await bram.login("bram") == 303
        code, out, err = await asyncio.to_thread(run_cli, "--config", str(site.config), "dashboard", "logout-all",
                                                 "--user", "Anna")
        assert code == 0 and out == "ended 1 dashboard session(s) of Anna\n", err
        assert await anna.queue() == 401 and await bram.queue() == 200

    site.run(body)
