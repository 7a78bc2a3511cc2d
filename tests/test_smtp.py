"""SMTP out: the mail slabot writes, and what the outbox does with the server's answers (a real aiosmtpd)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import pytest
from helpers import free_port
from sqlalchemy import select

from bot.outbox import OutboxDispatcher
from channels.email.smtp import SmtpSender, SmtpSettings, build_mail, domain_of
from channels.messages import (
    ChannelName,
    DeliveryState,
    OutboundMessage,
    PermanentSendError,
    TemporarySendError,
)
from storage import models as m
from storage.database import Database, open_database
from storage.repositories import OutboxRepository, TicketRepository
from smtpsink import smtp_sink

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
FROM = "support@mailcampaigns.example"


def outbound(**extra: object) -> OutboundMessage:
    values: dict[str, object] = {
        "outbox_id": 7, "channel": ChannelName.EMAIL, "recipient": "piet@bakkerij-jansen.nl",
        "text": "Beste Piet,\n\nWe hebben uw vraag ontvangen — uiterlijk donderdag antwoorden we.\n",
        "subject": "Re: Factuur klopt niet [MC-10001]", "in_reply_to": "abc@bakkerij-jansen.nl",
        "references": ("first@bakkerij-jansen.nl",), "extra": {"auto": "True", "ticket_ref": "MC-10001"},
    }
    values.update(extra)
    return OutboundMessage(**values)  # type: ignore[arg-type]


def test_automatic_reply_headers() -> None:
    mail = build_mail(outbound(), FROM, from_name="Mailcampaigns support", now=NOW, message_id="x1@mailcampaigns.example")
    assert mail["Message-ID"] == "<x1@mailcampaigns.example>"
    assert mail["In-Reply-To"] == "<abc@bakkerij-jansen.nl>"
    assert mail["References"] == "<first@bakkerij-jansen.nl> <abc@bakkerij-jansen.nl>"
    assert mail["Auto-Submitted"] == "auto-replied"
    assert mail["X-Auto-Response-Suppress"] == "All"
    assert "[MC-10001]" in str(mail["Subject"])
    assert str(mail["From"]) == "Mailcampaigns support <support@mailcampaigns.example>"
    assert "—" in mail.get_content()


def test_a_staff_reply_is_not_marked_automatic() -> None:
    mail = build_mail(outbound(extra={"staff": "anna"}), FROM, now=NOW)
    assert mail["Auto-Submitted"] is None and mail["X-Auto-Response-Suppress"] is None
    assert str(mail["Message-ID"]).endswith("@mailcampaigns.example>")


def test_domain_of() -> None:
    assert domain_of("Support <Support@Example.NL>") == "example.nl"
    with pytest.raises(ValueError):
        domain_of("not an address")


def _sender(port: int) -> SmtpSender:
    return SmtpSender(SmtpSettings(host="127.0.0.1", port=port, from_address=FROM, security="none", timeout=5),
                      now=lambda: NOW)


def test_send_reaches_the_server_with_its_message_id() -> None:
    with smtp_sink() as (sink, port):
        receipt = asyncio.run(_sender(port).send(outbound()))
    assert receipt.state is DeliveryState.SENT and receipt.external_id.endswith("@mailcampaigns.example")
    (mail,) = sink.mails
    assert mail["Message-ID"] == f"<{receipt.external_id}>"
    assert sink.envelopes[0].rcpt_tos == ["piet@bakkerij-jansen.nl"]
    assert sink.envelopes[0].mail_from == FROM


def test_4xx_is_temporary_5xx_permanent_and_a_dead_server_temporary() -> None:
    with smtp_sink() as (sink, port):
        sink.fail_next("451 4.3.0 try again later")
        with pytest.raises(TemporarySendError, match="451"):
            asyncio.run(_sender(port).send(outbound()))
        sink.fail_next("550 5.1.1 no such user")
        with pytest.raises(PermanentSendError, match="550"):
            asyncio.run(_sender(port).send(outbound()))
        assert sink.envelopes == []
    with pytest.raises(TemporarySendError, match="cannot reach"):
        asyncio.run(_sender(free_port()).send(outbound()))


def _queue_mail(db: Database) -> int:
    def work(s: object) -> int:
        from sqlalchemy.orm import Session
        assert isinstance(s, Session)
        tickets = TicketRepository(s)
        message_id = tickets.add_message(direction="out", channel="email", recipient="piet@bakkerij-jansen.nl",
                                         subject="Re: vraag [MC-10001]", text="Ontvangen.", at=NOW, auto=True,
                                         delivery_state=DeliveryState.QUEUED.value, created_at=NOW)
        OutboxRepository(s).enqueue(message_id, "email", "piet@bakkerij-jansen.nl",
                                    {"text": "Ontvangen.", "subject": "Re: vraag [MC-10001]", "auto": True,
                                     "in_reply_to": "q1@bakkerij-jansen.nl"}, NOW)
        return message_id

    return db.run(work)  # type: ignore[arg-type]


def test_outbox_retries_451_and_sends_once_then_the_reply_threads(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'slabot.db'}")
    clock = [NOW]
    try:
        message_id = _queue_mail(db)
        with smtp_sink() as (sink, port):
            sink.fail_next("451 4.3.0 greylisted")
            dispatcher = OutboxDispatcher(db, {"email": _sender(port)}, now=lambda: clock[0])
            asyncio.run(dispatcher.run_once())
            row = db.run(lambda s: s.scalar(select(m.Outbox)))
            assert row.state == "pending" and "451" in (row.last_error or "") and sink.envelopes == []
            clock[0] = NOW.replace(hour=10)
            asyncio.run(dispatcher.run_once())
            asyncio.run(dispatcher.run_once())
        assert len(sink.envelopes) == 1
        stored = db.run(lambda s: TicketRepository(s).message(message_id))
        assert stored.delivery_state == "sent"
        assert sink.mails[0]["Message-ID"] == f"<{stored.external_id}>"
        # a customer's reply to it finds the message by that id (R6 threading)
        assert db.run(lambda s: TicketRepository(s).message_id_for("email", "out", stored.external_id or "")) \
            == message_id
    finally:
        db.dispose()


def test_outbox_marks_550_failed_and_tells_staff(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'slabot.db'}")
    try:
        message_id = _queue_mail(db)
        with smtp_sink() as (sink, port):
            sink.fail_next("550 5.1.1 no such user")
            asyncio.run(OutboxDispatcher(db, {"email": _sender(port)}, now=lambda: NOW).run_once())
        assert db.run(lambda s: s.scalar(select(m.Outbox.state))) == "failed"
        assert db.run(lambda s: TicketRepository(s).message(message_id)).delivery_state == "failed"
        events = db.run(lambda s: [e.kind for e in s.scalars(select(m.Event))])
        assert "message_failed" in events
    finally:
        db.dispose()
