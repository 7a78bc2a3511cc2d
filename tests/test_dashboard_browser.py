"""The staff dashboard in a real headless browser: Debian's chromium driven by Selenium (chromedriver).

slabot's whole application runs with uvicorn on a free loopback port in a thread of its own, with the dashboard
configured and the pay.nl queue of ``test_dashboard`` stored; its clock runs from Monday 23 November 2026 16:00.
One browser for the module: refused without a login, logged in, the queue in R15 order with its colours, a
countdown that moves, the report with its chart, a ticket page, and screenshots kept in ``tests/artifacts/``. Skipped (with the reason)
where chromium or chromedriver is not installed; ``.ci/run`` installs both.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from helpers import free_port
from test_dashboard import NOW, PASSWORD, SECRET_KEY, Queue, seed_queue

from bot.app import Application
from bot.config import load_config
from bot.web.dashboard.auth import hash_password
from storage.database import open_database

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="the browser tests need Debian's chromium and chromium-driver (apt-get install -y chromium "
           "chromium-driver; .ci/run installs them)")

webdriver = pytest.importorskip("selenium.webdriver", reason="the browser tests need selenium (the test extra)")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


class ServedApp:
    """slabot's :class:`Application` running in a thread with its own event loop until :meth:`stop`."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="slabot", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to the test
            self.error = exc
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self.stop_event = asyncio.Event()
        await self.app.run(self.stop_event)

    def start(self, timeout: float = 20.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.app.started.is_set():
            if self.error is not None or not self.thread.is_alive():
                raise AssertionError(f"slabot did not start: {self.error!r}")
            if time.monotonic() > deadline:
                raise AssertionError("slabot did not start in time")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.stop_event is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(15)
        if self.error is not None:
            raise self.error


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Queue]]:
    """The application on a loopback port; its base URL and the stored queue."""
    folder = tmp_path_factory.mktemp("dashboard-browser")
    url = f"sqlite:///{folder / 'slabot.db'}"
    seed = open_database(url)
    queue = seed_queue(seed)
    seed.dispose()
    port = free_port()
    config = folder / "slabot.toml"
    config.write_text(
        f'preset = "paynl"\n[database]\nurl = "{url}"\n[http]\nhost = "127.0.0.1"\nport = {port}\n'
        f'[dashboard]\nsecret_key = "{SECRET_KEY}"\n'
        f'[[dashboard.users]]\nname = "anna"\npassword_hash = "{hash_password(PASSWORD)}"\n', encoding="utf-8")
    started = time.monotonic()

    def clock() -> datetime:  # Monday 16:00 when the module starts, then running on
        return NOW + timedelta(seconds=time.monotonic() - started)

    served_app = ServedApp(Application(load_config(config), now=clock, dispatch_interval=0.2))
    served_app.start()
    try:
        yield f"http://127.0.0.1:{port}", queue
    finally:
        served_app.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """One headless chromium for the module."""
    assert CHROMIUM is not None and CHROMEDRIVER is not None
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,900", "--lang=nl-NL", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": "nl-NL,nl"})  # the Dutch dashboard
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def rows(driver: WebDriver) -> list[tuple[str, str]]:
    """(ref, deadline state) of the queue's rows, top to bottom."""
    return [(str(row.get_attribute("data-ref")), str(row.get_attribute("data-due-state")))
            for row in driver.find_elements(By.CSS_SELECTOR, "#queue tbody tr[data-ref]")]


def countdown(driver: WebDriver, ref: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, f'tr[data-ref="{ref}"] .countdown').text)


def test_refused_without_a_login(browser: WebDriver, served: tuple[str, Queue]) -> None:
    base, queue = served
    browser.get(f"{base}/dashboard/tickets/{queue.premium_first}")
    assert browser.current_url == f"{base}/dashboard/login?next=/dashboard/tickets/{queue.premium_first}"
    assert browser.find_element(By.ID, "login-form").is_displayed()
    assert "Premium BV" not in browser.page_source and "Vraag over storing" not in browser.page_source
    browser.get(f"{base}/dashboard/api/queue")
    assert "login required" in browser.page_source and "PN-" not in browser.page_source
    browser.get(f"{base}/dashboard/login")
    browser.find_element(By.ID, "name").send_keys("anna")
    browser.find_element(By.ID, "password").send_keys("not the password")
    browser.find_element(By.ID, "login-button").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "login-error"))  # the answer has loaded
    assert "Onbekende naam of verkeerd wachtwoord." in browser.find_element(By.ID, "login-error").text
    assert browser.find_elements(By.ID, "queue") == []


@pytest.fixture(scope="module")
def logged_in(browser: WebDriver, served: tuple[str, Queue]) -> WebDriver:
    base, _ = served
    browser.get(f"{base}/dashboard/")
    browser.find_element(By.ID, "name").send_keys("anna")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login-button").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "queue"))
    assert browser.current_url == f"{base}/dashboard/"
    return browser


def test_queue_premium_first_then_by_deadline_coloured(logged_in: WebDriver, served: tuple[str, Queue]) -> None:
    _, queue = served
    browser = logged_in
    assert [ref for ref, _ in rows(browser)] == queue.order
    states = dict(rows(browser))
    assert states[queue.breached] == "breached" and states[queue.soon] == "soon"
    assert states[queue.premium_first] == "ok" and states[queue.answered] == "met"

    def background(ref: str) -> str:
        return str(browser.execute_script(
            "return getComputedStyle(document.querySelector(arguments[0])).backgroundColor",
            f'tr[data-ref="{ref}"]'))

    colours = {background(queue.breached), background(queue.soon), background(queue.premium_first)}
    assert len(colours) == 3, colours  # breached, due soon and on time look different
    assert "overdue" not in countdown(browser, queue.breached) and "verlopen" in countdown(browser, queue.breached)


def test_a_countdown_moves_every_second(logged_in: WebDriver, served: tuple[str, Queue]) -> None:
    _, queue = served
    first = countdown(logged_in, queue.soon)
    assert re.fullmatch(r"00:[0-5]\d:\d\d", first), first  # less than an hour to go
    WebDriverWait(logged_in, 5, poll_frequency=0.1).until(lambda d: countdown(d, queue.soon) != first)
    second = countdown(logged_in, queue.soon)
    assert re.fullmatch(r"00:[0-5]\d:\d\d", second) and second < first
    assert re.fullmatch(r"−\d+d \d\d:\d\d:\d\d verlopen", countdown(logged_in, queue.breached))
    assert re.fullmatch(r"\d\d:\d\d:\d\d", countdown(logged_in, queue.premium_first))
    assert dict(rows(logged_in))[queue.soon] == "soon"  # the script agrees with the server's colours


def test_screenshot_of_the_queue(logged_in: WebDriver) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "dashboard-queue.png"
    assert logged_in.save_screenshot(str(path))
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    print(f"screenshot of the dashboard's queue: {path}")


def test_report_page_with_its_chart(logged_in: WebDriver, served: tuple[str, Queue]) -> None:
    base, queue = served
    logged_in.get(f"{base}/dashboard/report?from=2026-11-16&to=2026-11-23")
    chart = logged_in.find_element(By.ID, "report-chart")
    WebDriverWait(logged_in, 20).until(
        lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", chart))
    assert int(logged_in.execute_script("return arguments[0].naturalWidth", chart)) > 300
    assert queue.breached in logged_in.find_element(By.ID, "report-breaches").text
    plans = logged_in.find_element(By.ID, "report-plans").text
    assert "Business" in plans and "50%" in plans
    logged_in.save_screenshot(str(ARTIFACTS / "dashboard-report.png"))
    logged_in.find_element(By.ID, "nav-queue").click()
    WebDriverWait(logged_in, 10).until(lambda d: d.find_elements(By.ID, "queue"))


def test_ticket_page_from_the_queue(logged_in: WebDriver, served: tuple[str, Queue]) -> None:
    base, queue = served
    logged_in.find_element(By.LINK_TEXT, queue.premium_first).click()
    WebDriverWait(logged_in, 10).until(lambda d: d.find_elements(By.ID, "ticket-ref"))
    assert logged_in.current_url == f"{base}/dashboard/tickets/{queue.premium_first}"
    assert logged_in.find_element(By.ID, "ticket-ref").text.startswith(queue.premium_first)
    timeline = logged_in.find_element(By.ID, "timeline").text
    assert "Vraag over storing" in timeline and "Bericht van pia@premium.example" in timeline
    assert "Ticket geopend" in timeline and "Herinnering" in timeline and "()" not in timeline
    assert "Pia is a contact person of Premium BV" in logged_in.find_element(By.ID, "decisions").text
    logged_in.save_screenshot(str(ARTIFACTS / "dashboard-ticket.png"))
    logged_in.find_element(By.ID, "logout").click()
    WebDriverWait(logged_in, 10).until(lambda d: d.find_elements(By.ID, "login-form"))
    logged_in.get(f"{base}/dashboard/")
    assert logged_in.find_elements(By.ID, "login-form") and logged_in.find_elements(By.ID, "queue") == []
