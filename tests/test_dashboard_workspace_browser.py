"""The dashboard as the place where staff work, in a real headless chromium (Selenium, as test_dashboard_browser):
log in, find a WhatsApp ticket by a word of its message, insert a canned answer in the reply box and send it, see
it reach the Twilio stand-in and the first response recorded, classify, quote, resolve.

slabot's whole application runs on a loopback port with WhatsApp configured against the Twilio stand-in (served
in a thread of its own). ``SLABOT_SCREENSHOTS=DIR`` keeps screenshots of the queue and the ticket there
(``docs/screenshots.py`` makes the documentation's images this way).
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from helpers import add_account, contact, email, pipeline, whatsapp
from test_dashboard import NOW, PASSWORD, SECRET_KEY
from test_dashboard_browser import CHROMEDRIVER, CHROMIUM, ServedApp, browser  # noqa: F401 - browser is a fixture

from bot.app import Application
from bot.billing import Billing
from bot.canned import CannedAnswers
from bot.config import load_config
from bot.demo.standins.loopback import free_port, serving
from bot.demo.standins.twilio import TwilioStandIn
from bot.desk import Desk
from bot.presets import load_preset
from bot.web.dashboard.auth import hash_password
from storage.database import open_database
from storage.repositories import TicketRepository

pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="the browser tests need Debian's chromium and chromium-driver")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser tests need selenium (the test extra)")
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

PIET = "+31612345678"
OUR_NUMBER = "whatsapp:+31634890878"
QUESTION = "Mijn campagne staat nog op concept en de verzendknop doet niets"
CANNED = "Dag {contact}, we kijken naar {ref} en melden ons vandaag. Groet, {staff}"
SHOTS = os.environ.get("SLABOT_SCREENSHOTS")


class StandInThread:
    """The Twilio stand-in served by uvicorn in a thread with its own event loop."""

    def __init__(self, standin: TwilioStandIn) -> None:
        self.standin = standin
        self.url = ""
        self.ready = threading.Event()
        self.stop_event: asyncio.Event | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=lambda: self.loop.run_until_complete(self._main()), daemon=True)

    async def _main(self) -> None:
        self.stop_event = asyncio.Event()
        async with serving(self.standin.app()) as url:
            self.url = url
            self.ready.set()
            await self.stop_event.wait()

    def __enter__(self) -> str:
        self.thread.start()
        assert self.ready.wait(10), "the Twilio stand-in did not start"
        return self.url

    def __exit__(self, *exc: object) -> None:
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, TwilioStandIn]]:
    """The application with WhatsApp on the stand-in; (base URL, database URL, stand-in)."""
    folder = tmp_path_factory.mktemp("workspace-browser")
    url = f"sqlite:///{folder / 'slabot.db'}"
    seed = open_database(url)
    add_account(seed, "Bakkerij Jansen", "ondersteuning", contact("Piet", phone=PIET), staff="anna")
    add_account(seed, "Fietsen Noord", "licentie", contact("Eva", email="eva@fietsen-noord.nl"))
    started_at = NOW - timedelta(minutes=20)
    pipeline(seed, "mailcampaigns", started_at).ingest(whatsapp("SM-browser-1", PIET, QUESTION,
                                                                received_at=started_at))
    for minutes, (sender, subject, text) in enumerate((
            ("eva@fietsen-noord.nl", "Import contactpersonen", "Hoe importeer ik een lijst met 2.000 adressen?"),
            ("onbekend@elders.example", "Offerte", "Wat kost een nieuw sjabloon voor onze nieuwsbrief?"),
            ("eva@fietsen-noord.nl", "Bounces", "Veel adressen komen terug als onbestelbaar.")), start=1):
        when = started_at - timedelta(days=minutes)
        pipeline(seed, "mailcampaigns", when).ingest(email(f"<{minutes}@seed>", sender, text, subject=subject,
                                                           received_at=when))
    CannedAnswers(seed).add("bedankt", "nl", CANNED, "anna")
    seed.dispose()
    standin = TwilioStandIn()
    with StandInThread(standin) as twilio_url:
        port = free_port()
        config = folder / "slabot.toml"
        config.write_text(
            f'preset = "mailcampaigns"\n[database]\nurl = "{url}"\n[http]\nhost = "127.0.0.1"\nport = {port}\n'
            f'[twilio]\naccount_sid = "AC{"0" * 32}"\nauth_token = "token"\nwhatsapp_from = "{OUR_NUMBER}"\n'
            f'api_base_url = "{twilio_url}"\n'
            f'[dashboard]\nsecret_key = "{SECRET_KEY}"\n'
            f'[[dashboard.users]]\nname = "anna"\npassword_hash = "{hash_password(PASSWORD)}"\n'
            f'[[dashboard.users]]\nname = "bram"\npassword_hash = "{hash_password(PASSWORD)}"\n', encoding="utf-8")
        began = time.monotonic()
        app = ServedApp(Application(load_config(config), now=lambda: NOW + timedelta(seconds=time.monotonic() - began),
                                    dispatch_interval=0.2))
        app.start()
        try:
            yield f"http://127.0.0.1:{port}", url, standin
        finally:
            app.stop()


def shot(driver: WebDriver, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(Path(SHOTS) / name))


def press(driver: WebDriver, element_id: str) -> None:
    """Click the button and wait until the next page has replaced this one.

    The live update may put a new copy of the button's part in place between finding the button and clicking it
    (chromedriver: the node "does not belong to the document"; no click was made): the new button is clicked. A
    click that chromedriver reports as failed because the page was already going (the form submitted) is not made
    again."""
    page = driver.find_element(By.TAG_NAME, "html")
    for attempt in range(3):
        try:
            driver.find_element(By.ID, element_id).click()
            break
        except WebDriverException:
            if replaced(page)(driver):
                break
            if attempt == 2:
                raise
    WebDriverWait(driver, 10).until(replaced(page))


def replaced(page: WebElement) -> Callable[[WebDriver], bool]:
    """Selenium's ``staleness_of``, also for chromedriver's other word for it: a node that "does not belong to the
    document" (reported as an unknown error while the next page replaces this one)."""
    def check(driver: WebDriver) -> bool:
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    return check


def flash(driver: WebDriver) -> str:
    WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: d.find_elements(By.ID, "flash") or d.find_elements(By.ID, "flash-error"))
    errors = driver.find_elements(By.ID, "flash-error")
    assert not errors, errors[0].text
    return str(driver.find_element(By.ID, "flash").text)


def test_find_reply_with_a_canned_answer_classify_quote_resolve(browser: WebDriver,  # noqa: F811
                                                                 workspace: tuple[str, str, TwilioStandIn]) -> None:
    base, db_url, standin = workspace
    browser.get(f"{base}/dashboard/")
    browser.find_element(By.ID, "name").send_keys("anna")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    press(browser, "login-button")
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "search-q"))
    shot(browser, "dashboard-queue.png")
    # find it by a word of its message
    browser.find_element(By.ID, "search-q").send_keys("verzendknop")
    press(browser, "search-button")
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "found"))
    found = browser.find_elements(By.CSS_SELECTOR, "#queue tbody tr")
    assert len(found) == 1 and "q=verzendknop" in browser.current_url
    ref = str(found[0].get_attribute("data-ref"))
    page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.LINK_TEXT, ref).click()
    WebDriverWait(browser, 10).until(replaced(page))
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "reply-text"))
    # a canned answer in the reply box, filled from the ticket, sent over WhatsApp
    Select(browser.find_element(By.ID, "canned-name")).select_by_value("bedankt")
    press(browser, "canned-insert")
    expected = f"Dag Piet, we kijken naar {ref} en melden ons vandaag. Groet, anna"
    WebDriverWait(browser, 10).until(
        lambda d: d.find_element(By.ID, "reply-text").get_attribute("value") == expected)
    press(browser, "send-reply")
    assert "de klant geantwoord" in flash(browser)
    deadline = time.monotonic() + 15
    while not any(s["body"] == expected for s in standin.sent) and time.monotonic() < deadline:
        time.sleep(0.1)
    sent = [s for s in standin.sent if s["body"] == expected]
    assert len(sent) == 1 and sent[0]["to"] == f"whatsapp:{PIET}"
    db = open_database(db_url)
    try:
        record = db.run(lambda s: TicketRepository(s).by_ref(ref))
        assert record is not None and record.first_responded_at is not None  # the first response (R8)
    finally:
        db.dispose()
    assert expected in browser.find_element(By.ID, "timeline").text
    # classify with the reason, quote, resolve
    Select(browser.find_element(By.ID, "kind")).select_by_value("service")
    browser.find_element(By.ID, "classify-reason").send_keys("campagne-instellingen: betaalde service")
    press(browser, "classify")
    assert "ingedeeld als service" in flash(browser)
    browser.find_element(By.ID, "quote-hours").send_keys("2")
    press(browser, "send-quote")
    assert "offerte van 2 uur" in flash(browser)
    browser.execute_script("document.getElementById('timeline').scrollIntoView()")
    shot(browser, "dashboard-ticket.png")
    press(browser, "resolve")
    assert "opgelost" in flash(browser)
    assert browser.find_elements(By.ID, "reopen") and not browser.find_elements(By.ID, "reply-text")
    db = open_database(db_url)
    try:
        record = db.run(lambda s: TicketRepository(s).by_ref(ref))
        assert record is not None and record.state == "resolved" and record.kind == "service"
    finally:
        db.dispose()


def test_a_ticket_updates_without_a_reload_and_shows_a_colleague_typing(browser: WebDriver,  # noqa: F811
                                                                         workspace: tuple[str, str, TwilioStandIn]
                                                                         ) -> None:
    base, db_url, _ = workspace
    browser.get(f"{base}/dashboard/?q=onbestelbaar")
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "found"))
    ref = str(browser.find_element(By.CSS_SELECTOR, "#queue tbody tr[data-ref]").get_attribute("data-ref"))
    browser.get(f"{base}/dashboard/tickets/{ref}")
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "timeline"))
    browser.execute_script("window.stillTheSamePage = true")
    Select(browser.find_element(By.ID, "cause")).select_by_value("outside")  # Anna's choice, not yet sent,
    browser.execute_script("document.activeElement.blur()")  # and she looks elsewhere
    db = open_database(db_url)
    try:
        # a colleague classifies the ticket (the forms change with it), then writes a note
        Billing(db, load_preset("mailcampaigns")).classify(ref, "service", "bram", reason="campagne: betaald")
        Desk(db).note(ref, "bram", "Eva belt om half vier terug")
    finally:
        db.dispose()
    WebDriverWait(browser, 15, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: "Eva belt om half vier terug" in d.find_element(By.ID, "timeline").text)
    assert browser.execute_script("return window.stillTheSamePage") is True  # updated in place, no reload
    # the colleague's change is shown, and the form Anna made a choice in is left as she left it
    assert Select(browser.find_element(By.ID, "cause")).first_selected_option.get_attribute("value") == "outside"
    with httpx.Client(base_url=base) as bram:  # a colleague opens the same ticket and types
        form = bram.get("/dashboard/login").text
        token = re.search(r'name="csrf" value="([^"]+)"', form)
        assert token is not None
        bram.post("/dashboard/login", data={"csrf": token.group(1), "name": "bram", "password": PASSWORD})
        assert bram.get(f"/dashboard/api/live?ref={ref}&typing=1").json()["others"] == [
            {"name": "anna", "typing": False}]
        WebDriverWait(browser, 15).until(lambda d: "bram" in d.find_element(By.ID, "presence").text)
        assert "typt" in browser.find_element(By.ID, "presence").text


def test_at_390_pixels_wide_nothing_scrolls_sideways(browser: WebDriver,  # noqa: F811
                                                    workspace: tuple[str, str, TwilioStandIn]) -> None:
    base, _, _ = workspace
    browser.set_window_size(390, 844)
    try:
        browser.get(f"{base}/dashboard/")
        if browser.find_elements(By.ID, "login-form"):
            browser.find_element(By.ID, "name").send_keys("anna")
            browser.find_element(By.ID, "password").send_keys(PASSWORD)
            press(browser, "login-button")
        WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "search-q"))
        width = int(browser.execute_script("return document.documentElement.scrollWidth"))
        inner = int(browser.execute_script("return window.innerWidth"))
        assert width <= inner, (width, inner)
        logout = browser.find_element(By.ID, "logout")
        assert logout.is_displayed() and logout.rect["x"] + logout.rect["width"] <= inner
    finally:
        browser.set_window_size(1400, 900)
