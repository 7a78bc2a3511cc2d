"""The platform intake API over real HTTP (``slabot run``'s server on a loopback port, httpx as the host product):
bearer keys made by ``slabot api-keys``, requests that get every channel's decisions (R1-R8, R23), retries by
``external_id`` stored once, RFC 9457 problems for every refusal, the OpenAPI document, and staff replies on a
platform ticket mailed to the contact. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import (
    MONDAY_10,
    add_account,
    app_running,
    contact,
    count_rows,
    free_port,
    run_cli,
    table_locked,
    ticket,
    until,
)
from smtpsink import smtp_sink

from bot.config import load_config
from bot.desk import Desk
from storage.database import open_database

PIET = "piet@bakkerij-jansen.nl"


def write_config(tmp_path: Path, db_url: str, port: int, extra: str = "") -> Path:
    config = tmp_path / "slabot.toml"
    config.write_text(f'preset = "mailcampaigns"\n[database]\nurl = "{db_url}"\n'
                      f'[http]\nhost = "127.0.0.1"\nport = {port}\n{extra}', encoding="utf-8")
    return config


def seed(db_url: str) -> None:
    db = open_database(db_url)
    try:
        add_account(db, "Bakkerij Jansen", "licentie",
                    contact("Piet Jansen", email=PIET, phone="+31612345678"),
                    contact("Webbureau Pixel", email="info@pixel.example", role="third_party", authorised=False))
    finally:
        db.dispose()


def new_key(config: Path, name: str = "crm") -> str:
    code, out, err = run_cli("--config", str(config), "api-keys", "create", name)
    assert code == 0, err
    return out.strip()


def serve(config: Path, now: Callable[[], datetime] = lambda: MONDAY_10, **kwargs: Any) -> Any:
    from bot.app import Application

    return app_running(Application(load_config(config), now=now, dispatch_interval=0.05, **kwargs))


REQUEST = {"contact": {"email": "Piet@Bakkerij-Jansen.nl"}, "subject": "Nieuwsbrief blijft hangen",
           "text": "Sinds vanochtend wordt onze nieuwsbrief niet verstuurd.", "external_id": "crm-4711"}


def test_a_request_through_the_api_is_a_ticket_with_its_deadline_and_a_retry_stores_nothing(
        tmp_path: Path, db_url: str) -> None:
    port = free_port()
    config = write_config(tmp_path, db_url, port)
    seed(db_url)
    key = new_key(config)
    assert key.startswith("slabot_") and len(key) > 40

    async def main() -> None:
        async with serve(config), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v1") as client:
            auth = {"Authorization": f"Bearer {key}"}
            for headers in ({}, {"Authorization": "Bearer slabot_wrong"}, {"Authorization": key}):
                refused = await client.post("/requests", json=REQUEST, headers=headers)
                assert refused.status_code == 401, refused.text
                assert refused.headers["content-type"] == "application/problem+json"
                assert refused.json()["status"] == 401 and refused.headers["www-authenticate"] == "Bearer"
            filed = await client.post("/requests", json=REQUEST, headers=auth)
            assert filed.status_code == 201, filed.text
            answer = filed.json()
            # Monday 10:00 + 24 business hours = Thursday 10:00 (R11); the clock starts at arrival (R23)
            assert answer["decision"] == "new_ticket" and answer["ref"] == "MC-10001"
            assert answer["first_response_due"] == "2026-11-26T10:00:00+01:00"
            assert answer["resolution_due_min"] == "2026-12-14T10:00:00+01:00"
            ack = answer["acknowledgement"]
            assert ack["purpose"] == "accepted" and "MC-10001" in ack["text"] and "26 november" in ack["text"]
            before = count_rows(stored)
            again = await client.post("/requests", content=json.dumps(REQUEST, indent=2), headers={
                **auth, "Content-Type": "application/json"})
            assert again.status_code == 200 and again.json() == answer
            assert count_rows(stored) == before  # stored nothing
            other = await client.post("/requests", json={**REQUEST, "text": "Iets anders"}, headers=auth)
            assert other.status_code == 409 and other.json()["title"] == "Conflict"
            assert count_rows(stored) == before

            shown = await client.get("/tickets/mc-10001", headers=auth)
            assert shown.status_code == 200, shown.text
            data = shown.json()
            assert (data["ref"], data["channel"], data["contact"], data["state"]) == (
                "MC-10001", "platform", "Piet Jansen", "open")
            assert data["first_response_due"] == answer["first_response_due"] and data["first_responded_at"] is None
            assert [(m["direction"], m["delivery_state"], m["auto"]) for m in data["messages"]] == [
                ("in", "received", False), ("out", "delivered", True)]
            assert data["messages"][1]["text"] == ack["text"]
            missing = await client.get("/tickets/MC-99999", headers=auth)
            assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"

            # the same decisions as every other channel: an unauthorised third party is refused (R2), an
            # unknown sender gets an unverified ticket (R4), an answer in the language asked for
            third = await client.post("/requests", json={"contact": {"email": "info@pixel.example"},
                                                         "text": "Wat is de status?"}, headers=auth)
            assert third.status_code == 201 and third.json()["ref"] is None
            assert third.json()["decision"] == "third_party_refused"
            assert "Bakkerij" not in third.json()["acknowledgement"]["text"]
            unknown = await client.post("/requests", json={"contact": {"phone": "06 9999 0000"}, "text": "Help",
                                                           "language": "en"}, headers=auth)
            assert unknown.status_code == 201 and unknown.json()["decision"] == "unknown_sender"
            assert unknown.json()["ref"] == "MC-10002" and unknown.json()["first_response_due"] is None
            assert "could not" in unknown.json()["acknowledgement"]["text"]

    stored = open_database(db_url)
    try:
        asyncio.run(main())
        record = ticket(stored, "MC-10001")
        assert record.received_at == MONDAY_10 and record.thread_key == PIET
    finally:
        stored.dispose()
    code, out, _ = run_cli("--config", str(config), "api-keys", "list", "--json")
    assert code == 0
    (listed,) = json.loads(out)
    assert listed["name"] == "crm" and listed["last_used_at"] is not None and key not in out
    assert key[:13] == listed["prefix"]
    assert run_cli("--config", str(config), "api-keys", "create", "crm")[0] == 2  # the name is taken
    code, out, _ = run_cli("--config", str(config), "api-keys", "revoke", "crm")
    assert code == 0 and "revoked crm" in out
    assert run_cli("--config", str(config), "api-keys", "revoke", "crm")[0] == 2

    async def revoked() -> None:
        async with serve(config), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v1") as client:
            answer = await client.get("/tickets/MC-10001", headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 401

    asyncio.run(revoked())


def test_bad_requests_are_problems_naming_the_field_and_a_key_has_its_rate(tmp_path: Path) -> None:
    port = free_port()
    db_url = f"sqlite:///{tmp_path / 'slabot.db'}"
    config = write_config(tmp_path, db_url, port, "[api]\nrequests_per_minute = 12\n")
    seed(db_url)
    key = new_key(config)

    async def main() -> None:
        async with serve(config), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v1",
                                                    headers={"Authorization": f"Bearer {key}"}) as client:
            cases = [
                ({"contact": {"email": "not an address"}, "text": "x"}, ["contact.email"]),
                ({"contact": {"email": PIET, "phone": "+31612345678"}, "text": "x"}, ["contact"]),
                ({"contact": {"phone": "12"}, "text": ""}, ["contact.phone", "text"]),
                ({"contact": {"email": PIET}, "text": "x", "language": "de", "colour": "red"},
                 ["language", "colour"]),
                ({"contact": {"email": PIET}, "text": "nul\x00byte"}, ["text"]),
                ({"text": "x", "critical": "maybe"}, ["contact", "critical"]),
            ]
            for body, fields in cases:
                answer = await client.post("/requests", json=body)
                assert answer.status_code == 422, (body, answer.text)
                problem = answer.json()
                assert answer.headers["content-type"] == "application/problem+json"
                assert problem["status"] == 422 and problem["title"] == "Unprocessable Content"
                assert sorted(e["field"] for e in problem["errors"]) == sorted(fields), problem
                assert all(e["pointer"] == "#/" + e["field"].replace(".", "/") for e in problem["errors"])
            broken = await client.post("/requests", content=b'{"contact": ', headers={"Content-Type":
                                                                                     "application/json"})
            assert broken.status_code == 422 and broken.headers["content-type"] == "application/problem+json"
            big = {"contact": {"email": PIET}, "text": "x" * (64 * 1024)}
            too_large = await client.post("/requests", json=big)
            assert too_large.status_code == 413 and too_large.json()["status"] == 413

            async def chunks() -> Any:  # no Content-Length: refused while it streams in
                for _ in range(100):
                    yield b"x" * 1024

            streamed = await client.post("/requests", content=chunks(), headers={"Content-Type": "application/json"})
            assert streamed.status_code == 413
            assert count_rows(stored)["messages"] == 0

            # a fresh key: 12 calls pass, the 13th within the minute waits; the first key is not held back
            other = {"Authorization": f"Bearer {new_key(config, 'website')}"}
            for _ in range(12):
                assert (await client.get("/tickets/MC-10001", headers=other)).status_code == 404
            limited = await client.get("/tickets/MC-10001", headers=other)
            assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 60
            assert limited.headers["content-type"] == "application/problem+json"
            assert (await client.get("/tickets/MC-10001")).status_code == 404

            schema = (await client.get("/openapi.json")).json()
            assert set(schema["paths"]) == {"/requests", "/tickets/{ref}"}
            assert schema["servers"] == [{"url": "/api/v1"}]
            body = schema["components"]["schemas"]["RequestIn"]
            assert body["required"] == ["contact", "text"] and "external_id" in body["properties"]
            assert "bearer" in json.dumps(schema["components"]["securitySchemes"]).lower()
            assert {"201", "200", "401", "409", "413", "422", "429"} <= set(schema["paths"]["/requests"]["post"][
                "responses"])

    stored = open_database(db_url)
    try:
        asyncio.run(main())
    finally:
        stored.dispose()


BY_PHONE = {"contact": {"phone": "+31612345678"}, "text": "Help", "subject": "Koppeling"}


def mailing(tmp_path: Path, db_url: str, port: int, smtp_port: int) -> tuple[Path, str]:
    """The config of a slabot that mails through the sink on ``smtp_port``, its accounts seeded; and an API key."""
    config = write_config(tmp_path, db_url, port, (
        f'[email]\nsmtp_host = "127.0.0.1"\nsmtp_port = {smtp_port}\nsmtp_security = "none"\n'
        'from_address = "support@mailcampaigns.example"\n'))
    seed(db_url)
    return config, new_key(config)


def test_staff_replies_on_a_platform_ticket_are_mailed_to_the_contact(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'slabot.db'}"
    port = free_port()
    with smtp_sink() as (sink, smtp_port):
        config, key = mailing(tmp_path, db_url, port, smtp_port)
        stored = open_database(db_url)
        clock = [MONDAY_10]

        async def main() -> None:
            async with serve(config, lambda: clock[-1]), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v1") as client:
                filed = await client.post("/requests", json=BY_PHONE, headers={"Authorization": f"Bearer {key}"})
                ref = filed.json()["ref"]
                assert filed.status_code == 201 and ref == "MC-10001"
                await asyncio.sleep(0.2)
                assert sink.envelopes == []  # the acknowledgement went back in the answer, not by mail
                later = MONDAY_10 + timedelta(hours=1)
                clock.append(later)
                await asyncio.to_thread(Desk(stored, now=lambda: later).reply, ref, "We kijken ernaar.", "anna")
                await until(lambda: len(sink.envelopes) == 1, what="the reply mailed")
                (mail,) = sink.mails
                assert mail["To"] == PIET and ref in mail["Subject"] and "We kijken ernaar." in mail.get_content()
                await until(lambda: ticket(stored, ref).messages[-1].delivery_state == "sent", what="sent")

        try:
            asyncio.run(main())
            assert ticket(stored, "MC-10001").first_responded_at == MONDAY_10 + timedelta(hours=1)
        finally:
            stored.dispose()


def test_a_reply_whose_address_lookup_loses_its_connection_is_mailed_later_once(tmp_path: Path,
                                                                               pg_url: str) -> None:
    """A reply on a platform ticket filed by phone number is mailed to the contact's address, read from the
    database just before the send. PostgreSQL ends that read's connection, and then its second try's: nothing has
    gone out, so the reply is put back and mailed later, once; it is never marked ``unknown``, which no one sends."""
    port = free_port()
    with smtp_sink() as (sink, smtp_port):
        config, key = mailing(tmp_path, pg_url, port, smtp_port)
        stored = open_database(pg_url)
        clock = [MONDAY_10]

        def reply_row() -> tuple[str, str]:
            out = ticket(stored, "MC-10001").messages[-1]
            row = stored.read_direct(lambda d: d.one("SELECT state, last_error FROM outbox WHERE message_id = :m",
                                                     {"m": out.id}))
            assert row is not None
            return str(row[0]), str(row[1] or "")

        async def main() -> None:
            async with serve(config, lambda: clock[-1]), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v1") as client:
                filed = await client.post("/requests", json=BY_PHONE, headers={"Authorization": f"Bearer {key}"})
                assert filed.status_code == 201 and filed.json()["ref"] == "MC-10001"
                sink.fail_next("451 4.3.0 try again later")  # the first attempt: the row waits for the clock
                later = MONDAY_10 + timedelta(hours=1)
                clock.append(later)
                await asyncio.to_thread(Desk(stored, now=lambda: later).reply, "MC-10001", "We kijken ernaar.", "anna")
                await until(lambda: reply_row()[0] == "pending" and "451" in reply_row()[1], what="the 451 put back")
                async with table_locked(pg_url, "identities") as end_twice:
                    clock.append(later + timedelta(minutes=2))
                    await end_twice("SELECT e.value FROM identities i JOIN identities e")
                    await until(lambda: reply_row()[0] == "pending" and "451" not in reply_row()[1],
                                what="the row put back after the lookup failed")
                    assert sink.envelopes == []
                clock.append(later + timedelta(minutes=10))
                await until(lambda: len(sink.envelopes) == 1, what="the reply mailed")
                await asyncio.sleep(0.3)
                assert len(sink.envelopes) == 1 and sink.mails[0]["To"] == PIET
                assert reply_row()[0] == "sent"

        try:
            asyncio.run(main())
        finally:
            stored.dispose()


def test_paynl_plans_do_not_take_the_platform(tmp_path: Path) -> None:
    """R5: pay.nl's plans list no platform: the request is kept and answered with the plan's channels."""
    from helpers import pipeline
    from channels.identity import email_identity
    from channels.messages import ChannelName, InboundMessage

    db = open_database(f"sqlite:///{tmp_path / 'slabot.db'}")
    try:
        add_account(db, "Shop BV", "business", contact("Sam", email="sam@shop.example"))
        result = pipeline(db, "paynl").ingest(InboundMessage(ChannelName.PLATFORM, "p-1", email_identity(
            "sam@shop.example"), MONDAY_10, "Help"))
        assert result.outcome.value == "channel_not_in_plan" and result.ticket_ref is None
        assert count_rows(db)["outbox"] == 0  # answered in the API's answer, nothing to send
    finally:
        db.dispose()



def test_the_api_gives_the_priority_by_name_or_by_urgency_and_impact(tmp_path: Path, db_url: str) -> None:
    """R25: a host product passes the user's answers; the preset's rule table decides, or the named priority."""
    port = free_port()
    example = Path(__file__).resolve().parent.parent / "docs" / "examples" / "hostingdesk.toml"
    config = write_config(tmp_path, db_url, port)
    config.write_text(config.read_text().replace('preset = "mailcampaigns"', f'preset = "{example}"'))
    db = open_database(db_url)
    try:
        add_account(db, "Webwinkel", "plus", contact("Piet Jansen", email=PIET))
    finally:
        db.dispose()
    key = new_key(config)

    async def main() -> list[dict[str, Any]]:
        async with serve(config), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v1") as client:
            auth = {"Authorization": f"Bearer {key}"}
            shown = []
            for n, extra in enumerate(({"urgency": "cannot_work", "impact": "all"}, {"priority": "p3"}, {})):
                filed = await client.post("/requests", headers=auth, json={
                    "contact": {"email": PIET}, "text": f"Vraag {n} over de mailbox", "external_id": f"x-{n}",
                    **extra})
                assert filed.status_code == 201, filed.text
                ref = filed.json()["ref"]
                shown.append((await client.get(f"/tickets/{ref}", headers=auth)).json())
            return shown

    first, second, third = asyncio.run(main())
    assert (first["sla_priority"], first["priority_rule"]) == ("p1", "all_down")
    assert second["sla_priority"] == "p3" and "asked" in (second["priority_rule"] or "")
    assert third["sla_priority"] not in (None, "p1")  # the rule table's default for a plain question
