"""R15 everywhere a queue is shown or walked: critical Premium, critical Business, other critical, Premium, then
the rest by deadline; in `slabot tickets list` (text and JSON), the staff chat's /queue and its paging rounds, and
the dashboard's queue; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path

from helpers import add_account, at, contact, email, pipeline, run_cli, whatsapp
from pydantic import SecretStr
from test_telegram_standin import serving

from bot.config import TelegramConfig
from bot.demo.standins.telegram import TelegramStandIn
from bot.intake import IntakePipeline
from bot.staffchat.staffbot import StaffBot
from channels.identity import phone_identity
from channels.messages import ChannelName, InboundMessage
from storage.database import Database

STAFF_CHAT, ONCALL_CHAT, ANNA = -1001234567890, -100777, 501
PIONEER, PRO, BUSINESS, PREMIUM, STRANGER = "+31611000001", "+31611000002", "+31611000003", "+31611000004", \
    "+31699999999"


@dataclass(frozen=True)
class Mix:
    """Open pay.nl tickets of every kind, opened in an order that is none of the queue's."""

    pioneer: str  # WhatsApp, Pioneer: no deadline
    business: str  # e-mail, Business: due Wednesday
    pro_critical: str  # the outage line, Professional: no SLA
    premium: str  # e-mail, Premium: due Tuesday
    business_critical: str  # the outage line, Business
    pioneer_critical: str  # the outage line, Pioneer (chat only: the outage line is open to every plan, R5)
    stranger_critical: str  # the outage line, a number matching no account
    premium_critical: str  # the outage line, Premium

    @property
    def order(self) -> list[str]:
        return [self.premium_critical, self.business_critical, self.pro_critical, self.pioneer_critical,
                self.stranger_critical, self.premium, self.business, self.pioneer]


def outage_call(intake: IntakePipeline, call_id: str, caller: str, hour: int) -> str:
    ref = intake.ingest(InboundMessage(ChannelName.PHONE, call_id, phone_identity(caller), at(2026, 11, 23, hour),
                                       "Betalingen falen", critical=True)).ticket_ref
    assert ref is not None, call_id
    return ref


def seed_mix(db: Database) -> Mix:
    """The mix of :class:`Mix`, Monday 23 November 2026 at night and in the morning."""
    add_account(db, "Pioneer BV", "pioneer", contact("Pien", phone=PIONEER, email="pien@pioneer.example"))
    add_account(db, "Pro BV", "professional", contact("Pim", phone=PRO))
    add_account(db, "Business BV", "business", contact("Bob", phone=BUSINESS, email="bob@business.example"))
    add_account(db, "Premium BV", "premium", contact("Pia", phone=PREMIUM, email="pia@premium.example"))
    intake = pipeline(db, "paynl", at(2026, 11, 23, 11))

    def ref_of(message: InboundMessage) -> str:
        ref = intake.ingest(message).ticket_ref
        assert ref is not None
        return ref

    pioneer = ref_of(whatsapp("SM1", PIONEER, "Vraag over de app", received_at=at(2026, 11, 23, 1)))
    business = ref_of(email("<b@x>", "bob@business.example", "Vraag", received_at=at(2026, 11, 23, 2)))
    pro_critical = outage_call(intake, "c3", PRO, 3)
    premium = ref_of(email("<p@x>", "pia@premium.example", "Vraag", received_at=at(2026, 11, 23, 4)))
    business_critical = outage_call(intake, "c5", BUSINESS, 5)
    pioneer_critical = outage_call(intake, "c6", PIONEER, 6)
    stranger_critical = outage_call(intake, "c7", STRANGER, 7)
    premium_critical = outage_call(intake, "c8", PREMIUM, 8)
    return Mix(pioneer, business, pro_critical, premium, business_critical, pioneer_critical, stranger_critical,
               premium_critical)


def _config(tmp_path: Path, db_url: str) -> Path:
    config = tmp_path / "slabot.toml"
    config.write_text(f'preset = "paynl"\n[database]\nurl = "{db_url}"\n', encoding="utf-8")
    return config


def test_tickets_list_puts_critical_premium_then_critical_business_then_other_critical_then_premium_first(
        db: Database, db_url: str, tmp_path: Path) -> None:
    mix = seed_mix(db)
    config = str(_config(tmp_path, db_url))
    code, out, err = run_cli("--config", config, "tickets", "list", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [t["ref"] for t in listed] == mix.order
    assert [(t["plan"], t["priority"]) for t in listed] == [
        ("premium", "critical"), ("business", "critical"), ("professional", "critical"), ("pioneer", "critical"),
        (None, "critical"), ("premium", "normal"), ("business", "normal"), ("pioneer", "normal")]
    code, text, _ = run_cli("--config", config, "tickets", "list")
    assert code == 0 and [line.split()[0] for line in text.splitlines()[1:]] == mix.order  # under the header
    code, out, _ = run_cli("--config", config, "tickets", "list", "--state", "open", "--json")
    assert [t["ref"] for t in json.loads(out)] == mix.order  # every open state, the unverified one too


def test_the_staff_chat_queue_and_its_pages_follow_r15(db: Database) -> None:
    mix = seed_mix(db)
    standin = TelegramStandIn()
    now = at(2026, 11, 23, 11)

    async def main() -> None:
        async with serving(standin.app()) as url:
            config = TelegramConfig(token=SecretStr("123:TEST"), staff_chat_id=STAFF_CHAT, staff_user_ids=[ANNA],
                                    oncall_chat_id=ONCALL_CHAT, api_base_url=url)
            bot = StaffBot(config, db, now=lambda: now, announce_every=None,
                           pipeline=pipeline(db, "paynl", now))
            await bot.start()
            try:
                # every outage is paged, the critical Premium and Business ones first
                assert await bot.page_oncall() == 5
                pages = [s.text or "" for s in standin.messages_to(ONCALL_CHAT)]
                paged = [re.search(r"PN-\d+", page).group(0) for page in pages]  # type: ignore[union-attr]
                assert paged == mix.order[:5]
                assert "Pioneer BV" in pages[3]
                standin.push_message(STAFF_CHAT, ANNA, "/queue", username="anna")
                for _ in range(250):
                    if standin.messages_to(STAFF_CHAT):
                        break
                    await asyncio.sleep(0.02)
                (queue,) = [s.text or "" for s in standin.messages_to(STAFF_CHAT)]
                lines = queue.splitlines()
                assert [line.split(" · ")[0].removeprefix("🚨 ") for line in lines] == mix.order
                assert all(line.startswith("🚨 ") for line in lines[:5])  # the outages stand out
                assert not any(line.startswith("🚨") for line in lines[5:])
            finally:
                await bot.stop()

    asyncio.run(main())


def test_the_dashboards_queue_follows_r15_and_marks_only_premium_plans_premium(db: Database) -> None:
    from test_dashboard import PASSWORD, Browser, dashboard_config, refs_in, serve

    from bot.web.dashboard.auth import hash_password
    from bot.web.dashboard.web import Dashboard

    mix = seed_mix(db)
    dashboard = Dashboard(dashboard_config(hash_password(PASSWORD)), db, pipeline(db, "paynl").preset,
                          now=lambda: at(2026, 11, 23, 11))

    async def body(b: Browser) -> None:
        await b.login()
        assert refs_in((await b.get("/")).text) == mix.order
        api = (await b.get("/api/queue")).json()
        assert [t["ref"] for t in api["tickets"]] == mix.order
        # "premium" is the plan's own place (Premium), not the outage's: a critical Pioneer call is not Premium
        assert [t["ref"] for t in api["tickets"] if t["premium"]] == [mix.premium_critical, mix.premium]

    serve(dashboard, body)
