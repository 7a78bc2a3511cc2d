"""The outbox dispatcher: every queued row is sent at most once, failures are retried or handed to staff.

Senders are in-memory fakes that record what they were asked to send; time is
driven through the dispatcher's injectable ``now``. Every test runs on SQLite
and on PostgreSQL (the ``db`` fixture). Async code runs under ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot.outbox import OutboxDispatcher, advance_delivery
from channels.messages import (
    ChannelName,
    DeliveryState,
    NeedsStaffError,
    OutboundMessage,
    PermanentSendError,
    SendReceipt,
    TemporarySendError,
)
from storage import models as m
from storage.database import Database
from storage.records import OutboundDraft, OutboxState
from storage.repositories import OutboxRepository, TicketRepository

from helpers import MONDAY_10, add_account, contact, email, outbox_rows, pipeline

T0 = MONDAY_10


class Clock:
    """A settable ``now`` for the dispatcher."""

    def __init__(self, start: datetime = T0) -> None:
        self.value = start

    def __call__(self) -> datetime:
        return self.value

    def advance(self, **delta: float) -> None:
        self.value += timedelta(**delta)


class FakeSender:
    """Records every send; ``script`` says what each successive call does (an exception raised, or success)."""

    def __init__(self, script: Iterable[BaseException | None] = (), *, delay: float = 0.0,
                 receipt_state: DeliveryState = DeliveryState.SENT) -> None:
        self.calls: list[OutboundMessage] = []
        self.script = list(script)
        self.delay = delay
        self.receipt_state = receipt_state

    async def send(self, message: OutboundMessage) -> SendReceipt:
        self.calls.append(message)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.script:
            outcome = self.script.pop(0)
            if outcome is not None:
                raise outcome
        return SendReceipt(f"ext-{message.channel}-{message.outbox_id}", self.receipt_state)

    @property
    def sent_ids(self) -> list[int]:
        return [c.outbox_id for c in self.calls]


def queue(db: Database, channel: str = "email", recipient: str = "piet@bakkerij-jansen.nl", text: str = "Hallo",
          now: datetime = T0) -> tuple[int, int]:
    """Store an outbound message and its outbox row, as the intake or the desk would; (outbox id, message id)."""
    def work(s: Any) -> tuple[int, int]:
        message_id = TicketRepository(s).add_message(
            ticket_id=None, account_id=None, contact_id=None, direction="out", channel=channel, external_id=None,
            sender=None, recipient=recipient, subject="Re: Vraag" if channel == "email" else None, text=text, at=now,
            auto=True, purpose="accepted", delivery_state=DeliveryState.QUEUED.value, reasons=[], thread_refs=[],
            created_at=now,
        )
        outbox_id = OutboxRepository(s).enqueue(message_id, channel, recipient, {
            "text": text, "subject": "Re: Vraag" if channel == "email" else None, "purpose": "accepted",
            "ticket_ref": "MC-10001", "auto": True, "language": "nl",
        }, now)
        return outbox_id, message_id

    return db.run(work)


def row(db: Database, outbox_id: int) -> Any:
    [found] = [r for r in outbox_rows(db) if r.id == outbox_id]
    return found


def message(db: Database, message_id: int) -> Any:
    return db.run(lambda s: TicketRepository(s).message(message_id))


def events_for(db: Database, message_id: int) -> list[tuple[str, dict[str, Any]]]:
    def work(s: Any) -> list[tuple[str, dict[str, Any]]]:
        rows = s.scalars(select(m.Event).where(m.Event.message_id == message_id).order_by(m.Event.id)).all()
        return [(r.kind, r.data) for r in rows]

    return db.run(work)


def dispatcher(db: Database, senders: dict[str, Any], clock: Clock | None = None, **kwargs: Any) -> OutboxDispatcher:
    return OutboxDispatcher(db, senders, now=clock or Clock(), **kwargs)


# -- sending ---------------------------------------------------------------------------------------


def test_each_queued_row_is_sent_once_and_marked_sent(db: Database) -> None:
    first, first_msg = queue(db, "email", "piet@bakkerij-jansen.nl", "Eerste")
    second, second_msg = queue(db, "whatsapp", "+31612345678", "Tweede")
    third, third_msg = queue(db, "email", "kees@bakkerij-jansen.nl", "Derde")
    mail, chat = FakeSender(), FakeSender()
    clock = Clock(T0 + timedelta(seconds=1))
    outbox = dispatcher(db, {"email": mail, "whatsapp": chat}, clock)

    assert asyncio.run(outbox.run_once()) == 3
    assert mail.sent_ids == [first, third] and chat.sent_ids == [second]
    assert [(c.recipient, c.text, c.subject, c.channel) for c in mail.calls] == [
        ("piet@bakkerij-jansen.nl", "Eerste", "Re: Vraag", ChannelName.EMAIL),
        ("kees@bakkerij-jansen.nl", "Derde", "Re: Vraag", ChannelName.EMAIL)]
    assert mail.calls[0].extra == {"purpose": "accepted", "ticket_ref": "MC-10001", "auto": "True", "language": "nl"}
    assert (chat.calls[0].recipient, chat.calls[0].text) == ("+31612345678", "Tweede")

    for outbox_id, message_id, channel in ((first, first_msg, "email"), (second, second_msg, "whatsapp"),
                                           (third, third_msg, "email")):
        assert row(db, outbox_id).state == "sent"
        sent = message(db, message_id)
        assert (sent.delivery_state, sent.external_id) == ("sent", f"ext-{channel}-{outbox_id}")
        assert [kind for kind, _ in events_for(db, message_id)] == ["message_sent"]

    # nothing is sent twice, however often the dispatcher runs
    clock.advance(hours=2)
    assert asyncio.run(outbox.run_once()) == 0
    assert asyncio.run(outbox.run_once()) == 0
    assert len(mail.calls) == 2 and len(chat.calls) == 1
    assert db.run(lambda s: OutboxRepository(s).counts()) == {"sent": 3}


def test_row_is_not_sent_before_it_is_due(db: Database) -> None:
    outbox_id, _ = queue(db, now=T0 + timedelta(minutes=10))
    mail = FakeSender()
    clock = Clock(T0)
    outbox = dispatcher(db, {"email": mail}, clock)
    assert asyncio.run(outbox.run_once()) == 0
    clock.advance(minutes=10)
    assert asyncio.run(outbox.run_once()) == 1
    assert mail.sent_ids == [outbox_id]


def test_intake_acknowledgement_goes_out_threaded_and_is_marked_sent(db: Database) -> None:
    add_account(db, "Bakkerij Jansen", "licentie", contact("Piet", email="piet@bakkerij-jansen.nl"))
    result = pipeline(db, "mailcampaigns").ingest(email("<req@jansen>", "piet@bakkerij-jansen.nl", "vraag"))
    mail = FakeSender()
    assert asyncio.run(dispatcher(db, {"email": mail}).run_once()) == 1

    [sent] = mail.calls
    assert (sent.channel, sent.recipient, sent.subject) == (ChannelName.EMAIL, "piet@bakkerij-jansen.nl",
                                                            "Re: Vraag [MC-10001]")
    assert sent.in_reply_to == "<req@jansen>" and sent.references == ("<req@jansen>",)
    assert sent.extra["purpose"] == "accepted" and sent.extra["ticket_ref"] == "MC-10001"
    assert "MC-10001" in sent.text and "donderdag 26 november 2026 om 10:00" in sent.text

    record = db.run(lambda s: TicketRepository(s).by_ref(result.ticket_ref or "", with_messages=True))
    assert record is not None
    [ack] = [msg for msg in record.messages if msg.direction == "out"]
    assert (ack.delivery_state, ack.external_id) == ("sent", f"ext-email-{sent.outbox_id}")
    assert record.first_responded_at is None  # sending the acknowledgement is no first response (R8)


# -- failures --------------------------------------------------------------------------------------


def test_temporary_failure_is_retried_later_with_backoff(db: Database) -> None:
    outbox_id, message_id = queue(db)
    mail = FakeSender([TemporarySendError("451 try later"), TemporarySendError("451 try later"), None])
    clock = Clock(T0)
    outbox = dispatcher(db, {"email": mail}, clock, backoff=timedelta(seconds=30))

    asyncio.run(outbox.run_once())
    waiting = row(db, outbox_id)
    assert (waiting.state, waiting.attempts, waiting.last_error) == ("pending", 1, "451 try later")
    # 30 s with jitter: between half and the whole step
    assert T0 + timedelta(seconds=15) <= waiting.next_attempt_at <= T0 + timedelta(seconds=30)
    assert message(db, message_id).delivery_state == "queued"

    # not before next_attempt_at
    clock.value = waiting.next_attempt_at - timedelta(seconds=1)
    assert asyncio.run(outbox.run_once()) == 0
    assert len(mail.calls) == 1

    clock.value = waiting.next_attempt_at
    assert asyncio.run(outbox.run_once()) == 1
    second = row(db, outbox_id)
    assert (second.state, second.attempts) == ("pending", 2)
    # the step doubles: 60 s, with jitter between 30 and 60 s
    assert clock.value + timedelta(seconds=30) <= second.next_attempt_at <= clock.value + timedelta(seconds=60)

    clock.value = second.next_attempt_at - timedelta(microseconds=1)
    assert asyncio.run(outbox.run_once()) == 0
    clock.value = second.next_attempt_at
    assert asyncio.run(outbox.run_once()) == 1
    done = row(db, outbox_id)
    assert (done.state, done.attempts, done.last_error) == ("sent", 3, None)
    assert len(mail.calls) == 3
    assert message(db, message_id).delivery_state == "sent"


def test_retry_after_from_the_server_is_respected(db: Database) -> None:
    outbox_id, _ = queue(db)
    mail = FakeSender([TemporarySendError("429 rate limited", retry_after=600)])
    outbox = dispatcher(db, {"email": mail}, Clock(T0), backoff=timedelta(seconds=30))
    asyncio.run(outbox.run_once())
    assert row(db, outbox_id).next_attempt_at >= T0 + timedelta(seconds=600)


def test_gives_up_after_the_maximum_attempts(db: Database) -> None:
    outbox_id, message_id = queue(db)
    mail = FakeSender([TemporarySendError("down")] * 5)
    clock = Clock(T0)
    outbox = dispatcher(db, {"email": mail}, clock, max_attempts=3)
    for _ in range(5):
        asyncio.run(outbox.run_once())
        clock.advance(hours=1)
    assert len(mail.calls) == 3
    failed = row(db, outbox_id)
    assert failed.state == "failed" and "gave up after 3 attempts" in (failed.last_error or "")
    assert message(db, message_id).delivery_state == "failed"


def test_permanent_failure_is_marked_failed_and_never_retried(db: Database) -> None:
    outbox_id, message_id = queue(db)
    mail = FakeSender([PermanentSendError("550 no such user")])
    clock = Clock(T0)
    outbox = dispatcher(db, {"email": mail}, clock)
    assert asyncio.run(outbox.run_once()) == 1
    failed = row(db, outbox_id)
    assert (failed.state, failed.last_error) == ("failed", "550 no such user")
    assert message(db, message_id).delivery_state == "failed"
    [(kind, data)] = events_for(db, message_id)
    assert kind == "message_failed" and data["staff_told"] is True and data["error"] == "550 no such user"
    clock.advance(days=1)
    assert asyncio.run(outbox.run_once()) == 0
    assert len(mail.calls) == 1


def test_needs_staff_is_handed_over(db: Database) -> None:
    outbox_id, message_id = queue(db, "whatsapp", "+31612345678")
    chat = FakeSender([NeedsStaffError("outside the 24-hour window")])
    clock = Clock(T0)
    outbox = dispatcher(db, {"whatsapp": chat}, clock)
    asyncio.run(outbox.run_once())
    assert row(db, outbox_id).state == "needs_staff"
    assert message(db, message_id).delivery_state == "needs_staff"
    assert [kind for kind, _ in events_for(db, message_id)] == ["message_needs_staff"]
    clock.advance(days=1)
    assert asyncio.run(outbox.run_once()) == 0
    assert len(chat.calls) == 1


def test_unexpected_error_is_an_unknown_outcome_and_not_resent(db: Database) -> None:
    outbox_id, message_id = queue(db)
    mail = FakeSender([ConnectionResetError("connection reset after DATA")])
    clock = Clock(T0)
    outbox = dispatcher(db, {"email": mail}, clock)
    asyncio.run(outbox.run_once())
    assert row(db, outbox_id).state == "unknown"
    assert message(db, message_id).delivery_state == "unknown"
    clock.advance(days=1)
    assert asyncio.run(outbox.run_once()) == 0
    assert len(mail.calls) == 1


# -- several dispatchers, crashes ------------------------------------------------------------------


def test_two_dispatchers_at_once_send_every_row_exactly_once(db: Database) -> None:
    ids = [queue(db, "email" if i % 3 else "whatsapp", f"klant{i}@example.nl" if i % 3 else f"+316000000{i:02d}",
                 f"bericht {i}")[0] for i in range(24)]
    senders_a = {"email": FakeSender(delay=0.002), "whatsapp": FakeSender(delay=0.002)}
    senders_b = {"email": FakeSender(delay=0.002), "whatsapp": FakeSender(delay=0.002)}
    clock = Clock(T0 + timedelta(seconds=1))
    first = OutboxDispatcher(db, senders_a, worker="worker-a", now=clock)
    second = OutboxDispatcher(db, senders_b, worker="worker-b", now=clock)

    async def drain(outbox: OutboxDispatcher) -> int:
        total = 0
        while (handled := await outbox.run_once(limit=8)) > 0:
            total += handled
        return total

    async def both() -> list[int]:
        return list(await asyncio.gather(drain(first), drain(second)))

    handled = asyncio.run(both())
    sent = [i for senders in (senders_a, senders_b) for s in senders.values() for i in s.sent_ids]
    assert sorted(sent) == sorted(ids)  # every row, none twice
    assert sum(handled) == len(ids)
    assert {r.state for r in outbox_rows(db)} == {"sent"}
    assert all(r.attempts == 1 for r in outbox_rows(db))


def test_a_send_left_unfinished_by_a_worker_elsewhere_is_reconciled_after_the_lease(db: Database) -> None:
    """A worker of another host claimed the row and stopped before recording the outcome: left alone within the
    lease, then reconciled; a channel that can neither be asked nor take a second send as the same message gets
    ``unknown``, never a blind second send. (A worker of this host that no longer runs: tests/test_reliability.py.)"""
    outbox_id, message_id = queue(db)
    other_id, _ = queue(db, text="een ander bericht")
    claimed = db.run(lambda s: OutboxRepository(s).claim(outbox_id, "elsewhere:4242:0badcafe", T0))
    assert claimed is not None and claimed.state == "sending"

    mail = FakeSender()
    clock = Clock(T0 + timedelta(minutes=1))
    outbox = dispatcher(db, {"email": mail}, clock, lease=timedelta(minutes=5))
    assert asyncio.run(outbox.run_once()) == 1  # only the other row
    assert mail.sent_ids == [other_id]
    assert row(db, outbox_id).state == "sending"  # within the lease: left alone

    clock.value = T0 + timedelta(minutes=5, seconds=1)
    assert asyncio.run(outbox.run_once()) == 1
    stale = row(db, outbox_id)
    assert stale.state == "unknown" and "not sent again" in (stale.last_error or "")
    assert message(db, message_id).delivery_state == "unknown"
    assert [kind for kind, _ in events_for(db, message_id)] == ["message_unknown"]

    clock.advance(days=1)
    assert asyncio.run(outbox.run_once()) == 0
    assert mail.sent_ids == [other_id]


def test_a_stale_due_list_does_not_resend_a_row_before_its_retry_time(db: Database) -> None:
    """Worker A listed two due rows; while it sends the first, worker B tries the second and it fails for now.
    A must not then claim the second one again before its next_attempt_at."""
    first_id, _ = queue(db, text="eerste")
    second_id, _ = queue(db, text="tweede")
    clock = Clock(T0 + timedelta(seconds=1))
    mail_b = FakeSender([TemporarySendError("421 busy")])
    worker_b = OutboxDispatcher(db, {"email": mail_b}, worker="worker-b", now=clock, backoff=timedelta(minutes=1))

    class SlowChannel(FakeSender):
        async def send(self, outbound: OutboundMessage) -> SendReceipt:
            if outbound.outbox_id == first_id:
                await worker_b.run_once()  # B runs while A is busy with the first row
            return await super().send(outbound)

    mail_a = SlowChannel()
    worker_a = OutboxDispatcher(db, {"email": mail_a}, worker="worker-a", now=clock, backoff=timedelta(minutes=1))
    asyncio.run(worker_a.run_once())

    assert mail_b.sent_ids == [second_id]
    assert mail_a.sent_ids == [first_id]  # not the second row: it is waiting for its retry
    retry = row(db, second_id)
    assert (retry.state, retry.attempts) == ("pending", 1)
    assert retry.next_attempt_at > clock.value


def test_claim_is_refused_before_the_row_is_due(db: Database) -> None:
    outbox_id, _ = queue(db, now=T0 + timedelta(minutes=5))
    assert db.run(lambda s: OutboxRepository(s).claim(outbox_id, "worker-a", T0)) is None
    assert db.run(lambda s: OutboxRepository(s).claim(outbox_id, "worker-a", T0 + timedelta(minutes=5))) is not None


def test_claim_is_won_by_one_worker(db: Database) -> None:
    outbox_id, _ = queue(db)
    first = db.run(lambda s: OutboxRepository(s).claim(outbox_id, "worker-a", T0))
    second = db.run(lambda s: OutboxRepository(s).claim(outbox_id, "worker-b", T0))
    assert first is not None and first.attempts == 1
    assert second is None


# -- delivery states --------------------------------------------------------------------------------


def test_delivery_states_only_move_forward(db: Database) -> None:
    _, message_id = queue(db)

    def step(state: str, external_id: str | None = None) -> bool:
        return db.run(lambda s: advance_delivery(s, message_id, state, external_id))

    def current() -> tuple[str, str | None]:
        found = message(db, message_id)
        return found.delivery_state, found.external_id

    assert step("sending") is True
    assert step("sent", "SM123") is True
    assert current() == ("sent", "SM123")
    assert step("sending") is False and step("queued") is False
    assert current() == ("sent", "SM123")
    assert step("delivered") is True
    assert step("sent") is False  # a late "sent" callback after "delivered"
    assert current() == ("delivered", "SM123")
    assert step("read") is True
    assert step("delivered") is False and step("unknown") is False
    assert current() == ("read", "SM123")

    _, other = queue(db)
    assert db.run(lambda s: advance_delivery(s, other, "unknown")) is True
    assert db.run(lambda s: advance_delivery(s, other, "sent", "SM9")) is True  # a late confirmation resolves it
    assert db.run(lambda s: advance_delivery(s, other, "unknown")) is False
    assert message(db, other).delivery_state == "sent"


def test_status_already_ahead_is_not_moved_back_by_the_dispatcher(db: Database) -> None:
    """A delivery callback that lands before the dispatcher records the send: the state stays delivered."""
    outbox_id, message_id = queue(db, "whatsapp", "+31612345678")

    class EagerChannel(FakeSender):
        async def send(self, outbound: OutboundMessage) -> SendReceipt:
            receipt = await super().send(outbound)
            await asyncio.to_thread(db.run, lambda s: advance_delivery(s, message_id, "delivered", receipt.external_id))
            return receipt

    chat = EagerChannel()
    asyncio.run(dispatcher(db, {"whatsapp": chat}, Clock(T0 + timedelta(seconds=1))).run_once())
    assert row(db, outbox_id).state == "sent"
    found = message(db, message_id)
    assert (found.delivery_state, found.external_id) == ("delivered", f"ext-whatsapp-{outbox_id}")


# -- channels without a sender --------------------------------------------------------------------


def test_channel_without_sender_keeps_the_row_pending(db: Database) -> None:
    outbox_id, message_id = queue(db, "whatsapp", "+31612345678")
    mail = FakeSender()
    clock = Clock(T0)
    outbox = dispatcher(db, {"email": mail}, clock)
    for _ in range(3):
        asyncio.run(outbox.run_once())
        clock.advance(minutes=5)
    waiting = row(db, outbox_id)
    assert waiting.state == "pending"
    assert waiting.attempts == 0  # a channel that is off costs no attempt
    assert "off" in (waiting.last_error or "")
    assert message(db, message_id).delivery_state == "queued"
    assert mail.calls == []

    # once the channel is configured the message goes out
    chat = FakeSender()
    clock.advance(hours=1)
    assert asyncio.run(dispatcher(db, {"email": mail, "whatsapp": chat}, clock).run_once()) == 1
    assert chat.sent_ids == [outbox_id]
    assert row(db, outbox_id).state == "sent"


def test_phone_channel_row_needs_staff(db: Database) -> None:
    outbox_id, message_id = queue(db, "phone", "+31612345678", "Terugbellen")
    outbox = dispatcher(db, {"email": FakeSender(), "whatsapp": FakeSender()}, Clock(T0))
    assert asyncio.run(outbox.run_once()) == 1
    assert row(db, outbox_id).state == "needs_staff"
    assert message(db, message_id).delivery_state == "needs_staff"


@pytest.mark.parametrize("state", ["sent", "failed", "unknown", "needs_staff"])
def test_finished_rows_are_never_picked_up_again(db: Database, state: str) -> None:
    outbox_id, _ = queue(db)
    db.run(lambda s: OutboxRepository(s).finish(outbox_id, state, T0))
    mail = FakeSender()
    assert asyncio.run(dispatcher(db, {"email": mail}, Clock(T0 + timedelta(days=1))).run_once()) == 0
    assert mail.calls == []


# -- the payload: one record, read back the same; rows queued before it still go out ---------------


def test_a_queued_draft_is_read_back_as_it_was_queued(db: Database) -> None:
    draft = OutboundDraft(channel="email", recipient="piet@bakkerij-jansen.nl", text="We kijken ernaar.",
                          purpose="reply", ticket_ref="MC-10001", subject="Re: Vraag [MC-10001]", language="nl",
                          staff="anna", in_reply_to="<b@jansen>", references=("<a@jansen>", "<b@jansen>"))
    message_id = db.run(lambda s: OutboxRepository(s).queue(draft, T0))
    [queued] = outbox_rows(db)
    assert (queued.message_id, queued.state, queued.draft) == (message_id, OutboxState.PENDING, draft)
    stored = message(db, message_id)
    assert (stored.direction, stored.channel, stored.recipient, stored.subject, stored.text, stored.auto,
            stored.staff, stored.purpose, stored.delivery_state) == (
        "out", "email", "piet@bakkerij-jansen.nl", "Re: Vraag [MC-10001]", "We kijken ernaar.", False, "anna",
        "reply", DeliveryState.QUEUED)

    mail = FakeSender()
    assert asyncio.run(dispatcher(db, {"email": mail}, Clock(T0)).run_once()) == 1
    assert mail.calls == [OutboundMessage(
        outbox_id=queued.id, channel=ChannelName.EMAIL, recipient="piet@bakkerij-jansen.nl", text="We kijken ernaar.",
        subject="Re: Vraag [MC-10001]", in_reply_to="<b@jansen>", references=("<a@jansen>", "<b@jansen>"),
        extra={"purpose": "reply", "ticket_ref": "MC-10001", "language": "nl", "staff": "anna", "auto": "False"},
        send_key=queued.send_key)]
    assert queued.send_key and len(queued.send_key) == 32  # random, fixed when queued: the same on every attempt
    assert row(db, queued.id).state is OutboxState.SENT


# the payloads the intake and the desk wrote before the payload was one record, and what was sent of them
PREVIOUS_PAYLOADS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "intake": ({"text": "Ontvangen.", "subject": "Re: Vraag [MC-10001]", "in_reply_to": "<req@jansen>",
                "references": ["<req@jansen>"], "language": "nl", "purpose": "accepted", "auto": True,
                "ticket_ref": "MC-10001", "reply_to_message": 1},
               {"text": "Ontvangen.", "subject": "Re: Vraag [MC-10001]", "in_reply_to": "<req@jansen>",
                "references": ("<req@jansen>",),
                "extra": {"purpose": "accepted", "ticket_ref": "MC-10001", "language": "nl", "auto": "True"}}),
    "desk": ({"text": "We kijken ernaar.", "subject": "Re: Vraag [MC-10001]", "in_reply_to": "<b@jansen>",
              "references": ["<a@jansen>", "<b@jansen>"], "purpose": "reply", "auto": False,
              "ticket_ref": "MC-10001", "staff": "anna"},
             {"text": "We kijken ernaar.", "subject": "Re: Vraag [MC-10001]", "in_reply_to": "<b@jansen>",
              "references": ("<a@jansen>", "<b@jansen>"),
              "extra": {"purpose": "reply", "ticket_ref": "MC-10001", "staff": "anna", "auto": "False"}}),
    "desk, automatic notice on WhatsApp": (
        {"text": "Uw strippenkaart is vernieuwd.", "subject": None, "in_reply_to": None, "references": [],
         "purpose": "punch_card_renewed", "auto": True, "ticket_ref": "MC-10001", "staff": None},
        {"text": "Uw strippenkaart is vernieuwd.",
         "extra": {"purpose": "punch_card_renewed", "ticket_ref": "MC-10001", "auto": "True"}}),
}


@pytest.mark.parametrize("writer", sorted(PREVIOUS_PAYLOADS))
def test_a_row_queued_by_the_previous_version_is_sent_as_it_was(db: Database, writer: str) -> None:
    payload, sent_as = PREVIOUS_PAYLOADS[writer]
    channel, recipient = ("whatsapp", "+31612345678") if "WhatsApp" in writer else ("email", "piet@bakkerij-jansen.nl")

    def work(s: Any) -> int:
        message_id = TicketRepository(s).add_message(
            direction="out", channel=channel, recipient=recipient, subject=payload["subject"], text=payload["text"],
            at=T0, auto=payload["auto"], staff=payload.get("staff"), purpose=payload["purpose"],
            delivery_state=DeliveryState.QUEUED.value, created_at=T0)
        return OutboxRepository(s).enqueue(message_id, channel, recipient, payload, T0)

    outbox_id = db.run(work)
    sender = FakeSender()
    assert asyncio.run(dispatcher(db, {channel: sender}, Clock(T0)).run_once()) == 1
    [queued] = outbox_rows(db)
    assert sender.calls == [OutboundMessage(outbox_id=outbox_id, channel=ChannelName(channel), recipient=recipient,
                                            send_key=queued.send_key, **sent_as)]
    assert row(db, outbox_id).state is OutboxState.SENT


class AnswerLost:
    """The database as the dispatcher sees it when its connection ends in a transaction and the driver's error is
    raised: the writes numbered in ``committed`` after their COMMIT reached the server and before its answer came
    back; those in ``rolled_back`` after their statements ran and before the COMMIT was sent (a PostgreSQL restart,
    a connection ended by an administrator)."""

    def __init__(self, db: Database, *, committed: tuple[int, ...] = (), rolled_back: tuple[int, ...] = ()) -> None:
        self.db, self.committed, self.rolled_back, self.writes = db, committed, rolled_back, 0

    def run_direct(self, work: Any) -> Any:
        self.writes += 1
        if self.writes in self.rolled_back:
            def then_lost(d: Any) -> Any:
                work(d)
                raise _lost()

            return self.db.run_direct(then_lost, retries=0)
        result = self.db.run_direct(work)
        if self.writes in self.committed:
            raise _lost()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def _lost() -> OperationalError:
    return OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))


def _losing(db: Database, **lost: tuple[int, ...]) -> tuple[int, int, FakeSender, OutboxDispatcher]:
    """A queued row and a dispatcher whose database loses the writes ``lost`` names (:class:`AnswerLost`):
    (outbox id, message id, the channel, the dispatcher)."""
    outbox_id, message_id = queue(db)
    mail = FakeSender()
    outbox = dispatcher(db, {"email": mail}, Clock(T0 + timedelta(seconds=1)))
    outbox.db = AnswerLost(db, **lost)  # type: ignore[assignment]
    return outbox_id, message_id, mail, outbox


def _failing_round(outbox: OutboxDispatcher) -> None:
    with pytest.raises(OperationalError):
        asyncio.run(outbox.run_once())


def test_a_row_whose_claim_was_committed_but_not_answered_is_sent_in_the_next_round(db: Database) -> None:
    """The claim is in the database, the dispatcher saw an error: the row stayed ``sending`` under its own name,
    and it was never handed to the channel. The next round sends it, once (before: it stayed so while the worker
    ran, a message never sent)."""
    outbox_id, _, mail, outbox = _losing(db, committed=(1,))
    _failing_round(outbox)
    assert row(db, outbox_id).state == "sending" and mail.sent_ids == []
    assert asyncio.run(outbox.run_once()) == 1
    assert mail.sent_ids == [outbox_id] and row(db, outbox_id).state == "sent"


def test_a_row_sent_whose_outcome_was_not_recorded_is_reconciled_not_sent_blindly_again(db: Database) -> None:
    """The row was sent; the connection ended before the outcome's transaction was committed, so the row is still
    ``sending`` under the dispatcher's own name. The next round takes it as one that may have arrived: a channel
    that cannot be asked gets ``unknown``, never a second send (before: it stayed ``sending`` while the worker
    ran)."""
    outbox_id, message_id, mail, outbox = _losing(db, rolled_back=(2,))
    _failing_round(outbox)
    assert mail.sent_ids == [outbox_id] and row(db, outbox_id).state == "sending"
    assert asyncio.run(outbox.run_once()) == 1
    assert mail.sent_ids == [outbox_id]
    assert row(db, outbox_id).state == "unknown" and message(db, message_id).delivery_state == "unknown"


def test_a_sent_row_stays_one_to_ask_about_when_taking_it_back_fails_too(db: Database) -> None:
    """The outcome of a send was not recorded, and the next round's transaction that takes the row back fails as
    well: the round after still takes it as one that may have arrived, never as one only claimed (which would be
    sent again without asking)."""
    outbox_id, _, mail, outbox = _losing(db, rolled_back=(2, 3))
    for _ in range(2):
        _failing_round(outbox)
    assert row(db, outbox_id).state == "sending"
    asyncio.run(outbox.run_once())
    assert mail.sent_ids == [outbox_id]
    assert row(db, outbox_id).state == "unknown"
