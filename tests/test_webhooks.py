"""Outgoing webhooks end to end: ``slabot run`` POSTs ticket.created, message.created, ticket.resolved and
sla.breached to a receiver on loopback that checks ``X-Slabot-Signature``; each event id arrives once when all goes
well, is retried with backoff (the same bytes) when the receiver fails, and is failed and told to staff after a
day; a staff reply on a platform ticket goes to the webhook that takes message.created; ``slabot webhooks test``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from helpers import MONDAY_10, free_port, run_cli, ticket, until
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from sqlalchemy import select
from test_api import new_key, seed, serve, write_config

from bot.desk import Desk
from bot.web.server import HttpServer
from storage import models as m
from storage.database import Database, open_database
from storage.webhooks import WebhookState, deliveries

SECRET = "a-secret-of-the-crm-0123"


@dataclass
class Receiver:
    """A webhook endpoint on loopback: keeps every POST whose signature is right, refuses the others."""

    fail: int = 0  # answer 500 to this many more requests
    events: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    bad_signatures: int = 0
    url: str = ""

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("x-slabot-signature", "")):
            self.bad_signatures += 1
            return Response(status_code=401)
        self.bodies.append(body)
        if self.fail:
            self.fail -= 1
            return Response("down for maintenance", status_code=500)
        self.events.append(json.loads(body))
        return JSONResponse({"ok": True})

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_]


@asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    server = HttpServer([Route("/hooks", receiver.endpoint, methods=["POST"])], "127.0.0.1", 0)
    await server.start()
    receiver.url = f"http://127.0.0.1:{server.port}/hooks"
    try:
        yield receiver
    finally:
        await server.stop()


def hook_config(url: str, events: str = '"ticket.created", "message.created", "ticket.resolved", "sla.breached"'
                ) -> str:
    return f'[[webhooks]]\nname = "crm"\nurl = "{url}"\nsecret = "{SECRET}"\nevents = [{events}]\n'


def seeded(db_url: str) -> tuple[int, Database, list[datetime]]:
    """A port for slabot, the seeded database opened, and the clock slabot runs on (its last entry)."""
    seed(db_url)
    return free_port(), open_database(db_url), [MONDAY_10]


async def post_request(client: httpx.AsyncClient, port: int, key: str, text: str, **extra: Any) -> Any:
    """Piet's request filed through the API; its answer's JSON."""
    answer = await client.post(f"http://127.0.0.1:{port}/api/v1/requests", headers={"Authorization": f"Bearer {key}"},
                               json={"contact": {"email": "piet@bakkerij-jansen.nl"}, "text": text, **extra})
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_every_event_reaches_the_endpoint_once_signed(tmp_path: Path, db_url: str) -> None:
    port, stored, clock = seeded(db_url)

    async def main() -> None:
        async with receiving() as receiver:
            config = write_config(tmp_path, db_url, port, hook_config(receiver.url))
            key = new_key(config)
            async with serve(config, lambda: clock[-1]), httpx.AsyncClient() as client:
                filed = await post_request(client, port, key, "De nieuwsbrief blijft hangen.")
                ref = filed["ref"]
                await until(lambda: len(receiver.events) == 3, what="ticket.created and two message.created")
                (created,) = receiver.of("ticket.created")
                assert created["ticket"]["ref"] == ref and created["at"] == "2026-11-23T10:00:00+01:00"
                assert created["ticket"]["first_response_due"] == "2026-11-26T10:00:00+01:00"
                directions = sorted(e["message"]["direction"] for e in receiver.of("message.created"))
                assert directions == ["in", "out"]

                clock.append(MONDAY_10 + timedelta(hours=2))
                desk = Desk(stored, now=lambda: clock[-1])
                await asyncio.to_thread(desk.reply, ref, "We hebben het gevonden.", "anna")
                await until(lambda: len(receiver.of("message.created")) == 3, what="the staff reply")
                reply = receiver.of("message.created")[-1]
                assert reply["message"]["text"] == "We hebben het gevonden." and reply["message"]["staff"] == "anna"
                assert reply["ticket"]["first_responded_at"] is not None
                # the webhook that takes message.created is the reply's way to the customer: no e-mail needed
                await until(lambda: ticket(stored, ref).messages[-1].delivery_state == "sent", what="sent")
                await asyncio.to_thread(desk.resolve, ref, "anna")
                await until(lambda: len(receiver.of("ticket.resolved")) == 1, what="ticket.resolved")
                assert receiver.of("ticket.resolved")[0]["ticket"]["state"] == "resolved"

                # a ticket left unanswered past its deadline: sla.breached, once
                late = await post_request(client, port, key, "Nog een vraag.")
                await until(lambda: len(receiver.of("ticket.created")) == 2, what="the second ticket")
                clock.append(MONDAY_10 + timedelta(days=3, hours=3))  # Thursday 13:00: an hour past its 12:00
                await until(lambda: len(receiver.of("sla.breached")) == 1, what="sla.breached")
                breached = receiver.of("sla.breached")[0]
                assert breached["ticket"]["ref"] == late["ref"] and breached["at"] == "2026-11-26T12:00:00+01:00"
                await asyncio.sleep(0.3)  # further rounds queue no second breach
                assert len(receiver.of("sla.breached")) == 1 and receiver.bad_signatures == 0
                ids = [e["id"] for e in receiver.events]
                assert len(ids) == len(set(ids)) == 9 and set(receiver.events[0]) >= {"id", "type", "at", "ticket"}

    try:
        asyncio.run(main())
        assert {d.state for d in stored.run(deliveries)} == {WebhookState.DELIVERED}
    finally:
        stored.dispose()


def test_a_failing_endpoint_is_retried_then_failed_and_told_to_staff(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'slabot.db'}"
    port, stored, clock = seeded(db_url)

    async def main() -> None:
        async with receiving() as receiver:
            config = write_config(tmp_path, db_url, port, hook_config(receiver.url, '"ticket.created"'))
            key = new_key(config)
            async with serve(config, lambda: clock[-1]), httpx.AsyncClient() as client:
                receiver.fail = 2
                await post_request(client, port, key, "Help")
                await until(lambda: len(receiver.bodies) == 1, what="the first attempt")
                await asyncio.sleep(0.2)
                assert len(receiver.bodies) == 1  # backoff: not again at once
                for minutes in (1, 3):
                    clock.append(MONDAY_10 + timedelta(minutes=minutes))
                    await until(lambda: len(receiver.bodies) == minutes // 2 + 2, what="a retry")
                assert len(set(receiver.bodies)) == 1 and len(receiver.events) == 1  # the same bytes, taken once
                await asyncio.sleep(0.2)
                assert len(receiver.bodies) == 3

                receiver.fail = 1000
                await post_request(client, port, key, "Nog iets", subject="MC-99999")
                await until(lambda: len(receiver.bodies) == 4, what="the second event's first attempt")
                # the clock moves on only once the first attempt's answer is recorded: one recorded after
                # the day is over gives up at once, with one attempt
                await until(lambda: any(d.attempts == 1 and d.last_status == 500 for d in stored.run(deliveries)),
                            what="the second event's first attempt recorded")
                clock.append(MONDAY_10 + timedelta(hours=25))
                await until(lambda: any(d.state is WebhookState.FAILED for d in stored.run(deliveries)),
                            what="failed after a day")

    try:
        asyncio.run(main())
        failed = [d for d in stored.run(deliveries) if d.state is WebhookState.FAILED]
        assert len(failed) == 1 and failed[0].last_status == 500 and failed[0].attempts == 2
        events = stored.run(lambda s: s.scalars(select(m.Event).where(m.Event.kind == "webhook_failed")).all())
        assert len(events) == 1 and events[0].data["staff_told"] and events[0].data["recipient"] == "crm"
    finally:
        stored.dispose()


def test_webhooks_test_sends_a_signed_event_and_prints_the_answer(tmp_path: Path) -> None:
    async def main() -> None:
        async with receiving() as receiver:
            config = write_config(tmp_path, f"sqlite:///{tmp_path / 'slabot.db'}", free_port(),
                                  hook_config(receiver.url))
            code, out, err = await asyncio.to_thread(run_cli, "--config", str(config), "webhooks", "test", "crm")
            assert code == 0, err
            assert out.startswith("200\n") and '"ok":true' in out
            (event,) = receiver.events
            assert event["type"] == "webhook.test" and event["ticket"] is None
            receiver.fail = 1
            code, out, _ = await asyncio.to_thread(run_cli, "--config", str(config), "webhooks", "test", "crm")
            assert code == 1 and out.startswith("500\n")
            code, _, err = await asyncio.to_thread(run_cli, "--config", str(config), "webhooks", "test", "erp")
            assert code == 2 and "configured: crm" in err

    asyncio.run(main())
