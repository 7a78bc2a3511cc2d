"""The intake pipeline (SPEC §2, R1-R8, R14, R15, R17): every test runs on SQLite and on PostgreSQL.

Accounts are stored as an import would store them; messages go through
``IntakePipeline.ingest`` with a fixed clock; what was stored is read back
through the repositories. Worked example: a request received on Monday
23 November 2026 at 10:00 (+01:00).
"""

from __future__ import annotations

import multiprocessing
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from bot.desk import Desk
from bot.intake import Outcome
from storage.database import Database
from storage.repositories import OutboxRepository, ReminderRepository, TicketRepository

from helpers import (
    MONDAY_10,
    PREFIX,
    add_account,
    at,
    contact,
    count_rows,
    email,
    inbound,
    ingest_in_child,
    kept,
    message_texts_out,
    outbound,
    outbox_counts,
    outbox_rows,
    pipeline,
    reminders,
    ticket,
    whatsapp,
)

BOTH = pytest.mark.parametrize("preset_name", ["mailcampaigns", "paynl"])
# a plan of each preset that has an SLA, includes e-mail and WhatsApp, and names no staff member
SLA_PLAN = {"mailcampaigns": "licentie", "paynl": "business"}

PIET = "piet@bakkerij-jansen.nl"
PIET_PHONE = "+31612345678"
COLLEAGUE = "kees@bakkerij-jansen.nl"
AGENCY = "info@reclamebureau.nl"
STRANGER = "iemand@onbekend.nl"


def piet_account(db: Database, plan: str, *, staff: str | None = None, language: str = "nl",
                 contact_language: str | None = None) -> int:
    """Bakkerij Jansen with its contact Piet, a colleague Kees, and an agency that is not authorised."""
    return add_account(
        db, "Bakkerij Jansen", plan,
        contact("Piet", email=PIET, phone=PIET_PHONE, language=contact_language),
        contact("Kees", email=COLLEAGUE),
        contact("Reclamebureau Zon", email=AGENCY, role="third_party", authorised=False),
        staff=staff, language=language,
    )


def only_acknowledgement(db: Database, ref: str) -> Any:
    """The ticket's single outbound message (asserting there is exactly one)."""
    out = outbound(ticket(db, ref))
    assert len(out) == 1, out
    return out[0]


# -- R1 / R7: a new request, its ticket and its acknowledgement ----------------------------------


ACK_CASES = [
    # preset, plan, first-response deadline, resolution phrase, opening hours
    pytest.param(
        "mailcampaigns", "licentie", "donderdag 26 november 2026 om 10:00",
        "binnen 3 - 4 weken (tussen maandag 14 december 2026 om 10:00 en maandag 21 december 2026 om 10:00)",
        "maandag t/m vrijdag 09:00-17:00", id="mc-licentie"),
    pytest.param(
        "mailcampaigns", "ondersteuning", "donderdag 26 november 2026 om 10:00",
        "binnen 2 - 3 weken (tussen maandag 7 december 2026 om 10:00 en maandag 14 december 2026 om 10:00)",
        "maandag t/m vrijdag 09:00-17:00", id="mc-ondersteuning"),
    # PN business: 24 business hours of 8.5 h a day: Monday 7.5 + Tuesday 8.5 + Wednesday 8 -> Wednesday 17:00
    pytest.param(
        "paynl", "business", "woensdag 25 november 2026 om 17:00",
        "binnen 3 - 7 werkdagen (tussen donderdag 26 november 2026 om 10:00 en woensdag 2 december 2026 om 10:00)",
        "maandag t/m vrijdag 09:00-17:30", id="pn-business"),
    # PN premium: 8 business hours: Monday 7.5 + Tuesday 0.5 -> Tuesday 09:30
    pytest.param(
        "paynl", "premium", "dinsdag 24 november 2026 om 09:30",
        "binnen 3 - 7 werkdagen (tussen donderdag 26 november 2026 om 10:00 en woensdag 2 december 2026 om 10:00)",
        "maandag t/m vrijdag 09:00-17:30", id="pn-premium"),
]


@pytest.mark.parametrize(("preset_name", "plan", "due_text", "resolution_text", "hours_text"), ACK_CASES)
def test_new_request_opens_ticket_with_one_acknowledgement(
    db: Database, preset_name: str, plan: str, due_text: str, resolution_text: str, hours_text: str,
) -> None:
    piet_account(db, plan)
    result = pipeline(db, preset_name).ingest(email("<req-1@jansen>", PIET, "Mijn export werkt niet meer"))

    prefix = PREFIX[preset_name]
    assert result.outcome is Outcome.NEW_TICKET
    assert result.ticket_ref == f"{prefix}-10001"
    assert result.acknowledgement == "accepted"
    record = ticket(db, f"{prefix}-10001")
    assert (record.account, record.contact, record.channel, record.state, record.plan) == (
        "Bakkerij Jansen", "Piet", "email", "open", plan)
    assert record.priority == "normal"
    assert [m.external_id for m in inbound(record)] == ["<req-1@jansen>"]

    ack = only_acknowledgement(db, record.ref)
    assert (ack.channel, ack.recipient, ack.auto, ack.purpose, ack.delivery_state) == (
        "email", PIET, True, "accepted", "queued")
    assert ack.subject == f"Re: Vraag [{prefix}-10001]"
    text = ack.text
    assert text.startswith("Beste Piet,")
    assert f"referentie {prefix}-10001" in text
    assert f"uiterlijk {due_text}" in text
    assert resolution_text in text
    assert hours_text in text
    assert "telt daar niet voor" in text  # the acknowledgement is not the first response (R8)

    rows = outbox_rows(db)
    assert len(rows) == 1
    assert (rows[0].message_id, rows[0].channel, rows[0].recipient, rows[0].state) == (
        ack.id, "email", PIET, "pending")
    assert rows[0].payload["ticket_ref"] == record.ref
    assert rows[0].payload["in_reply_to"] == "<req-1@jansen>"  # threaded under the customer's mail


def test_acknowledgement_deadline_is_the_spec_example(db: Database) -> None:
    """R11: Monday 10:00 -> Thursday 10:00, stored as an instant and written out in the text."""
    piet_account(db, "licentie")
    result = pipeline(db, "mailcampaigns").ingest(email("<r@x>", PIET, "vraag over de export"))
    assert result.first_response_due == at(2026, 11, 26, 10)
    record = ticket(db, "MC-10001")
    assert record.first_response_due == at(2026, 11, 26, 10)
    assert record.resolution_due_min == at(2026, 12, 14, 10)
    assert record.resolution_due_max == at(2026, 12, 21, 10)
    assert "uiterlijk donderdag 26 november 2026 om 10:00" in only_acknowledgement(db, "MC-10001").text


@BOTH
def test_acknowledgement_on_whatsapp_goes_to_the_number(db: Database, preset_name: str) -> None:
    piet_account(db, SLA_PLAN[preset_name])
    result = pipeline(db, preset_name).ingest(whatsapp("SM0001", "06 12 34 56 78", "Hallo, de koppeling werkt niet"))
    assert result.outcome is Outcome.NEW_TICKET
    ack = only_acknowledgement(db, result.ticket_ref or "")
    assert (ack.channel, ack.recipient, ack.subject) == ("whatsapp", PIET_PHONE, None)
    assert result.ticket_ref in ack.text
    assert [(r.channel, r.recipient) for r in outbox_rows(db)] == [("whatsapp", PIET_PHONE)]


@BOTH
@pytest.mark.parametrize("where", ["account", "contact"])
def test_acknowledgement_in_english(db: Database, preset_name: str, where: str) -> None:
    if where == "account":
        piet_account(db, SLA_PLAN[preset_name], language="en")
    else:
        piet_account(db, SLA_PLAN[preset_name], contact_language="en")
    result = pipeline(db, preset_name).ingest(email("<en@x>", PIET, "The export does not work"))
    text = only_acknowledgement(db, result.ticket_ref or "").text
    assert text.startswith("Dear Piet,")
    assert f"reference {result.ticket_ref}" in text
    due = ("Thursday 26 November 2026 at 10:00" if preset_name == "mailcampaigns"
           else "Wednesday 25 November 2026 at 17:00")
    assert f"respond by {due}" in text
    assert "Monday to Friday 09:00-" in text
    assert "Beste" not in text and "uiterlijk" not in text


def test_contact_language_wins_over_account_language(db: Database) -> None:
    piet_account(db, "licentie", language="en", contact_language="nl")
    result = pipeline(db, "mailcampaigns").ingest(email("<nl@x>", PIET, "vraag"))
    assert only_acknowledgement(db, result.ticket_ref or "").text.startswith("Beste Piet,")


@pytest.mark.parametrize(("preset_name", "plan", "named"), [
    ("mailcampaigns", "ondersteuning", True),   # campaign specialist
    ("mailcampaigns", "project", True),         # project contact
    ("mailcampaigns", "licentie", False),       # no staff role in the plan
    ("paynl", "business", True),                # account manager
    ("paynl", "premium", True),
])
def test_assigned_staff_member_named_where_the_plan_has_one(db: Database, preset_name: str, plan: str,
                                                            named: bool) -> None:
    piet_account(db, plan, staff="Sanne de Vries")
    result = pipeline(db, preset_name).ingest(email("<s@x>", PIET, "vraag over de export"))
    text = only_acknowledgement(db, result.ticket_ref or "").text
    assert ("Je vaste contactpersoon bij ons is Sanne de Vries." in text) is named
    assert ("Sanne" in text) is named


@pytest.mark.parametrize(("plan", "channel"), [("pioneer", "whatsapp"), ("professional", "email"),
                                               ("professional", "whatsapp")])
def test_plan_without_sla_says_no_times_are_guaranteed(db: Database, plan: str, channel: str) -> None:
    piet_account(db, plan, staff="Sanne de Vries")
    msg = (whatsapp("SM-nosla", PIET_PHONE, "Hoe werkt een terugbetaling?") if channel == "whatsapp"
           else email("<nosla@x>", PIET, "Hoe werkt een terugbetaling?"))
    result = pipeline(db, "paynl").ingest(msg)
    assert result.outcome is Outcome.NEW_TICKET
    assert result.acknowledgement == "accepted_no_sla"
    assert result.first_response_due is None
    record = ticket(db, "PN-10001")
    assert (record.first_response_due, record.resolution_due_min, record.resolution_due_max) == (None, None, None)
    text = only_acknowledgement(db, "PN-10001").text
    assert "PN-10001" in text
    assert "heeft geen SLA" in text and "geen gegarandeerde reactie- of oplostijden" in text
    assert "maandag t/m vrijdag 09:00-17:30" in text
    assert "uiterlijk" not in text
    assert "Sanne" not in text  # these plans assign no account manager
    assert reminders(db, record.id) == []


def test_paid_service_is_announced_with_the_rates(db: Database) -> None:
    piet_account(db, "licentie")
    result = pipeline(db, "mailcampaigns").ingest(
        email("<opmaak@x>", PIET, "Kunnen jullie helpen met de opmaak van onze nieuwsbrief?", subject="Nieuwsbrief"))
    assert result.kind == "service"
    record = ticket(db, "MC-10001")
    assert record.kind == "service" and record.kind_rule == "mailing_layout"
    text = only_acknowledgement(db, "MC-10001").text
    assert "betaalde service" in text
    assert re.search(r"€\s130,00 per uur", text), text
    assert re.search(r"met spoed €\s176,80 per uur", text), text
    assert re.search(r"strippenkaart €\s117,00 per uur \(minimaal 5 uur\)", text), text
    assert "minimaal 1 uur" in text and "akkoord" in text


def test_paid_service_in_english_uses_english_number_format(db: Database) -> None:
    piet_account(db, "licentie", language="en")
    pipeline(db, "mailcampaigns").ingest(email("<layout@x>", PIET, "Could you help with the layout of our mailing?"))
    text = only_acknowledgement(db, "MC-10001").text
    assert "130.00" in text and "176.80" in text and "117.00" in text
    assert "130,00" not in text


def test_free_support_is_not_quoted(db: Database) -> None:
    piet_account(db, "licentie")
    result = pipeline(db, "mailcampaigns").ingest(email("<bug@x>", PIET, "De verzendknop werkt niet"))
    assert result.kind == "support"
    text = only_acknowledgement(db, "MC-10001").text
    assert "gratis support" in text
    assert "130,00" not in text and "betaalde service" not in text


# -- R8: the first response is a staff member's ------------------------------------------------


@BOTH
def test_acknowledgement_is_not_the_first_response_a_staff_reply_is(db: Database, preset_name: str) -> None:
    piet_account(db, SLA_PLAN[preset_name])
    result = pipeline(db, preset_name).ingest(email("<r8@x>", PIET, "vraag over de export"))
    ref = result.ticket_ref or ""
    record = ticket(db, ref)
    assert record.first_responded_at is None
    assert [r.state for r in reminders(db, record.id)] == ["planned"] * 3

    answered = at(2026, 11, 23, 14, 5)
    action = Desk(db, now=lambda: answered).reply(ref, "We kijken ernaar.", "anna")
    assert action.first_response is True
    record = ticket(db, ref)
    assert record.first_responded_at == answered
    assert record.state == "open"
    assert [r.state for r in reminders(db, record.id)] == ["cancelled"] * 3
    reply = outbound(record)[-1]
    assert (reply.purpose, reply.staff, reply.auto, reply.recipient, reply.text) == (
        "reply", "anna", False, PIET, "We kijken ernaar.")
    assert outbox_counts(db) == {"pending": 2}

    # a second reply is not a first response and does not move it
    later = at(2026, 11, 24, 9, 30)
    assert Desk(db, now=lambda: later).reply(ref, "Opgelost?", "bob").first_response is False
    assert ticket(db, ref).first_responded_at == answered


@BOTH
def test_asking_for_clarification_counts_as_first_response(db: Database, preset_name: str) -> None:
    piet_account(db, SLA_PLAN[preset_name])
    ref = pipeline(db, preset_name).ingest(email("<clar@x>", PIET, "vraag")).ticket_ref or ""
    asked = at(2026, 11, 23, 11)
    action = Desk(db, now=lambda: asked).reply(ref, "Welke export bedoel je?", "anna", clarify=True)
    assert action.first_response is True and action.state == "waiting"
    record = ticket(db, ref)
    assert record.first_responded_at == asked
    assert record.state == "waiting"
    assert all(r.state == "cancelled" for r in reminders(db, record.id))
    assert outbound(record)[-1].purpose == "clarify"


# -- R2: third parties -------------------------------------------------------------------------


@BOTH
def test_unauthorised_third_party_is_refused_without_revealing_anything(db: Database, preset_name: str) -> None:
    piet_account(db, SLA_PLAN[preset_name], staff="Sanne de Vries")
    intake = pipeline(db, preset_name)
    own = intake.ingest(email("<own@x>", PIET, "vraag over de export"))  # a ticket the agency must not learn of
    result = intake.ingest(email("<agency@x>", AGENCY, "Wat is de status van de aanvraag van Bakkerij Jansen?",
                                 subject="Statusvraag"))

    assert result.outcome is Outcome.THIRD_PARTY_REFUSED
    assert result.ticket_ref is None
    assert result.acknowledgement == "third_party"
    with_tickets = db.run(lambda s: TicketRepository(s).queue())
    assert [t.ref for t in with_tickets] == [own.ticket_ref]  # no ticket opened
    kept_messages = kept(db)
    assert [(k.external_id, k.sender, k.decision) for k in kept_messages] == [
        ("<agency@x>", AGENCY, "third_party_refused")]

    refusal = [m for m in message_texts_out(db) if m.recipient == AGENCY]
    assert len(refusal) == 1
    body = refusal[0].text + "\n" + (refusal[0].subject or "")
    assert refusal[0].subject == "Re: Statusvraag"
    assert refusal[0].purpose == "third_party" and refusal[0].ticket_id is None
    assert "alleen met de contactpersoon" in refusal[0].text
    for secret in ("Bakkerij", "Jansen", "Piet", "Sanne", own.ticket_ref or "?", PREFIX[preset_name] + "-"):
        assert secret not in body, secret
    assert outbox_counts(db) == {"pending": 2}


@BOTH
def test_authorised_third_party_may_open_a_request(db: Database, preset_name: str) -> None:
    add_account(db, "Bakkerij Jansen", SLA_PLAN[preset_name],
                contact("Piet", email=PIET),
                contact("Webbouwer", email="dev@webbouwer.nl", role="third_party", authorised=True))
    result = pipeline(db, preset_name).ingest(email("<dev@x>", "dev@webbouwer.nl", "de koppeling werkt niet"))
    assert result.outcome is Outcome.NEW_TICKET
    record = ticket(db, result.ticket_ref or "")
    assert (record.account, record.contact) == ("Bakkerij Jansen", "Webbouwer")
    assert only_acknowledgement(db, record.ref).recipient == "dev@webbouwer.nl"
    assert kept(db) == []


# -- R3: someone else on the thread ------------------------------------------------------------


@BOTH
@pytest.mark.parametrize("how", ["references", "subject"])
def test_someone_else_on_the_thread_is_kept_and_told(db: Database, preset_name: str, how: str) -> None:
    piet_account(db, SLA_PLAN[preset_name])
    intake = pipeline(db, preset_name)
    ref = intake.ingest(email("<first@jansen>", PIET, "vraag over de export")).ticket_ref or ""
    before = ticket(db, ref)

    for sender, ext in ((COLLEAGUE, "<cc@jansen>"), (STRANGER, "<fwd@elders>")):
        msg = (email(ext, sender, "Ik kijk even mee", subject="Re: Vraag", thread_refs=("<first@jansen>",))
               if how == "references" else email(ext, sender, "Ik kijk even mee", subject=f"Re: Vraag [{ref}]"))
        result = intake.ingest(msg)
        assert result.outcome is Outcome.NOT_CONTACT_PERSON, sender
        assert result.ticket_ref == ref
        assert result.acknowledgement == "not_contact_person"

    after = ticket(db, ref)
    assert (after.contact_id, after.contact, after.state, after.first_response_due) == (
        before.contact_id, "Piet", "open", before.first_response_due)
    stored = {m.external_id: m for m in inbound(after)}
    assert stored["<cc@jansen>"].decision == "not_contact_person"
    assert stored["<fwd@elders>"].decision == "not_contact_person"
    assert stored["<first@jansen>"].decision == "new_ticket"

    notices = {m.recipient: m for m in outbound(after) if m.purpose == "not_contact_person"}
    assert set(notices) == {COLLEAGUE, STRANGER}
    for notice in notices.values():
        assert "alleen met de contactpersoon" in notice.text
    assert sorted(r.recipient for r in outbox_rows(db)) == sorted([PIET, COLLEAGUE, STRANGER])
    assert len(db.run(lambda s: TicketRepository(s).queue())) == 1  # no new ticket for either of them


@BOTH
def test_subject_reference_from_the_contact_person_joins_the_ticket(db: Database, preset_name: str) -> None:
    piet_account(db, SLA_PLAN[preset_name])
    intake = pipeline(db, preset_name)
    ref = intake.ingest(email("<a@jansen>", PIET, "vraag over de export")).ticket_ref or ""
    result = intake.ingest(email("<b@jansen>", PIET, "Nog een detail", subject=f"Re: Vraag [{ref.lower()}]"))
    assert result.outcome is Outcome.REPLY
    assert result.ticket_ref == ref
    assert result.acknowledgement is None
    record = ticket(db, ref)
    assert [m.external_id for m in inbound(record)] == ["<a@jansen>", "<b@jansen>"]
    assert len(outbound(record)) == 1  # no second acknowledgement
    assert outbox_counts(db) == {"pending": 1}


@BOTH
def test_reply_on_the_e_mail_thread_from_the_contact_person_joins(db: Database, preset_name: str) -> None:
    piet_account(db, SLA_PLAN[preset_name])
    intake = pipeline(db, preset_name)
    ref = intake.ingest(email("<a@jansen>", PIET, "vraag over de export")).ticket_ref or ""
    result = intake.ingest(email("<b@jansen>", PIET, "aanvulling", subject="iets anders",
                                 thread_refs=("<unrelated@x>", "<a@jansen>")))
    assert (result.outcome, result.ticket_ref) == (Outcome.REPLY, ref)
    assert outbox_counts(db) == {"pending": 1}


# -- R4: unknown senders ------------------------------------------------------------------------


@BOTH
def test_unknown_sender_gets_an_unverified_ticket(db: Database, preset_name: str) -> None:
    piet_account(db, SLA_PLAN[preset_name])
    result = pipeline(db, preset_name).ingest(email("<who@x>", STRANGER, "Mijn betaling is niet aangekomen"))
    assert result.outcome is Outcome.UNKNOWN_SENDER
    ref = f"{PREFIX[preset_name]}-10001"
    assert result.ticket_ref == ref
    record = ticket(db, ref)
    assert (record.state, record.account, record.contact, record.plan, record.kind) == (
        "unverified", None, None, None, "undetermined")
    assert record.first_response_due is None
    assert reminders(db, record.id) == []
    ack = only_acknowledgement(db, ref)
    assert (ack.purpose, ack.recipient) == ("unknown_sender", STRANGER)
    assert f"We konden {STRANGER} niet koppelen aan een klantaccount" in ack.text
    assert ref in ack.text

    # the same stranger writing again on that thread joins the unverified ticket
    again = pipeline(db, preset_name).ingest(email("<who2@x>", STRANGER, "nog iets", thread_refs=("<who@x>",)))
    assert (again.outcome, again.ticket_ref) == (Outcome.REPLY, ref)
    assert outbox_counts(db) == {"pending": 1}


# -- R5: a channel the plan does not include ---------------------------------------------------


def test_pioneer_by_e_mail_is_kept_and_told_to_use_whatsapp(db: Database) -> None:
    piet_account(db, "pioneer")
    result = pipeline(db, "paynl").ingest(email("<pioneer@x>", PIET, "Hoe stel ik iDEAL in?"))
    assert result.outcome is Outcome.CHANNEL_NOT_IN_PLAN
    assert result.ticket_ref is None
    assert db.run(lambda s: TicketRepository(s).queue()) == []
    assert [(k.external_id, k.decision) for k in kept(db)] == [("<pioneer@x>", "channel_not_in_plan")]
    assert db.run(lambda s: ReminderRepository(s).planned()) == []
    [reply] = message_texts_out(db)
    assert (reply.purpose, reply.recipient, reply.channel) == ("channel_not_in_plan", PIET, "email")
    assert "Je kunt ons bereiken via WhatsApp." in reply.text
    assert "geen support via e-mail" in reply.text
    assert "Pioneer" in reply.text
    assert outbox_counts(db) == {"pending": 1}

    # on WhatsApp the same contact opens a ticket as usual
    ok = pipeline(db, "paynl").ingest(whatsapp("SM-pioneer", PIET_PHONE, "Hoe stel ik iDEAL in?"))
    assert (ok.outcome, ok.ticket_ref) == (Outcome.NEW_TICKET, "PN-10001")


# -- R6: WhatsApp threads by number while the ticket is open -----------------------------------


@BOTH
def test_whatsapp_number_joins_open_ticket_and_opens_a_new_one_after_resolve(db: Database, preset_name: str) -> None:
    piet_account(db, SLA_PLAN[preset_name])
    intake = pipeline(db, preset_name)
    prefix = PREFIX[preset_name]

    first = intake.ingest(whatsapp("SM1", PIET_PHONE, "Hallo, de koppeling werkt niet"))
    assert (first.outcome, first.ticket_ref) == (Outcome.NEW_TICKET, f"{prefix}-10001")
    second = intake.ingest(whatsapp("SM2", "+31 6 1234 5678", "Het gaat om de webshop",
                                    received_at=MONDAY_10 + timedelta(minutes=3)))
    assert (second.outcome, second.ticket_ref, second.acknowledgement) == (Outcome.REPLY, f"{prefix}-10001", None)
    record = ticket(db, f"{prefix}-10001")
    assert [m.external_id for m in inbound(record)] == ["SM1", "SM2"]
    assert len(outbound(record)) == 1
    assert outbox_counts(db) == {"pending": 1}

    Desk(db, now=lambda: at(2026, 11, 23, 15)).resolve(f"{prefix}-10001", "anna")
    assert ticket(db, f"{prefix}-10001").state == "resolved"

    third = pipeline(db, preset_name, now=at(2026, 11, 24, 9)).ingest(
        whatsapp("SM3", PIET_PHONE, "Nieuwe vraag", received_at=at(2026, 11, 24, 9)))
    assert (third.outcome, third.ticket_ref) == (Outcome.NEW_TICKET, f"{prefix}-10002")
    assert [m.external_id for m in inbound(ticket(db, f"{prefix}-10002"))] == ["SM3"]
    assert [m.external_id for m in inbound(ticket(db, f"{prefix}-10001"))] == ["SM1", "SM2"]
    assert outbox_counts(db) == {"pending": 2}


def test_other_whatsapp_number_opens_its_own_ticket(db: Database) -> None:
    add_account(db, "Bakkerij Jansen", "licentie", contact("Piet", phone=PIET_PHONE),
                contact("Kees", phone="+31687654321"))
    intake = pipeline(db, "mailcampaigns")
    assert intake.ingest(whatsapp("SM1", PIET_PHONE, "vraag")).ticket_ref == "MC-10001"
    other = intake.ingest(whatsapp("SM2", "+31687654321", "andere vraag"))
    assert (other.outcome, other.ticket_ref) == (Outcome.NEW_TICKET, "MC-10002")


# -- R14: waiting on the customer pauses the resolution clock ----------------------------------


@pytest.mark.parametrize(("asked", "answered", "due_min", "due_max"), [
    # two working days of waiting (Tuesday 11:00 -> Thursday 11:00): 3-7 working days become 5-9
    pytest.param(at(2026, 11, 24, 11), at(2026, 11, 26, 11), at(2026, 11, 30, 10), at(2026, 12, 4, 10),
                 id="two-working-days"),
    # Friday 11:00 -> Monday 11:00 is one working day, not three calendar days
    pytest.param(at(2026, 11, 27, 11), at(2026, 11, 30, 11), at(2026, 11, 27, 10), at(2026, 12, 3, 10),
                 id="over-a-weekend"),
    # two days and three hours on the working-days clock
    pytest.param(at(2026, 11, 24, 11), at(2026, 11, 26, 14), at(2026, 11, 30, 13), at(2026, 12, 4, 13),
                 id="days-and-hours"),
])
def test_clarification_pauses_pn_business_resolution_on_working_days(
    db: Database, asked: datetime, answered: datetime, due_min: datetime, due_max: datetime,
) -> None:
    piet_account(db, "business")
    ref = pipeline(db, "paynl").ingest(email("<q@x>", PIET, "Uitbetaling klopt niet")).ticket_ref or ""
    record = ticket(db, ref)
    assert (record.resolution_due_min, record.resolution_due_max) == (at(2026, 11, 26, 10), at(2026, 12, 2, 10))

    Desk(db, now=lambda: asked).reply(ref, "Om welke uitbetaling gaat het?", "anna", clarify=True)
    waiting = ticket(db, ref)
    assert waiting.state == "waiting"
    assert waiting.waiting_since == asked
    # unchanged while waiting: the pause is only known when it ends
    assert (waiting.resolution_due_min, waiting.resolution_due_max) == (at(2026, 11, 26, 10), at(2026, 12, 2, 10))

    result = pipeline(db, "paynl", now=answered).ingest(
        email("<a@x>", PIET, "Die van vorige week", subject=f"Re: Vraag [{ref}]", received_at=answered,
              thread_refs=("<q@x>",)))
    assert (result.outcome, result.ticket_ref) == (Outcome.REPLY, ref)
    resumed = ticket(db, ref)
    assert resumed.state == "open"
    assert resumed.waiting_since is None
    assert resumed.pauses == ((asked, answered),)
    assert resumed.resolution_due_min == due_min
    assert resumed.resolution_due_max == due_max
    assert resumed.first_responded_at == asked


def test_asking_twice_while_waiting_counts_the_wait_once(db: Database) -> None:
    """Regression: a second clarification while already waiting opened a second, overlapping pause."""
    piet_account(db, "business")
    ref = pipeline(db, "paynl").ingest(email("<q@x>", PIET, "vraag")).ticket_ref or ""
    Desk(db, now=lambda: at(2026, 11, 24, 11)).reply(ref, "Welke?", "anna", clarify=True)
    Desk(db, now=lambda: at(2026, 11, 25, 11)).reply(ref, "Nog even: welke?", "anna", clarify=True)
    waiting = ticket(db, ref)
    assert waiting.state == "waiting"
    assert waiting.waiting_since == at(2026, 11, 24, 11)
    assert waiting.pauses == ((at(2026, 11, 24, 11), None),)
    pipeline(db, "paynl", now=at(2026, 11, 26, 11)).ingest(
        email("<a@x>", PIET, "deze", received_at=at(2026, 11, 26, 11), thread_refs=("<q@x>",)))
    record = ticket(db, ref)
    assert record.pauses == ((at(2026, 11, 24, 11), at(2026, 11, 26, 11)),)  # nothing left open
    # two working days of waiting, not three
    assert (record.resolution_due_min, record.resolution_due_max) == (at(2026, 11, 30, 10), at(2026, 12, 4, 10))


def test_out_of_office_reply_does_not_end_the_wait(db: Database) -> None:
    """Regression: an automatic reply to the clarification question resumed the resolution clock."""
    piet_account(db, "business")
    ref = pipeline(db, "paynl").ingest(email("<q@x>", PIET, "vraag")).ticket_ref or ""
    asked = at(2026, 11, 24, 11)
    Desk(db, now=lambda: asked).reply(ref, "Welke?", "anna", clarify=True)
    auto = pipeline(db, "paynl", now=asked + timedelta(minutes=1)).ingest(
        email("<ooo@x>", PIET, "Ik ben afwezig tot en met donderdag", received_at=asked + timedelta(minutes=1),
              thread_refs=("<q@x>",), automatic=True))
    assert (auto.outcome, auto.acknowledgement) == (Outcome.REPLY, None)
    waiting = ticket(db, ref)
    assert (waiting.state, waiting.waiting_since, waiting.pauses) == ("waiting", asked, ((asked, None),))

    answered = at(2026, 11, 26, 11)
    pipeline(db, "paynl", now=answered).ingest(
        email("<a@x>", PIET, "deze", received_at=answered, thread_refs=("<q@x>",)))
    record = ticket(db, ref)
    assert record.state == "open" and record.pauses == ((asked, answered),)
    assert (record.resolution_due_min, record.resolution_due_max) == (at(2026, 11, 30, 10), at(2026, 12, 4, 10))


def test_clarification_pauses_mc_resolution_on_the_calendar_clock(db: Database) -> None:
    piet_account(db, "ondersteuning")
    ref = pipeline(db, "mailcampaigns").ingest(email("<q@x>", PIET, "vraag")).ticket_ref or ""
    asked, answered = at(2026, 11, 24, 11), at(2026, 11, 26, 15, 30)  # 2 days 4.5 hours of real time
    Desk(db, now=lambda: asked).reply(ref, "Welke lijst?", "anna", clarify=True)
    pipeline(db, "mailcampaigns", now=answered).ingest(
        email("<a@x>", PIET, "De nieuwsbrieflijst", received_at=answered, thread_refs=("<q@x>",)))
    record = ticket(db, ref)
    assert record.state == "open"
    assert record.resolution_due_min == at(2026, 12, 7, 10) + timedelta(days=2, hours=4, minutes=30)
    assert record.resolution_due_max == at(2026, 12, 14, 10) + timedelta(days=2, hours=4, minutes=30)


def test_two_clarifications_add_up(db: Database) -> None:
    piet_account(db, "business")
    ref = pipeline(db, "paynl").ingest(email("<q@x>", PIET, "vraag")).ticket_ref or ""
    Desk(db, now=lambda: at(2026, 11, 24, 11)).reply(ref, "Welke?", "anna", clarify=True)
    pipeline(db, "paynl", now=at(2026, 11, 25, 11)).ingest(
        email("<a1@x>", PIET, "deze", received_at=at(2026, 11, 25, 11), thread_refs=("<q@x>",)))
    Desk(db, now=lambda: at(2026, 11, 25, 12)).reply(ref, "En wanneer?", "anna", clarify=True)
    pipeline(db, "paynl", now=at(2026, 11, 26, 12)).ingest(
        email("<a2@x>", PIET, "gisteren", received_at=at(2026, 11, 26, 12), thread_refs=("<q@x>",)))
    record = ticket(db, ref)
    assert len(record.pauses) == 2
    # 1 + 1 working days of waiting
    assert (record.resolution_due_min, record.resolution_due_max) == (at(2026, 11, 30, 10), at(2026, 12, 4, 10))


# -- R15: Premium first ---------------------------------------------------------------------------


def test_premium_tickets_go_first_in_the_queue(db: Database) -> None:
    add_account(db, "Zakelijk BV", "business", contact("Bea", email="bea@zakelijk.nl"))
    add_account(db, "Premium BV", "premium", contact("Piet", email="piet@premium.nl"))
    add_account(db, "Kleintje", "professional", contact("Kim", email="kim@kleintje.nl"))
    received_business, received_premium = at(2026, 11, 23, 9), at(2026, 11, 25, 12)
    pipeline(db, "paynl", now=received_business).ingest(
        email("<b@x>", "bea@zakelijk.nl", "vraag", received_at=received_business))
    pipeline(db, "paynl", now=received_business).ingest(
        email("<k@x>", "kim@kleintje.nl", "vraag", received_at=received_business))
    pipeline(db, "paynl", now=received_premium).ingest(
        email("<p@x>", "piet@premium.nl", "vraag", received_at=received_premium))
    business, premium = ticket(db, "PN-10001"), ticket(db, "PN-10003")
    assert business.first_response_due == at(2026, 11, 25, 16)   # 24 h: 8.5 + 8.5 + 7
    assert premium.first_response_due == at(2026, 11, 26, 11, 30)  # 8 h: 5.5 + 2.5
    assert business.first_response_due < premium.first_response_due

    queue = db.run(lambda s: TicketRepository(s).queue("open"))
    assert [(t.ref, t.plan) for t in queue] == [
        ("PN-10003", "premium"), ("PN-10001", "business"), ("PN-10002", "professional")]


def test_premium_reminders_go_first_in_the_reminder_list(db: Database) -> None:
    add_account(db, "Zakelijk BV", "business", contact("Bea", email="bea@zakelijk.nl"))
    add_account(db, "Premium BV", "premium", contact("Piet", email="piet@premium.nl"))
    early, late = at(2026, 11, 23, 9), at(2026, 11, 25, 12)
    pipeline(db, "paynl", now=early).ingest(email("<b@x>", "bea@zakelijk.nl", "vraag", received_at=early))
    pipeline(db, "paynl", now=late).ingest(email("<p@x>", "piet@premium.nl", "vraag", received_at=late))
    planned = db.run(lambda s: ReminderRepository(s).planned())
    business_first_due = min(r.due_at for r in planned if r.ticket_id == 1)
    premium_first_due = min(r.due_at for r in planned if r.ticket_id == 2)
    assert business_first_due < premium_first_due
    assert [r.ticket_id for r in planned] == [2, 2, 2, 1, 1, 1]


# -- R17: critical incidents on the 24/7 clock ----------------------------------------------------


@pytest.mark.parametrize("channel", ["whatsapp", "email"])
def test_critical_request_runs_on_the_calendar_clock(db: Database, channel: str) -> None:
    piet_account(db, "business")
    saturday_night = at(2026, 11, 28, 22)
    msg = (whatsapp("SM-crit", PIET_PHONE, "Alle betalingen falen!", received_at=saturday_night, critical=True)
           if channel == "whatsapp"
           else email("<crit@x>", PIET, "Alle betalingen falen!", received_at=saturday_night, critical=True))
    result = pipeline(db, "paynl", now=saturday_night).ingest(msg)
    assert result.outcome is Outcome.NEW_TICKET
    assert result.acknowledgement == "critical"
    record = ticket(db, "PN-10001")
    assert record.priority == "critical"
    assert record.first_response_due == saturday_night + timedelta(hours=24)
    assert record.first_response_due == at(2026, 11, 29, 22)
    text = only_acknowledgement(db, "PN-10001").text
    assert "kritieke storing" in text and "PN-10001" in text
    # R7: the deadline is staff's, not a promise to the customer: on-call is paged and the outage line may cost
    assert "zondag 29 november" not in text and "uiterlijk" not in text and "22:00" not in text
    assert "gealarmeerd" in text and "eigen domein" in text
    assert "24/7" in text


@pytest.mark.parametrize(("language", "paged", "charge", "no_deadline"), [
    ("nl", "direct gealarmeerd", "kunnen de kosten van de storingsdienst in rekening worden gebracht",
     ("uiterlijk", "reageert", "zondag", "29 november", "03:00")),
    ("en", "has been paged", "the outage service may be charged",
     ("respond by", " by Sunday", "Sunday", "29 November", "03:00")),
])
def test_a_critical_acknowledgement_says_on_call_is_paged_and_what_it_may_cost_and_gives_no_deadline(
        db: Database, language: str, paged: str, charge: str, no_deadline: tuple[str, ...]) -> None:
    """R7: "uiterlijk zondag 29 november 03:00" for a Business outage at night was a time the SLA never gives."""
    piet_account(db, "business", language=language)
    night = at(2026, 11, 28, 3)  # Saturday 03:00: 24 hours on the 24/7 clock would be Sunday 03:00
    result = pipeline(db, "paynl", now=night).ingest(
        whatsapp("SM-crit", PIET_PHONE, "Alle betalingen falen!", received_at=night, critical=True))
    assert result.acknowledgement == "critical"
    record = ticket(db, result.ticket_ref or "")
    assert record.first_response_due == at(2026, 11, 29, 3)  # still the staff's deadline on the calendar clock
    ack = only_acknowledgement(db, record.ref)
    assert record.ref in ack.text and paged in ack.text and charge in ack.text
    for words in no_deadline:
        assert words not in ack.text, words


def test_critical_flag_without_an_outage_line_promises_no_outage_service(db: Database) -> None:
    """Regression: MailCampaigns has no 24/7 line, yet a critical message was told the outage service was paged."""
    piet_account(db, "licentie")
    result = pipeline(db, "mailcampaigns").ingest(
        whatsapp("SM-crit", PIET_PHONE, "Niets wordt meer verstuurd!", critical=True))
    record = ticket(db, result.ticket_ref or "")
    assert record.priority == "critical"
    assert record.first_response_due == at(2026, 11, 26, 10)  # the plan's own business clock
    ack = only_acknowledgement(db, record.ref)
    assert ack.purpose == "accepted"
    assert "uiterlijk donderdag 26 november 2026 om 10:00" in ack.text
    assert "storingsdienst" not in ack.text and "24/7" not in ack.text


def test_critical_request_on_a_plan_without_sla_warns_of_the_charge(db: Database) -> None:
    piet_account(db, "pioneer")
    result = pipeline(db, "paynl").ingest(whatsapp("SM-crit", PIET_PHONE, "Alle betalingen falen!", critical=True))
    record = ticket(db, result.ticket_ref or "")
    assert (record.priority, record.first_response_due) == ("critical", None)
    text = only_acknowledgement(db, record.ref).text
    assert "kritieke storing" in text and "eigen domein" in text
    assert "uiterlijk" not in text


def test_critical_request_over_the_dst_change_counts_real_hours(db: Database) -> None:
    piet_account(db, "premium")
    night = at(2026, 10, 24, 20)  # Saturday; clocks go back at 03:00 on Sunday 25 October
    pipeline(db, "paynl", now=night).ingest(
        whatsapp("SM-dst", PIET_PHONE, "storing", received_at=night, critical=True))
    record = ticket(db, "PN-10001")
    # 8 real hours: 18:00 UTC + 8 h = 02:00 UTC = 03:00 CET (the wall clock shows 7 hours later)
    assert record.first_response_due == night.astimezone(timezone.utc) + timedelta(hours=8)
    assert record.first_response_due is not None
    assert record.first_response_due.astimezone(night.tzinfo).hour == 3


def test_normal_request_on_a_saturday_night_waits_for_opening_hours(db: Database) -> None:
    piet_account(db, "business")
    saturday_night = at(2026, 11, 28, 22)
    pipeline(db, "paynl", now=saturday_night).ingest(
        whatsapp("SM-norm", PIET_PHONE, "vraag", received_at=saturday_night))
    record = ticket(db, "PN-10001")
    assert record.priority == "normal"
    assert record.first_response_due == at(2026, 12, 2, 16)  # from Monday 09:00: 8.5 + 8.5 + 7 -> Wednesday 16:00


def test_critical_message_while_a_normal_ticket_is_open_is_not_lost_as_a_reply(db: Database) -> None:
    """R17 over R6: a critical incident opens its own critical ticket, it does not join a normal one."""
    piet_account(db, "business")
    intake = pipeline(db, "paynl")
    first = intake.ingest(whatsapp("SM-normal", PIET_PHONE, "Vraag over de factuur"))
    result = intake.ingest(whatsapp("SM-crit", PIET_PHONE, "Alle betalingen falen!", critical=True))
    assert result.outcome.value == "new_ticket" and result.ticket_ref != first.ticket_ref
    holder = ticket(db, result.ticket_ref or "")
    assert holder.priority == "critical"


# -- R16: reminders planned at intake -------------------------------------------------------------


@pytest.mark.parametrize(("preset_name", "plan", "expected"), [
    # 24 business hours from Monday 10:00 (09:00-17:00): 75% = 18 h -> Wednesday 12:00; 1 h before Thursday 10:00
    ("mailcampaigns", "licentie",
     [("75%", at(2026, 11, 25, 12), False), ("1h before", at(2026, 11, 26, 9), False),
      ("breach", at(2026, 11, 26, 10), True)]),
    # 24 business hours (09:00-17:30): 75% = 18 h -> Wednesday 11:00 (7.5 + 8.5 + 2); due Wednesday 17:00
    ("paynl", "business",
     [("75%", at(2026, 11, 25, 11), False), ("1h before", at(2026, 11, 25, 16), False),
      ("breach", at(2026, 11, 25, 17), True)]),
    # 8 business hours: 75% = 6 h -> Monday 16:00; due Tuesday 09:30; 1 h before -> Monday 17:00
    ("paynl", "premium",
     [("75%", at(2026, 11, 23, 16), False), ("1h before", at(2026, 11, 23, 17), False),
      ("breach", at(2026, 11, 24, 9, 30), True)]),
])
def test_reminders_planned_for_sla_plans(db: Database, preset_name: str, plan: str,
                                         expected: list[tuple[str, datetime, bool]]) -> None:
    piet_account(db, plan)
    ref = pipeline(db, preset_name).ingest(email("<rem@x>", PIET, "vraag")).ticket_ref or ""
    planned = reminders(db, ticket(db, ref).id)
    assert [(r.spec, r.due_at, r.escalate) for r in planned] == expected
    assert all(r.state == "planned" for r in planned)


@pytest.mark.parametrize("plan", ["pioneer", "professional"])
def test_no_reminders_without_sla(db: Database, plan: str) -> None:
    piet_account(db, plan)
    pipeline(db, "paynl").ingest(whatsapp("SM-no", PIET_PHONE, "vraag"))
    assert reminders(db, ticket(db, "PN-10001").id) == []
    assert db.run(lambda s: ReminderRepository(s).planned()) == []


# -- duplicates -------------------------------------------------------------------------------------


@BOTH
def test_same_message_twice_is_stored_once(db: Database, preset_name: str) -> None:
    piet_account(db, SLA_PLAN[preset_name])
    intake = pipeline(db, preset_name)
    msg = email("<dup@jansen>", PIET, "vraag")
    first, second = intake.ingest(msg), intake.ingest(msg)
    assert first.outcome is Outcome.NEW_TICKET
    assert second.outcome is Outcome.DUPLICATE
    assert second.message_id == first.message_id
    assert second.acknowledgement is None
    counts = count_rows(db)
    assert (counts["tickets"], counts["outbox"]) == (1, 1)
    assert counts["messages"] == 2  # the inbound one and its acknowledgement
    # the same id on another channel is another message
    other = intake.ingest(whatsapp("<dup@jansen>", PIET_PHONE, "vraag"))
    assert other.outcome is Outcome.NEW_TICKET


@BOTH
def test_duplicate_whatsapp_reply_is_stored_once(db: Database, preset_name: str) -> None:
    piet_account(db, SLA_PLAN[preset_name])
    intake = pipeline(db, preset_name)
    intake.ingest(whatsapp("SM1", PIET_PHONE, "vraag"))
    assert intake.ingest(whatsapp("SM2", PIET_PHONE, "aanvulling")).outcome is Outcome.REPLY
    assert intake.ingest(whatsapp("SM2", PIET_PHONE, "aanvulling")).outcome is Outcome.DUPLICATE
    assert [m.external_id for m in inbound(ticket(db, f"{PREFIX[preset_name]}-10001"))] == ["SM1", "SM2"]


def _same_message_at_once(db: Database, preset_name: str, external_id: str, workers: int = 8) -> list[Outcome]:
    intake = pipeline(db, preset_name)  # one pipeline shared by the threads, as the app shares it
    msg = email(external_id, PIET, "De betaalpagina geeft een foutmelding")
    barrier = threading.Barrier(workers)

    def deliver(_: int) -> Outcome:
        barrier.wait(30)
        return intake.ingest(msg).outcome

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(deliver, range(workers)))


@BOTH
def test_same_message_concurrently_in_threads_is_stored_once(db: Database, preset_name: str) -> None:
    piet_account(db, SLA_PLAN[preset_name])
    # the first ticket ever (the reference counter does not exist yet) ...
    outcomes = _same_message_at_once(db, preset_name, "<race-1@jansen>")
    assert sorted(outcomes) == sorted([Outcome.NEW_TICKET] + [Outcome.DUPLICATE] * 7)
    # ... and a later one (the counter row exists and is contended)
    outcomes = _same_message_at_once(db, preset_name, "<race-2@jansen>")
    assert sorted(outcomes) == sorted([Outcome.NEW_TICKET] + [Outcome.DUPLICATE] * 7)

    counts = count_rows(db)
    assert counts["tickets"] == 2
    assert counts["outbox"] == 2
    assert counts["messages"] == 4  # two inbound, two acknowledgements
    prefix = PREFIX[preset_name]
    assert [m.external_id for m in inbound(ticket(db, f"{prefix}-10001"))] == ["<race-1@jansen>"]
    assert [m.external_id for m in inbound(ticket(db, f"{prefix}-10002"))] == ["<race-2@jansen>"]
    if db.is_sqlite:
        assert counts["numbers"] == 10002  # the deliveries that found the message stored took no number
    # (PostgreSQL: they took one along with their first reads; kept for the next new tickets, so none is lost)
    later = pipeline(db, preset_name).ingest(email("<later@jansen>", PIET, "Een nieuwe vraag", subject="Nieuw"))
    assert later.ticket_ref == f"{prefix}-10003"


@BOTH
def test_different_first_messages_at_once_all_open_tickets(db: Database, preset_name: str) -> None:
    """Regression: on PostgreSQL two first tickets at once both inserted the counter row; one message was lost."""
    piet_account(db, SLA_PLAN[preset_name])
    intake = pipeline(db, preset_name)
    barrier = threading.Barrier(4)

    def deliver(i: int) -> Outcome:
        barrier.wait(30)
        return intake.ingest(email(f"<first-{i}@jansen>", PIET, "vraag", subject=f"Vraag {i}")).outcome

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(deliver, range(4)))
    assert outcomes == [Outcome.NEW_TICKET] * 4
    prefix = PREFIX[preset_name]
    refs = [t.ref for t in db.run(lambda s: TicketRepository(s).queue())]
    assert sorted(refs) == [f"{prefix}-{n}" for n in range(10001, 10005)]
    assert count_rows(db)["outbox"] == 4


def test_same_message_from_two_processes_is_stored_once(db: Database) -> None:
    piet_account(db, "licentie")
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=ingest_in_child,
                         args=(db.url, "mailcampaigns", "<twice@jansen>", PIET, "vraag", barrier, results))
             for _ in range(2)]
    for proc in procs:
        proc.start()
    outcomes = sorted(results.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    results.close()
    results.join_thread()
    assert outcomes == ["duplicate", "new_ticket"]
    counts = count_rows(db)
    assert (counts["tickets"], counts["outbox"], counts["messages"]) == (1, 1, 2)
    assert [m.external_id for m in inbound(ticket(db, "MC-10001"))] == ["<twice@jansen>"]


# -- automatic messages -----------------------------------------------------------------------------


@BOTH
def test_automatic_message_is_stored_without_acknowledgement(db: Database, preset_name: str) -> None:
    piet_account(db, SLA_PLAN[preset_name])
    intake = pipeline(db, preset_name)
    result = intake.ingest(email("<ooo@jansen>", PIET, "Ik ben afwezig tot maandag", automatic=True))
    assert result.acknowledgement is None
    assert result.ticket_ref is not None
    record = ticket(db, result.ticket_ref)
    assert [(m.external_id, m.auto) for m in inbound(record)] == [("<ooo@jansen>", True)]
    assert outbound(record) == []

    stranger = intake.ingest(email("<bounce@x>", "mailer-daemon@elders.nl", "Undeliverable", automatic=True))
    assert stranger.outcome is Outcome.UNKNOWN_SENDER and stranger.acknowledgement is None
    agency = intake.ingest(email("<auto@agency>", AGENCY, "Out of office", automatic=True))
    assert agency.outcome is Outcome.THIRD_PARTY_REFUSED and agency.acknowledgement is None
    assert outbox_rows(db) == []
    assert message_texts_out(db) == []


# -- all or nothing ---------------------------------------------------------------------------------


class Boom(RuntimeError):
    pass


def _fail_enqueue(*args: Any, **kwargs: Any) -> int:
    raise Boom("outbox write failed")


def test_failure_while_queueing_stores_nothing(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing of a message whose transaction fails is stored, and its ticket number goes to the next new ticket:
    on SQLite the counter rolls back with the rest (no number taken); on PostgreSQL the number, taken from the
    sequence (which takes no lock that other workers would wait for), is given back when the transaction is rolled
    back: no gap, never a number twice."""
    piet_account(db, "licentie")
    intake = pipeline(db, "mailcampaigns")
    empty = count_rows(db)
    assert empty["tickets"] == 0 and empty["numbers"] == 0

    def stored(counts: dict[str, int]) -> dict[str, int]:
        return {table: n for table, n in counts.items() if table != "numbers"}

    with monkeypatch.context() as patch:
        patch.setattr(OutboxRepository, "enqueue", _fail_enqueue)
        with pytest.raises(Boom):
            intake.ingest(email("<fail@jansen>", PIET, "vraag over de export"))
    assert stored(count_rows(db)) == stored(empty) and count_rows(db)["numbers"] in (0, 10001)
    assert kept(db) == []
    assert db.run(lambda s: ReminderRepository(s).planned()) == []

    # the next delivery works
    ok = intake.ingest(email("<fail@jansen>", PIET, "vraag over de export"))
    assert (ok.outcome, ok.ticket_ref) == (Outcome.NEW_TICKET, "MC-10001")
    after_first = count_rows(db)
    assert after_first["numbers"] == 10001

    # the same with the counter row in place
    with monkeypatch.context() as patch:
        patch.setattr(OutboxRepository, "enqueue", _fail_enqueue)
        with pytest.raises(Boom):
            intake.ingest(email("<fail-2@jansen>", PIET, "andere vraag", subject="Andere vraag"))
    assert stored(count_rows(db)) == stored(after_first)
    ok = intake.ingest(email("<fail-2@jansen>", PIET, "andere vraag", subject="Andere vraag"))
    ref = "MC-10002"
    assert (ok.outcome, ok.ticket_ref) == (Outcome.NEW_TICKET, ref)
    assert len(reminders(db, ticket(db, ref).id)) == 3


def test_failure_while_joining_a_thread_stores_nothing(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A message from someone else on the thread also queues a reply: its failure undoes the message too."""
    piet_account(db, "licentie")
    intake = pipeline(db, "mailcampaigns")
    intake.ingest(email("<a@jansen>", PIET, "vraag"))
    before = count_rows(db)
    with monkeypatch.context() as patch:
        patch.setattr(OutboxRepository, "enqueue", _fail_enqueue)
        with pytest.raises(Boom):
            intake.ingest(email("<cc@jansen>", COLLEAGUE, "meekijken", thread_refs=("<a@jansen>",)))
    after = count_rows(db)
    # (on PostgreSQL the message's first reads took a ticket number along: kept for the next new ticket)
    assert {**after, "numbers": 0} == {**before, "numbers": 0} and after["numbers"] <= before["numbers"] + 1
    assert intake.ingest(email("<cc@jansen>", COLLEAGUE, "meekijken", thread_refs=("<a@jansen>",))).outcome \
        is Outcome.NOT_CONTACT_PERSON
    assert intake.ingest(email("<b@jansen>", PIET, "nog een vraag", subject="Iets anders")).ticket_ref == "MC-10002"
