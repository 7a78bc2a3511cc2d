"""Parsing raw e-mail (channels.email.parse): charsets, MIME, reply stripping, automatic mail, bounces, bad input.

Mails are literal byte strings, the way they arrive from IMAP or an MTA pipe,
or built with ``email.message.EmailMessage`` where that is clearer. The clock
is a fixed ``now`` on Thursday 26 November 2026, 12:00 UTC.
"""

from __future__ import annotations

import base64
import email
import random
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.policy import SMTP

import pytest

from channels.email.parse import Bounce, MailParseError, ParsedMail, parse_email, strip_reply, unflow
from channels.identity import IdentityKind
from channels.messages import ChannelName

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def parse(raw: bytes, **kwargs: datetime) -> ParsedMail:
    return parse_email(raw, now=lambda: NOW, **kwargs)


def mail(body: str = "Hallo,\n\nMijn kassa doet het niet.\n\nPiet\n", *, headers: str = "",
         subject: str = "Kassa stuk", sender: str = "Piet Jansen <Piet@Bakkerij-Jansen.nl>",
         content_type: str = "text/plain; charset=utf-8") -> bytes:
    """A simple mail with CRLF line ends; ``headers`` are extra header lines ("Name: value\\n")."""
    text = (
        f"From: {sender}\n"
        "To: Support <support@slabot.example>\n"
        f"Subject: {subject}\n"
        "Date: Thu, 26 Nov 2026 10:00:00 +0100\n"
        "Message-ID: <m1@bakkerij-jansen.nl>\n"
        "MIME-Version: 1.0\n"
        f"Content-Type: {content_type}\n"
        f"{headers}"
        "\n"
        f"{body}"
    )
    return text.replace("\n", "\r\n").encode("utf-8")


# -- the basics -----------------------------------------------------------------------------------------------


def test_a_plain_mail_becomes_an_inbound_message() -> None:
    parsed = parse(mail(headers="Cc: Jan <JAN@bakkerij-jansen.nl>, kantoor@bakkerij-jansen.nl\n"))
    msg = parsed.message
    assert msg.channel is ChannelName.EMAIL
    assert msg.sender.kind is IdentityKind.EMAIL and msg.sender.value == "piet@bakkerij-jansen.nl"
    assert msg.sender_name == "Piet Jansen"
    assert msg.external_id == parsed.message_id == "m1@bakkerij-jansen.nl" and parsed.has_message_id
    assert msg.received_at == NOW  # no Received header: the moment it is read (R23)
    assert parsed.date == datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)  # the Date header, only shown
    assert msg.subject == "Kassa stuk"
    assert msg.text == msg.full_text == "Hallo,\n\nMijn kassa doet het niet.\n\nPiet"
    assert msg.recipient == "support@slabot.example"
    assert parsed.to == ("support@slabot.example",)
    assert parsed.cc == ("jan@bakkerij-jansen.nl", "kantoor@bakkerij-jansen.nl")
    assert msg.raw == mail(headers="Cc: Jan <JAN@bakkerij-jansen.nl>, kantoor@bakkerij-jansen.nl\n")
    assert not msg.automatic and parsed.automatic_reason is None
    assert parsed.bounce is None and not parsed.list_mail
    assert parsed.problems == ()


def test_dutch_mail_in_iso_8859_1_quoted_printable_with_an_encoded_subject() -> None:
    raw = (
        b"From: =?iso-8859-1?q?Zo=EB_de_Vries?= <zoe@example.nl>\r\n"
        b"To: support@slabot.example\r\n"
        b"Subject: =?utf-8?q?Factuur_=E2=80=93_vraag?= =?iso-8859-1?q?_over_Zo=EB?=\r\n"
        b"Date: Thu, 26 Nov 2026 10:00:00 +0100\r\n"
        b"Message-ID: <q1@example.nl>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Beste,\r\n\r\nDe co=EBffici=EBnt op factuur 2026-0042 klopt niet; het bedrag is te hoo=\r\n"
        b"g.\r\n\r\nGroet, Zo=EB\r\n"
    )
    parsed = parse(raw)
    assert parsed.message.subject == "Factuur – vraag over Zoë"
    assert parsed.message.sender_name == "Zoë de Vries"
    assert parsed.message.text == (
        "Beste,\n\nDe coëfficiënt op factuur 2026-0042 klopt niet; het bedrag is te hoog.\n\nGroet, Zoë"
    )
    assert parsed.problems == ()


def test_windows_1252_body_declared_as_utf_8_is_still_read() -> None:
    body = "Beste,\r\n\r\nCafé De Zwaan betaalde € 12,50 – te veel.\r\n".encode("cp1252")
    raw = mail(body="") + body
    parsed = parse(raw)
    assert parsed.message.text == "Beste,\n\nCafé De Zwaan betaalde € 12,50 – te veel."
    assert any("charset 'utf-8' does not fit" in p for p in parsed.problems)


def test_unknown_charset_falls_back() -> None:
    parsed = parse(mail(body="Prijs: 10 euro, caf\u00e9", content_type="text/plain; charset=x-no-such-charset"))
    assert parsed.message.text == "Prijs: 10 euro, café"
    assert any("x-no-such-charset" in p for p in parsed.problems)


def test_base64_utf_8_body() -> None:
    encoded = base64.encodebytes("Goedemorgen,\n\nDe pinautomaat geeft foutcode Ë-12.\n".encode()).decode()
    parsed = parse(mail(body=encoded, headers="Content-Transfer-Encoding: base64\n"))
    assert parsed.message.text == "Goedemorgen,\n\nDe pinautomaat geeft foutcode Ë-12."


def test_multipart_alternative_prefers_the_plain_text() -> None:
    msg = EmailMessage()
    msg["From"] = "piet@bakkerij-jansen.nl"
    msg["Subject"] = "Vraag"
    msg["Message-ID"] = "<alt@bakkerij-jansen.nl>"
    msg.set_content("De platte tekst.\n")
    msg.add_alternative("<html><body><p>De <b>HTML</b> tekst.</p></body></html>\n", subtype="html")
    parsed = parse(msg.as_bytes())
    assert parsed.message.text == "De platte tekst."
    assert parsed.message.attachments == ()


def test_an_empty_plain_alternative_gives_way_to_the_html() -> None:
    msg = EmailMessage()
    msg["From"] = "piet@bakkerij-jansen.nl"
    msg.set_content("\n")
    msg.add_alternative("<p>Alleen hier staat iets.</p>", subtype="html")
    assert parse(msg.as_bytes()).message.text == "Alleen hier staat iets."


def test_html_only_mail_becomes_readable_text() -> None:
    html = (
        "<html><head><style>p { color: red }</style><title>x</title></head><body>"
        "<p>Beste support,</p><p>De printer zegt &quot;papier op&quot; &amp; stopt. Kost &euro;&nbsp;5?</p>"
        "<ul><li>Model 3</li><li>Kassa 2</li></ul></body></html>"
    )
    parsed = parse(mail(body=html, content_type="text/html; charset=utf-8"))
    text = parsed.message.text
    assert "<" not in text and "&amp;" not in text and "color" not in text
    assert 'De printer zegt "papier op" & stopt. Kost € 5?' in text
    assert "Beste support," in text and "Model 3" in text and "Kassa 2" in text


def test_inline_image_and_pdf_attachment_are_kept_with_their_bytes() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    pdf = b"%PDF-1.7\n" + bytes(range(255, -1, -1)) * 4
    raw = (
        b"From: piet@bakkerij-jansen.nl\r\nSubject: Bon\r\nMessage-ID: <att@x.nl>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
        b'--outer\r\nContent-Type: multipart/related; boundary="rel"\r\n\r\n'
        b"--rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b'<p>Zie de foto:</p><img src="cid:foto1">\r\n'
        b"--rel\r\nContent-Type: image/png\r\nContent-ID: <foto1>\r\nContent-Disposition: inline\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(png).replace(b"\n", b"\r\n") +
        b"--rel--\r\n"
        b"--outer\r\nContent-Type: application/pdf; name=\"=?utf-8?q?bon_=E2=82=AC.pdf?=\"\r\n"
        b"Content-Disposition: attachment;\r\n"
        b" filename*0*=utf-8''factuur%20co%C3%ABffici;\r\n filename*1=\"ent.pdf\"\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(pdf).replace(b"\n", b"\r\n") +
        b"--outer--\r\n"
    )
    parsed = parse(raw)
    assert parsed.message.text == "Zie de foto:"
    image, document = parsed.message.attachments
    assert (image.content_type, image.filename, image.data, image.size) == ("image/png", None, png, len(png))
    assert (document.content_type, document.filename) == ("application/pdf", "factuur coëfficient.pdf")
    assert document.data == pdf and document.size == len(pdf)


def test_rfc_2047_encoded_filename() -> None:
    msg = EmailMessage()
    msg["From"] = "piet@bakkerij-jansen.nl"
    msg.set_content("Bijlage.\n")
    msg.add_attachment(b"data", maintype="application", subtype="octet-stream", filename="x.bin")
    raw = msg.as_bytes().replace(b'filename="x.bin"', b'filename="=?utf-8?b?w6lsw6kuYmlu?="')
    (attachment,) = parse(raw).message.attachments
    assert attachment.filename == "élé.bin" and attachment.data == b"data"


@pytest.mark.parametrize("size", [6 * 1024 * 1024, 6 * 1024 * 1024 + 1, 6 * 1024 * 1024 + 2])
def test_a_huge_attachment_is_measured_in_place_and_stays_in_the_raw_mail(size: int) -> None:
    msg = EmailMessage()
    msg["From"] = "piet@bakkerij-jansen.nl"
    msg.set_content("Logbestand.\n")
    log = random.Random(7).randbytes(size)
    msg.add_attachment(log, maintype="application", subtype="octet-stream", filename="kassa.log")
    raw = msg.as_bytes()
    parsed = parse(raw)
    (attachment,) = parsed.message.attachments
    assert attachment.data is None and attachment.in_raw and attachment.size == len(log)
    assert parsed.message.raw is raw and parsed.message.text == "Logbestand."
    (part,) = [p for p in email.message_from_bytes(raw).walk() if p.get_filename() == "kassa.log"]
    assert part.get_payload(decode=True) == log  # the raw mail holds it whole


def test_a_large_base64_body_text_is_read_whole() -> None:
    msg = EmailMessage()
    msg["From"] = "piet@bakkerij-jansen.nl"
    text = "".join(f"Regel {i} van het logboek, met een é erin.\n" for i in range(20000))
    msg.set_content(text, cte="base64")
    parsed = parse(msg.as_bytes())
    assert parsed.message.full_text == text.strip() and parsed.message.attachments == ()


def test_a_forged_set_aside_marker_is_only_text() -> None:
    raw = (b"From: piet@bakkerij-jansen.nl\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Disposition: attachment; filename=x.bin\r\n\r\nSLABOT-SET-ASIDE-0000000000000000-0\r\n")
    (attachment,) = parse(raw).message.attachments
    assert attachment.data == b"SLABOT-SET-ASIDE-0000000000000000-0\r\n"


def test_an_attached_message_is_kept_as_message_rfc822() -> None:
    inner = EmailMessage()
    inner["From"] = "leverancier@example.com"
    inner["Subject"] = "Levering"
    inner["Message-ID"] = "<inner@example.com>"
    inner.set_content("De levering komt vrijdag.\n")
    outer = EmailMessage()
    outer["From"] = "piet@bakkerij-jansen.nl"
    outer["Subject"] = "Zie bijgevoegd"
    outer.set_content("Zie de mail van de leverancier.\n")
    outer.add_attachment(inner)
    parsed = parse(outer.as_bytes())
    assert parsed.message.text == "Zie de mail van de leverancier."
    (attached,) = parsed.message.attachments
    assert attached.content_type == "message/rfc822"
    assert attached.data is not None and b"Subject: Levering" in attached.data
    assert b"De levering komt vrijdag." in attached.data and attached.size == len(attached.data)
    assert parsed.bounce is None


# -- reply stripping ------------------------------------------------------------------------------------------


DUTCH_REPLY = (
    "Dank, het werkt weer.\n"
    "\n"
    "Op do 26 nov. 2026 om 10:00 schreef Support Slabot <\n"
    "support@slabot.example>:\n"
    "\n"
    "> Beste Piet,\n"
    ">\n"
    "> Probeer de kassa opnieuw op te starten.\n"
    "> -- \n"
    "> Support\n"
    "\n"
    "-- \n"
    "Piet Jansen\n"
    "Bakkerij Jansen | 030-1234567\n"
)


def test_dutch_reply_with_a_wrapped_attribution_quotes_and_a_signature() -> None:
    parsed = parse(mail(body=DUTCH_REPLY, subject="Re: Kassa stuk"))
    assert parsed.message.text == "Dank, het werkt weer."
    assert parsed.message.full_text == DUTCH_REPLY.strip()


GMAIL_FORWARD = (
    "Zie hieronder, kunnen jullie helpen?\n\n"
    "---------- Forwarded message ---------\n"
    "From: Leverancier <info@leverancier.example>\n"
    "Date: Thu, Nov 26, 2026 at 9:00 AM\n"
    "Subject: Storing\n"
    "To: <piet@bakkerij-jansen.nl>\n\n"
    "De storing duurt tot morgen.\n"
    "-- \nLeverancier BV"
)
DUTCH_FORWARD = "Begin doorgestuurd bericht:\n\nVan: X <x@y.nl>\nOnderwerp: Storing\nDatum: vandaag\n\nTekst"
OUTLOOK_FORWARD = (
    "Graag jullie reactie.\n\n"
    "Van: Leverancier <info@leverancier.example>\nVerzonden: donderdag 26 november 2026 09:00\n"
    "Aan: Piet\nOnderwerp: Storing\n\nDe storing duurt tot morgen."
)


@pytest.mark.parametrize(("body", "expected"), [
    pytest.param("Thanks, that fixed it.\n\n"
                 "On Thu, Nov 26, 2026 at 10:00 AM Support <support@slabot.example> wrote:\n"
                 "> Please restart the till.\n> Regards\n",
                 "Thanks, that fixed it.", id="english on-wrote"),
    pytest.param("Op 26-11-2026 om 10:00 schreef Support:\n> Welke versie gebruikt u?\nVersie 4.2.\n"
                 "> En welk model?\nModel 3.\n",
                 "Versie 4.2.\nModel 3.", id="bottom-posted and interleaved answers kept"),
    pytest.param("Prima.\n\nOp 26 nov. 2026, om 10:00 heeft Support <support@slabot.example> het volgende "
                 "geschreven:\n\n> Vraag\n",
                 "Prima.", id="apple mail in dutch"),
    pytest.param("Top.\n\nOn Thu, Nov 26, 2026 at 10:00 AM Support <s@slabot.example> wrote:\n\n  HTML quote\n",
                 "Top.", id="attribution without quote marks cuts the rest"),
    pytest.param("Hierbij de gegevens.\n\nMet vriendelijke groet,\nPiet\n\n________________________________\n"
                 "Van: Support <support@slabot.example>\nVerzonden: donderdag 26 november 2026 10:00\n"
                 "Aan: Piet Jansen <piet@bakkerij-jansen.nl>\nOnderwerp: [T-1042] Kassa stuk\n\nWelke versie?\n",
                 "Hierbij de gegevens.\n\nMet vriendelijke groet,\nPiet", id="outlook header block in dutch"),
    pytest.param("See below.\n\nFrom: Support\nSent: Thursday, November 26, 2026 10:00 AM\nTo: Piet\n"
                 "Subject: Till\n\nold\n",
                 "See below.", id="outlook header block in english"),
    pytest.param("Klopt.\n\n-----Oorspronkelijk bericht-----\nVan: Support\nOnderwerp: x\n\noud\n",
                 "Klopt.", id="oorspronkelijk bericht"),
    pytest.param("Yes.\n-----Original Message-----\nold\n", "Yes.", id="original message"),
    pytest.param("Van: maandag tot vrijdag open.\nGraag een monteur.\n",
                 "Van: maandag tot vrijdag open.\nGraag een monteur.", id="a from line alone is text"),
    pytest.param("Prima, dank!\n\nVerzonden vanaf mijn iPhone\n", "Prima, dank!", id="dutch iphone footer"),
    pytest.param("Ok.\n\nSent from my Galaxy\n\nOn 26 Nov 2026, at 10:00, S <s@x.nl> wrote:\n> q\n", "Ok.",
                 id="english mobile footer"),
    pytest.param("Ok.\nVerzonden met Outlook voor iOS\n", "Ok.", id="outlook mobile footer"),
    pytest.param(GMAIL_FORWARD, GMAIL_FORWARD, id="gmail forward kept"),
    pytest.param(f"Ter info.\n-- \nPiet\n\n{DUTCH_FORWARD}\n", f"Ter info.\n\n{DUTCH_FORWARD}",
                 id="forwarder's signature goes, the forward stays"),
    pytest.param(OUTLOOK_FORWARD, "Graag jullie reactie.", id="outlook block in a reply"),
])
def test_strip_reply(body: str, expected: str) -> None:
    assert strip_reply(body) == expected


# -- format=flowed (RFC 3676) ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("flowed", "delsp", "expected"), [
    pytest.param("Goedemorgen, \nsinds vanochtend doet de verzendknop \nniets meer.\n\nPiet\n", False,
                 "Goedemorgen, sinds vanochtend doet de verzendknop niets meer.\n\nPiet\n", id="dutch"),
    pytest.param("When I import my contact list the import \nstops at 5,000 rows.\n", False,
                 "When I import my contact list the import stops at 5,000 rows.\n", id="english"),
    pytest.param("Ik heb een vraag over de fact \nuur van november.\n", True,
                 "Ik heb een vraag over de factuur van november.\n", id="delsp=yes: the space goes"),
    pytest.param("Could you have a  \nlook?\n", True, "Could you have a look?\n",
                 id="delsp=yes: a break at a space"),
    pytest.param("Ik heb een vraag over de fact \nuur.\n", False, "Ik heb een vraag over de fact uur.\n",
                 id="delsp=no: the space stays"),
    pytest.param("> Welke versie \n> gebruikt u?\n>> En welk \n>> model?\nVersie 4.2.\n", False,
                 "> Welke versie gebruikt u?\n>> En welk model?\nVersie 4.2.\n", id="quotes keep their depth"),
    pytest.param("> Graag een \nmonteur.\n", False, "> Graag een \nmonteur.\n",
                 id="a change of depth ends the paragraph"),
    pytest.param("  twee spaties\n From Amsterdam\n >geen citaat\n", False,
                 " twee spaties\nFrom Amsterdam\n>geen citaat\n", id="space-stuffing undone"),
    pytest.param("Met vriendelijke groet, \n-- \nPiet \nJansen\n", False,
                 "Met vriendelijke groet, \n-- \nPiet Jansen\n", id="the signature separator stays"),
    pytest.param("Regel een\r\nregel twee \r\ndrie\r\n", False, "Regel een\nregel twee drie\n", id="CRLF"),
])
def test_unflow(flowed: str, delsp: bool, expected: str) -> None:
    assert unflow(flowed, delsp=delsp) == expected


THUNDERBIRD_FLOWED = (
    "Dank u, de verzendknop werkt weer. Alleen de afbeeldingen in mijn \n"
    "template verspringen nog in Outlook.\n\n"
    "Op 26-11-2026 om 10:00 schreef Support Desk van MailCampaigns \n"
    "(support@slabot.example):\n"
    "> Wilt u de cache van uw browser legen en het nog eens \n"
    "> proberen?\n"
    ">\n"
    ">> De verzendknop \n"
    ">> doet niets.\n\n"
    "-- \nPiet Jansen\n"
)


@pytest.mark.parametrize(("delsp", "body", "expected"), [
    pytest.param("", THUNDERBIRD_FLOWED, "Dank u, de verzendknop werkt weer. Alleen de afbeeldingen in mijn "
                 "template verspringen nog in Outlook.", id="dutch, thunderbird"),
    pytest.param("; delsp=yes", "Thanks, the send button works again. Only the images in my tem \n"
                 "plate still move about in Outlook.\n\n"
                 "On Thu, Nov 26, 2026 at 10:00 AM Support Desk of MailCampaigns  \n"
                 "<support@slabot.example> wrote:\n> Could you empty the cache of your browser and  \n"
                 "> try again?\n",
                 "Thanks, the send button works again. Only the images in my template still move about in Outlook.",
                 id="english, delsp=yes"),
])
def test_a_flowed_body_is_unwrapped_before_quotes_and_signature_go(delsp: str, body: str, expected: str) -> None:
    parsed = parse(mail(body=body, content_type=f"text/plain; charset=utf-8; format=flowed{delsp}"))
    assert parsed.message.text == expected
    assert "\n> " in parsed.message.full_text
    quoted = [line for line in parsed.message.full_text.split("\n") if line.startswith(">")]
    assert quoted[0] in ("> Wilt u de cache van uw browser legen en het nog eens proberen?",
                         "> Could you empty the cache of your browser and try again?")


def test_a_body_that_is_not_flowed_keeps_its_line_breaks() -> None:
    body = "Regel een \nregel twee\n"
    assert parse(mail(body=body)).message.full_text == "Regel een \nregel twee"
    assert parse(mail(body=body, content_type="text/plain; charset=utf-8; format=fixed")).message.full_text == (
        "Regel een \nregel twee")


def test_a_flowed_plain_alternative_is_unwrapped() -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "piet@bakkerij-jansen.nl", "support@slabot.example", "Vraag"
    msg.set_content("Een lange \nregel.\n", params={"format": "flowed"})
    msg.add_alternative("<p>Een lange regel.</p>", subtype="html")
    assert parse(bytes(msg)).message.text == "Een lange regel."


def test_a_mail_that_is_only_a_quote_keeps_its_full_text() -> None:
    body = "On Thu, Nov 26, 2026 at 10:00 AM Support <s@slabot.example> wrote:\n> Please restart the till.\n"
    parsed = parse(mail(body=body))
    assert parsed.message.text == parsed.message.full_text == body.strip()


@pytest.mark.parametrize("subject", ["FW: Storing", "Fwd: Storing", "Doorst: Storing"])
def test_a_forward_is_recognised_by_its_subject(subject: str) -> None:
    assert parse(mail(body=GMAIL_FORWARD, subject=subject)).message.text == GMAIL_FORWARD
    assert parse(mail(body=OUTLOOK_FORWARD, subject=subject)).message.text == OUTLOOK_FORWARD



# -- automatic mail -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("headers", "named"), [
    ("Auto-Submitted: auto-replied\n", "Auto-Submitted"),
    ("Auto-Submitted: auto-generated; owner-email=x@y.nl\n", "Auto-Submitted"),
    ("Precedence: bulk\n", "Precedence: bulk"),
    ("Precedence: list\n", "Precedence: list"),
    ("Precedence: junk\n", "Precedence: junk"),
    ("Precedence: auto_reply\n", "Precedence: auto_reply"),
    ("X-Autoreply: yes\n", "X-Autoreply"),
    ("X-Autorespond: vacation\n", "X-Autorespond"),
    ("X-Autogenerated: Reply\n", "X-Autogenerated"),
    ("X-Auto-Response-Suppress: All\n", "X-Auto-Response-Suppress"),
    ("X-Auto-Response-Suppress: DR, RN, NRN\n", "X-Auto-Response-Suppress"),
    ("X-Auto-Response-Suppress: OOF, AutoReply\n", "X-Auto-Response-Suppress"),
    ("Return-Path: <>\n", "Return-Path"),
])
def test_automatic_mail_by_header(headers: str, named: str) -> None:
    parsed = parse(mail(headers=headers))
    assert parsed.automatic_reason is not None and named in parsed.automatic_reason
    assert parsed.message.automatic


@pytest.mark.parametrize("header", ["List-Id: <nieuws.lists.example>\n",
                                    "List-Unsubscribe: <mailto:leave@lists.example>\n"])
def test_list_mail_is_automatic_and_marked(header: str) -> None:
    parsed = parse(mail(headers=header))
    assert parsed.list_mail and parsed.message.automatic
    assert parsed.automatic_reason is not None and header.split(":")[0] in parsed.automatic_reason


@pytest.mark.parametrize("sender", ["MAILER-DAEMON@mx.example.nl", "Mail Delivery System <mailer-daemon@mx.example.nl>",
                                    "PostMaster@example.nl"])
def test_mail_from_a_mail_system_is_automatic(sender: str) -> None:
    parsed = parse(mail(sender=sender, subject="Hallo"))
    assert parsed.automatic_reason is not None and "a mail system" in parsed.automatic_reason


@pytest.mark.parametrize("subject", ["Afwezig", "Afwezig: Kassa stuk", "Out of Office: Kassa stuk",
                                     "Automatisch antwoord: Re: Kassa stuk", "Automatic reply: Till",
                                     "out of office"])
def test_out_of_office_subjects_are_automatic(subject: str) -> None:
    parsed = parse(mail(subject=subject))
    assert parsed.automatic_reason is not None and "out-of-office" in parsed.automatic_reason


@pytest.mark.parametrize(("headers", "subject"), [
    ("Auto-Submitted: no\n", "Kassa stuk"),
    ("Auto-Submitted: No (written by a person)\n", "Kassa stuk"),
    ("Precedence: first-class\n", "Kassa stuk"),
    ("X-Auto-Response-Suppress: None\n", "Kassa stuk"),
    ("Return-Path: <piet@bakkerij-jansen.nl>\n", "Kassa stuk"),
    ("", "Afwezigheid van de bezorger, graag terugbellen"),
    ("", "Re: Out of office hours support?"),
])
def test_a_persons_mail_is_not_automatic(headers: str, subject: str) -> None:
    parsed = parse(mail(headers=headers, subject=subject))
    assert parsed.automatic_reason is None and not parsed.message.automatic


# -- bounces --------------------------------------------------------------------------------------------------


def dsn(*, status: str = "5.1.1", action: str = "failed", returned: str = "message") -> bytes:
    original = (
        "From: Support <support@slabot.example>\r\nTo: piet@bakkerij-jansen.nl\r\n"
        "Subject: [T-1042] Ontvangen\r\nMessage-ID: <ack-1042@slabot.example>\r\n\r\nWe hebben uw vraag ontvangen.\r\n"
    )
    returned_part = (
        f"Content-Type: message/rfc822\r\n\r\n{original}" if returned == "message"
        else f"Content-Type: text/rfc822-headers\r\n\r\n{original.split(chr(13) + chr(10) * 2)[0]}\r\n"
    )
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.bakkerij-jansen.nl>\r\n"
        "To: support@slabot.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Date: Thu, 26 Nov 2026 10:01:00 +0100\r\n"
        "Message-ID: <dsn-77@mx.bakkerij-jansen.nl>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="R"\r\n\r\n'
        "--R\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        "This is the mail system at host mx.bakkerij-jansen.nl.\r\nYour message could not be delivered.\r\n"
        "--R\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.bakkerij-jansen.nl\r\nArrival-Date: Thu, 26 Nov 2026 10:00:58 +0100\r\n\r\n"
        "Final-Recipient: rfc822; Piet@Bakkerij-Jansen.nl\r\n"
        f"Action: {action}\r\nStatus: {status}\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <piet@bakkerij-jansen.nl>: Recipient address rejected\r\n\r\n"
        f"--R\r\n{returned_part}"
        "--R--\r\n"
    ).encode()


def test_a_delivery_status_report_is_a_permanent_bounce() -> None:
    parsed = parse(dsn())
    assert parsed.bounce == Bounce(original_message_id="ack-1042@slabot.example",
                                   recipients=("piet@bakkerij-jansen.nl",), status="5.1.1", permanent=True)
    assert parsed.message.automatic and parsed.automatic_reason is not None
    assert parsed.message.text == (
        "This is the mail system at host mx.bakkerij-jansen.nl.\nYour message could not be delivered."
    )
    assert [a.content_type for a in parsed.message.attachments] == ["message/delivery-status", "message/rfc822"]


def test_a_report_names_the_original_recipient_when_it_has_one() -> None:
    raw = dsn().replace(b"Final-Recipient: rfc822; Piet@Bakkerij-Jansen.nl\r\n",
                        b"Original-Recipient: rfc822;Info@Bakkerij-Jansen.nl\r\n"
                        b"Final-Recipient: rfc822; piet@bakkerij-jansen.nl\r\n")
    bounce = parse(raw).bounce
    assert bounce is not None and bounce.recipients == ("info@bakkerij-jansen.nl",)


def test_a_delivery_status_report_with_returned_headers_only() -> None:
    bounce = parse(dsn(returned="headers")).bounce
    assert bounce is not None and bounce.original_message_id == "ack-1042@slabot.example"


def test_a_delayed_delivery_is_a_temporary_bounce() -> None:
    bounce = parse(dsn(status="4.4.1", action="delayed")).bounce
    assert bounce is not None and bounce.status == "4.4.1" and not bounce.permanent


def test_a_successful_delivery_report_is_no_bounce() -> None:
    parsed = parse(dsn(status="2.0.0", action="delivered"))
    assert parsed.bounce is None and parsed.message.automatic


def test_a_postfix_style_plain_text_bounce() -> None:
    raw = (
        b"Return-Path: <>\r\n"
        b"From: MAILER-DAEMON@mx.example.nl (Mail Delivery System)\r\n"
        b"To: support@slabot.example\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b"Message-ID: <b-1@mx.example.nl>\r\n\r\n"
        b"This is the mail system at host mx.example.nl.\r\n\r\n"
        b"I'm sorry to have to inform you that your message could not\r\n"
        b"be delivered to one or more recipients.\r\n\r\n"
        b"<Jan@Example.nl>: host mail.example.nl[192.0.2.1] said: 550 5.1.1\r\n"
        b"    <jan@example.nl>: Recipient address rejected: User unknown (in reply to RCPT TO command)\r\n\r\n"
        b"------ This is a copy of the message, including all the headers. ------\r\n\r\n"
        b"Return-Path: <support@slabot.example>\r\n"
        b"From: support@slabot.example\r\n"
        b"To: jan@example.nl\r\n"
        b"Message-ID: <ack-7@slabot.example>\r\n"
        b"Subject: [T-7] Ontvangen\r\n\r\nWe hebben uw vraag ontvangen.\r\n"
    )
    parsed = parse(raw)
    assert parsed.bounce == Bounce(original_message_id="ack-7@slabot.example", recipients=("jan@example.nl",),
                                   status="5.1.1", permanent=True)
    assert parsed.message.automatic


def test_a_dutch_exchange_bounce_without_a_returned_message() -> None:
    raw = mail(sender="postmaster@example.nl", subject="Onbestelbaar: Kassa stuk",
               body="Uw bericht kan niet worden bezorgd.\n\n  jan@example.nl\n\nFoutcode 5.4.1\n")
    bounce = parse(raw).bounce
    assert bounce == Bounce(original_message_id=None, recipients=("jan@example.nl",), status="5.4.1", permanent=True)


def test_a_person_mentioning_undelivered_mail_is_no_bounce() -> None:
    assert parse(mail(subject="Undelivered mail?")).bounce is None


# -- ids, threads, dates --------------------------------------------------------------------------------------


def test_a_mail_without_message_id_gets_a_stable_hash_id() -> None:
    raw = mail().replace(b"Message-ID: <m1@bakkerij-jansen.nl>\r\n", b"")
    first, again = parse(raw), parse(raw)
    other = parse(raw.replace(b"kassa", b"printer"))
    assert not first.has_message_id
    assert first.message_id == again.message_id == first.message.external_id
    assert first.message_id.startswith("sha256-") and first.message_id.endswith("@no-message-id.invalid")
    assert other.message_id != first.message_id


def test_in_reply_to_and_references_become_thread_refs() -> None:
    headers = (
        "In-Reply-To: <ack-3@slabot.example>\n"
        "References: <q-1@x.nl>\n <ack-1@slabot.example> <q-1@x.nl>\n <ack-3@slabot.example>\n"
    )
    refs = parse(mail(headers=headers)).message.thread_refs
    assert refs == ("ack-3@slabot.example", "q-1@x.nl", "ack-1@slabot.example")


def test_thread_refs_are_capped_keeping_the_newest() -> None:
    references = " ".join(f"<r{i}@x.nl>" for i in range(80))
    refs = parse(mail(headers=f"In-Reply-To: <parent@x.nl>\nReferences: {references}\n")).message.thread_refs
    assert len(refs) == 50 and refs[0] == "parent@x.nl" and refs[1] == "r31@x.nl" and refs[-1] == "r79@x.nl"


def test_received_at_given_wins() -> None:
    when = datetime(2026, 11, 26, 11, 30, tzinfo=timezone.utc)
    assert parse(mail(), received_at=when).message.received_at == when


@pytest.mark.parametrize("date", ["Thu, 26 Nov 2026 10:00:00 -0000", "niet een datum",
                                  "Sat, 26 Dec 2026 10:00:00 +0100"])
def test_an_unbelievable_date_means_now(date: str) -> None:
    raw = mail().replace(b"Thu, 26 Nov 2026 10:00:00 +0100", date.encode())
    parsed = parse(raw)
    assert parsed.message.received_at == NOW and any("Date" in p for p in parsed.problems)


def test_a_date_ahead_is_shown_but_never_the_clock() -> None:
    raw = mail().replace(b"Thu, 26 Nov 2026 10:00:00 +0100", b"Fri, 27 Nov 2026 08:00:00 +0100")
    parsed = parse(raw)
    assert parsed.message.received_at == NOW
    assert parsed.date == NOW + timedelta(hours=19)


def test_the_topmost_received_header_is_when_it_was_received() -> None:
    raw = mail(headers="").replace(b"From: ", b"Received: from mx.x.nl by mx.slabot.example; "
                                               b"Thu, 26 Nov 2026 12:40:00 +0100 (CET)\r\n"
                                               b"Received: from pc by mx.x.nl; Thu, 26 Nov 2026 09:00:00 +0100\r\n"
                                               b"From: ", 1)
    parsed = parse(raw)
    assert parsed.message.received_at == datetime(2026, 11, 26, 11, 40, tzinfo=timezone.utc)
    assert parsed.problems == ()


@pytest.mark.parametrize("stamp", ["Thu, 26 Nov 2026 13:20:00 +0000", "geen datum", ""])
def test_a_received_header_ahead_or_unreadable_means_now(stamp: str) -> None:
    raw = b"Received: by mx.slabot.example; " + stamp.encode() + b"\r\n" + mail()
    parsed = parse(raw)
    assert parsed.message.received_at == NOW and any("Received" in p for p in parsed.problems)


def test_a_received_header_a_few_minutes_ahead_counts_as_now() -> None:
    raw = b"Received: by mx.slabot.example; Thu, 26 Nov 2026 12:05:00 +0000\r\n" + mail()
    assert parse(raw).message.received_at == NOW


def test_a_given_received_at_ahead_of_now_is_not_believed() -> None:
    assert parse(mail(), received_at=NOW + timedelta(hours=2)).message.received_at == NOW
    assert parse(mail(), received_at=NOW + timedelta(minutes=5)).message.received_at == NOW


# -- the sender -----------------------------------------------------------------------------------------------


def test_sender_falls_back_to_sender_then_return_path() -> None:
    via_sender = parse(mail(sender="undisclosed", headers="Sender: Kantoor <KANTOOR@bakkerij-jansen.nl>\n"))
    assert via_sender.message.sender.value == "kantoor@bakkerij-jansen.nl"
    assert via_sender.message.sender_name == "Kantoor"
    assert any("taken from Sender" in p for p in via_sender.problems)
    raw = mail().replace(b"From: Piet Jansen <Piet@Bakkerij-Jansen.nl>\r\n",
                         b"Return-Path: <piet@bakkerij-jansen.nl>\r\n")
    via_return_path = parse(raw)
    assert via_return_path.message.sender.value == "piet@bakkerij-jansen.nl"
    assert any("taken from Return-Path" in p for p in via_return_path.problems)


@pytest.mark.parametrize("raw", [
    b"",
    b"  \r\n\r\n",
    b"\x00\x01 not a mail at all",
    b"Subject: geen afzender\r\nTo: support@slabot.example\r\n\r\nHallo\r\n",
    b"From: niemand\r\nReturn-Path: <>\r\nSubject: x\r\n\r\nHallo\r\n",
])
def test_what_is_not_a_mail_raises_mail_parse_error(raw: bytes) -> None:
    with pytest.raises(MailParseError):
        parse(raw)


def test_text_instead_of_bytes_raises_mail_parse_error() -> None:
    with pytest.raises(MailParseError):
        parse_email("From: piet@bakkerij-jansen.nl\n\nhoi")  # type: ignore[arg-type]


# -- malformed mail parses anyway -----------------------------------------------------------------------------


def test_truncated_multipart_without_closing_boundary() -> None:
    raw = (
        b"From: piet@bakkerij-jansen.nl\r\nSubject: Afgebroken\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="X"\r\n\r\n'
        b"--X\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHet begin van de tekst.\r\n"
        b"--X\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLj"
    )
    parsed = parse(raw)
    assert parsed.message.text == "Het begin van de tekst."
    assert [a.content_type for a in parsed.message.attachments] == ["application/pdf"]
    assert any("CloseBoundaryNotFoundDefect" in p for p in parsed.problems)


def test_multipart_without_boundary_is_read_as_text() -> None:
    raw = mail(body="Gewoon tekst.\n", content_type="multipart/mixed")
    parsed = parse(raw)
    assert parsed.message.text == "Gewoon tekst." and parsed.problems


def test_invalid_base64_body() -> None:
    parsed = parse(mail(body="SGFsbG8gd2VyZWxk!!!*&^%$#==QQ=\n", headers="Content-Transfer-Encoding: base64\n"))
    assert parsed.message.text.startswith("Hallo wereld")
    assert any("Base64" in p for p in parsed.problems)


def test_raw_8_bit_bytes_in_headers() -> None:
    raw = (
        b"From: Ren\xe9 M\xfcller <rene@example.nl>\r\n"
        b"To: J\xc3\xb6rg <jorg@example.nl>\r\n"
        b"Subject: Caf\xc3\xa9 \xe2\x80\x93 kassa\r\n\r\nHoi\r\n"
    )
    parsed = parse(raw)
    assert parsed.message.sender_name == "René Müller"
    assert parsed.message.subject == "Café – kassa"
    assert parsed.to == ("jorg@example.nl",)


def test_a_content_type_the_header_registry_cannot_read() -> None:
    parsed = parse(b"From: piet@bakkerij-jansen.nl\r\nContent-Type: ;\xe9*\r\n\r\nHallo\r\n")
    assert parsed.message.text == "Hallo"
    assert any("read leniently" in p for p in parsed.problems)


def test_parts_nested_too_deep_are_not_read() -> None:
    nesting = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(40))
    parsed = parse(b"From: piet@bakkerij-jansen.nl\r\n" + nesting + b"Content-Type: text/plain\r\n\r\nHallo\r\n")
    assert parsed.message.text == "" and any("nested deeper" in p for p in parsed.problems)


def test_a_wrong_charset_in_an_encoded_word() -> None:
    parsed = parse(mail(subject="=?utf-8?q?Caf=E9_open?=", sender="=?x-unknown?q?Ren=E9?= <rene@example.nl>"))
    assert parsed.message.subject == "Café open"
    assert parsed.message.sender_name == "René"


def test_mutated_mails_parse_or_raise_mail_parse_error_only() -> None:
    rng = random.Random(20261126)
    seeds = [mail(body=DUTCH_REPLY), dsn(), mail(body="<p>Hoi &amp; dag</p>", content_type="text/html")]
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "Zoë <zoe@example.nl>"
    msg["Subject"] = "Factuur – vraag"
    msg.set_content("Tekst met ë.\n")
    msg.add_alternative("<p>Tekst met &euro;</p>", subtype="html")
    msg.add_attachment(b"%PDF-1.7", maintype="application", subtype="pdf", filename="bon €.pdf")
    seeds.append(msg.as_bytes())
    for _ in range(200):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 12)):
            position = rng.randrange(len(data))
            action = rng.randrange(4)
            if action == 0:
                data[position] = rng.randrange(256)
            elif action == 1:
                del data[position : position + rng.randint(1, 40)]
            elif action == 2:
                data[position:position] = rng.choice([b"\r\n", b"--", b"=?", b"?=", b";", b":", b"<", b">",
                                                      b"\x00", b"\xff\xfe", b"=\r\n", b"\r\n\r\n", b'"'])
            else:
                data[position:position] = data[rng.randrange(len(data)):][: rng.randint(1, 80)]
        try:
            parsed = parse(bytes(data))
        except MailParseError:
            continue
        assert isinstance(parsed, ParsedMail)
        assert parsed.message.raw == bytes(data)
