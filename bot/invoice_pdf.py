"""An invoice as a PDF (R21: "Facturen worden verzonden per e-mail"), in the account's language.

One A4 page per invoice for the usual case (reportlab flows longer ones onto more pages): who sends it, who
it is for, the number, date and due date, the lines with hours, rate and amount, the subtotal, VAT apart and
the total; the hours taken from the month's fixed hours or the punch card as usage (already paid, not
invoiced again) and the punch-card balance where the account has a card. The document is rendered from an
:class:`InvoiceDocument` alone (no database, no clock): the same document gives the same bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from xml.sax.saxutils import escape

from babel.dates import format_date
from babel.numbers import format_decimal
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from bot.i18n import Language
from bot.texts import money_text


@dataclass(frozen=True)
class DocumentLine:
    description: str
    hours: Decimal | None
    rate: Decimal | None
    amount: Decimal
    day: date


@dataclass(frozen=True)
class InvoiceDocument:
    """Everything an invoice shows; see the module docstring."""

    number: str
    kind: str  # monthly | separate | punch_card
    issued_on: date
    due_on: date
    issuer: str
    account: str
    recipient: str | None
    language: Language
    currency: str
    lines: tuple[DocumentLine, ...]
    subtotal: Decimal
    vat_percent: Decimal
    vat: Decimal
    total: Decimal
    usage: tuple[DocumentLine, ...] = ()
    month: str | None = None  # YYYY-MM of a monthly invoice
    ticket_ref: str | None = None  # the job of a separate invoice
    card_balance: Decimal | None = None
    card_block_hours: Decimal | None = None
    issuer_lines: tuple[str, ...] = ()


WORDS: dict[Language, dict[str, str]] = {
    "nl": {
        "invoice": "Factuur", "number": "Factuurnummer", "date": "Factuurdatum", "due": "Te betalen vóór",
        "to": "Aan", "monthly": "Maandfactuur {month}", "separate": "Losse factuur voor {ref}",
        "punch_card": "Strippenkaart", "description": "Omschrijving", "hours": "Uren", "rate": "Tarief",
        "amount": "Bedrag", "subtotal": "Subtotaal", "vat": "Btw {percent}%", "total": "Totaal",
        "usage": "Uren uit de vaste maanduren of de strippenkaart (al betaald, niet opnieuw gefactureerd)",
        "card": "Strippenkaart: nog {left} van {size} uur over.",
        "term": "Betalingstermijn: {days} dagen vanaf de factuurdatum. Vermeld bij betaling het factuurnummer.",
    },
    "en": {
        "invoice": "Invoice", "number": "Invoice number", "date": "Invoice date", "due": "Due date",
        "to": "To", "monthly": "Monthly invoice {month}", "separate": "Separate invoice for {ref}",
        "punch_card": "Punch card", "description": "Description", "hours": "Hours", "rate": "Rate",
        "amount": "Amount", "subtotal": "Subtotal", "vat": "VAT {percent}%", "total": "Total",
        "usage": "Hours from the fixed monthly hours or the punch card (paid already, not invoiced again)",
        "card": "Punch card: {left} of {size} hours left.",
        "term": "Payment term: {days} days from the invoice date. Please quote the invoice number.",
    },
}


def _hours(value: Decimal | None, language: Language) -> str:
    if value is None:
        return ""
    return format_decimal(value, format="#,##0.##", locale="nl_NL" if language == "nl" else "en_GB")


def _day(value: date, language: Language) -> str:
    return format_date(value, "d MMMM y", locale=language)


def title_of(doc: InvoiceDocument) -> str:
    """What the invoice is for, in its language (the PDF's heading and the mail's subject)."""
    w = WORDS[doc.language]
    if doc.kind == "monthly" and doc.month:
        month = format_date(date.fromisoformat(doc.month + "-01"), "MMMM y", locale=doc.language)
        return w["monthly"].format(month=month)
    if doc.kind == "separate":
        return w["separate"].format(ref=doc.ticket_ref or "-")
    return w["punch_card"]


def render_invoice(doc: InvoiceDocument) -> bytes:
    """The invoice as PDF bytes (deterministic: no creation time, no random ids)."""
    w, lang, cur = WORDS[doc.language], doc.language, doc.currency
    styles = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontName="Helvetica", fontSize=9.5, leading=12)
    small = ParagraphStyle("small", parent=body, fontSize=8.5, leading=11, textColor=colors.HexColor("#444444"))
    strong = ParagraphStyle("strong", parent=body, fontName="Helvetica-Bold")
    head = ParagraphStyle("head", parent=styles["Title"], fontName="Helvetica-Bold", fontSize=18, alignment=0)

    def p(text: str, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(escape(text), style)

    story: list[object] = [p(f"{w['invoice']} {doc.number}", head), p(title_of(doc)), Spacer(1, 5 * mm)]
    sender = "<br/>".join(escape(x) for x in (doc.issuer, *doc.issuer_lines))
    receiver = "<br/>".join(escape(x) for x in (doc.account, doc.recipient or "") if x)
    facts = [[p(w["number"]), p(doc.number)], [p(w["date"]), p(_day(doc.issued_on, lang))],
             [p(w["due"]), p(_day(doc.due_on, lang))]]
    top = Table([[Paragraph(sender, body), Paragraph(f"<b>{escape(w['to'])}</b><br/>{receiver}", body),
                  Table(facts, colWidths=(31 * mm, 35 * mm))]], colWidths=(48 * mm, 62 * mm, 66 * mm))
    top.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story += [top, Spacer(1, 8 * mm)]

    rows: list[list[object]] = [[p(w["description"]), p(w["hours"]), p(w["rate"]), p(w["amount"])]]
    for line in doc.lines:
        rows.append([p(line.description), p(_hours(line.hours, lang)),
                     p(money_text(line.rate, lang, cur) if line.rate is not None else ""),
                     p(money_text(line.amount, lang, cur))])
    totals = [(w["subtotal"], doc.subtotal), (w["vat"].format(percent=_hours(doc.vat_percent, lang)), doc.vat),
              (w["total"], doc.total)]
    first_total = len(rows)
    for n, (label, amount) in enumerate(totals):
        style = strong if n == len(totals) - 1 else body
        rows.append(["", "", p(label, style), p(money_text(amount, lang, cur), style)])
    table = Table(rows, colWidths=(100 * mm, 18 * mm, 28 * mm, 30 * mm), repeatRows=1)
    table.setStyle(TableStyle([
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black),
        ("LINEABOVE", (2, first_total), (-1, first_total), 0.5, colors.black),
        ("LINEABOVE", (2, -1), (-1, -1), 0.8, colors.black),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]))
    story += [table, Spacer(1, 6 * mm)]

    if doc.usage:
        story.append(p(w["usage"], small))
        usage = [[p(x.description, small), p(_hours(x.hours, lang), small)] for x in doc.usage]
        story += [Table(usage, colWidths=(118 * mm, 18 * mm), hAlign="LEFT"), Spacer(1, 4 * mm)]
    if doc.card_balance is not None and doc.card_block_hours is not None:
        story.append(p(w["card"].format(left=_hours(doc.card_balance, lang), size=_hours(doc.card_block_hours, lang))))
    days = (doc.due_on - doc.issued_on).days
    story += [Spacer(1, 4 * mm), p(w["term"].format(days=days), small)]

    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=A4, title=f"{w['invoice']} {doc.number}", author=doc.issuer,
                      leftMargin=17 * mm, rightMargin=17 * mm, topMargin=18 * mm, bottomMargin=18 * mm,
                      invariant=True).build(story)
    return out.getvalue()


__all__ = ["WORDS", "DocumentLine", "InvoiceDocument", "render_invoice", "title_of"]
