"""The billing trail's queries: quotes, time entries, punch cards, invoice lines and invoices.

On plain statements (:class:`storage.direct.Direct`), so the same queries run
inside the intake's transaction (a customer agreeing to a quote) and inside a
staff action's ORM session. Sums of money and hours are made in Python over
``Decimal`` values: SQLite's ``sum()`` of a NUMERIC column is a float.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from storage import models as m
from storage.records import (
    OPEN_STATES,
    InvoiceKind,
    InvoiceLineRecord,
    InvoiceRecord,
    PunchCardRecord,
    QuoteRecord,
    QuoteState,
    TimeEntryRecord,
)
from storage.repositories import CURRENT_QUOTE_SQL, Repository, next_number

_QUOTE = tuple(c.name for c in m.Quote.__table__.columns if c.name not in ("message_id", "answer_message_id"))
_ENTRY = ("id", "ticket_id", "staff", "hours", "activity", "note", "status", "at")
_CARD = ("id", "account_id", "block_hours", "remaining", "block_number", "purchased_at")
_LINE = ("id", "account_id", "description", "hours", "rate", "amount", "day", "invoice", "rate_kind", "invoice_id")
_INVOICE = ("id", "number", "account_id", "kind", "issued_on", "due_on", "month", "subtotal", "vat", "total",
            "card_balance", "message_id")
FIRST_INVOICE_NUMBER = 1
_OPEN_SQL = ", ".join(f"'{state.value}'" for state in OPEN_STATES)
_PROPOSED, _SUPERSEDED = f"'{QuoteState.PROPOSED.value}'", f"'{QuoteState.SUPERSEDED.value}'"


class BillingRepository(Repository):
    """See the module docstring."""

    # -- quotes (R19, R22) ------------------------------------------------------

    def add_quote(self, **values: Any) -> int:
        """A new quote for the ticket; an earlier open one is superseded."""
        self.direct.execute(f"UPDATE quotes SET state = {_SUPERSEDED} WHERE ticket_id = :t AND state = {_PROPOSED}",
                            {"t": values["ticket_id"]})
        return self.direct.insert(m.Quote.__table__, {"state": QuoteState.PROPOSED.value, **values})

    def current_quote(self, ticket_id: int) -> QuoteRecord | None:
        """The ticket's latest quote that was not superseded."""
        d = self.direct
        row = d.one(f"SELECT {d.columns(m.Quote.__table__, _QUOTE)} {CURRENT_QUOTE_SQL.format(ticket=':t')}",
                    {"t": ticket_id})
        return None if row is None else self._quote(row)

    def _quote(self, row: Sequence[Any]) -> QuoteRecord:
        values = self.direct.decode(m.Quote.__table__, _QUOTE, row)
        values["state"] = QuoteState(values["state"])
        return QuoteRecord(**values)

    def agreed_quotes(self, ticket_id: int) -> list[QuoteRecord]:
        """The ticket's agreed quotes, oldest first: together they are the job's agreement (R20)."""
        d = self.direct
        rows = d.execute(f"SELECT {d.columns(m.Quote.__table__, _QUOTE)} FROM quotes WHERE ticket_id = :t "
                         f"AND state = '{QuoteState.AGREED.value}' ORDER BY id", {"t": ticket_id}).fetchall()
        return [self._quote(r) for r in rows]

    def reserved_monthly_hours(self, account_id: int, except_ticket: int) -> Decimal:
        """The monthly hours that open or agreed quotes on the account's other open tickets promised and their
        work has not used yet."""
        d = self.direct
        states = ", ".join(f"'{s.value}'" for s in (QuoteState.PROPOSED, QuoteState.AGREED))
        rows = d.execute(
            "SELECT q.ticket_id, q.monthly_hours FROM quotes q JOIN tickets t ON t.id = q.ticket_id "
            f"WHERE t.account_id = :a AND t.id <> :t AND t.state IN ({_OPEN_SQL}) AND q.state IN ({states}) "
            "AND q.monthly_hours > 0", {"a": account_id, "t": except_ticket}).fetchall()
        promised: dict[int, Decimal] = {}
        for ticket_id, value in rows:
            promised[ticket_id] = promised.get(ticket_id, Decimal(0)) + Decimal(value)
        reserved = Decimal(0)
        for ticket_id, hours in promised.items():
            used = sum((x.hours or Decimal(0) for x in self.ticket_lines(ticket_id) if x.rate_kind == "monthly"),
                       Decimal(0))
            reserved += max(hours - used, Decimal(0))
        return reserved

    def set_quote_message(self, quote_id: int, message_id: int) -> None:
        self.direct.update(m.Quote.__table__, quote_id, {"message_id": message_id})

    def answer_quote(self, quote_id: int, state: QuoteState, at: datetime, message_id: int | None) -> bool:
        """Agreed or declined; False when the quote was answered already."""
        d = self.direct
        changed = d.execute(
            "UPDATE quotes SET state = :state, answered_at = :at, answer_message_id = :msg "
            f"WHERE id = :id AND state = {_PROPOSED}",
            {"state": QuoteState(state).value, "at": d.value(m.Quote.__table__, "answered_at", at), "msg": message_id,
             "id": quote_id},
        ).rowcount
        return bool(changed)

    # -- time entries -----------------------------------------------------------

    def add_entry(self, **values: Any) -> int:
        return self.direct.insert(m.TimeEntry.__table__, values)

    def entries(self, ticket_id: int, status: str | None = None) -> list[TimeEntryRecord]:
        d = self.direct
        where = " AND status = :status" if status else ""
        rows = d.execute(f"SELECT {d.columns(m.TimeEntry.__table__, _ENTRY)} FROM time_entries "
                         f"WHERE ticket_id = :t{where} ORDER BY at, id", {"t": ticket_id, "status": status}).fetchall()
        return [TimeEntryRecord(**d.decode(m.TimeEntry.__table__, _ENTRY, r)) for r in rows]

    def account_entries(self, account_id: int, start: datetime, end: datetime) -> list[TimeEntryRecord]:
        """The account's time entries logged in [start, end)."""
        d = self.direct
        table = m.TimeEntry.__table__
        rows = d.execute(
            f"SELECT {d.columns(table, _ENTRY, 'e')} FROM time_entries e JOIN tickets t ON t.id = e.ticket_id "
            "WHERE t.account_id = :a AND e.at >= :start AND e.at < :end ORDER BY e.at, e.id",
            {"a": account_id, "start": d.value(table, "at", start), "end": d.value(table, "at", end)},
        ).fetchall()
        return [TimeEntryRecord(**d.decode(table, _ENTRY, r)) for r in rows]

    def set_entry_status(self, entry_ids: Iterable[int], status: str) -> None:
        for entry_id in entry_ids:
            self.direct.update(m.TimeEntry.__table__, entry_id, {"status": status, "billable": status == "billed"})

    # -- punch cards (R20) ------------------------------------------------------

    def punch_card(self, account_id: int) -> PunchCardRecord | None:
        d = self.direct
        row = d.one(f"SELECT {d.columns(m.PunchCard.__table__, _CARD)} FROM punch_cards WHERE account_id = :a "
                    "ORDER BY id LIMIT 1", {"a": account_id})
        return None if row is None else PunchCardRecord(**d.decode(m.PunchCard.__table__, _CARD, row))

    def add_punch_card(self, account_id: int, block_hours: Decimal, at: datetime) -> int:
        return self.direct.insert(m.PunchCard.__table__, {
            "account_id": account_id, "block_hours": block_hours, "remaining": block_hours, "block_number": 1,
            "purchased_at": at})

    def update_punch_card(self, card_id: int, remaining: Decimal, block_number: int) -> None:
        self.direct.update(m.PunchCard.__table__, card_id, {"remaining": remaining, "block_number": block_number})

    # -- invoice lines and invoices (R21) ---------------------------------------

    def add_line(self, **values: Any) -> int:
        return self.direct.insert(m.InvoiceLine.__table__, values)

    def ticket_lines(self, ticket_id: int) -> list[InvoiceLineRecord]:
        return self._lines("l.ticket_id = :t", {"t": ticket_id})

    def account_lines(self, account_id: int, start: date, end: date) -> list[InvoiceLineRecord]:
        """The account's lines dated in [start, end)."""
        return self._lines("l.account_id = :a AND l.day >= :start AND l.day < :end",
                           {"a": account_id, "start": start, "end": end})

    def lines_between(self, start: date, end: date) -> list[InvoiceLineRecord]:
        """Every line dated in [start, end), per account then in order."""
        return self._lines("l.day >= :start AND l.day < :end", {"start": start, "end": end})

    def invoice_lines(self, invoice_id: int) -> list[InvoiceLineRecord]:
        return self._lines("l.invoice_id = :i", {"i": invoice_id})

    def _lines(self, where: str, params: dict[str, Any]) -> list[InvoiceLineRecord]:
        d = self.direct
        table = m.InvoiceLine.__table__
        bound = {k: d.value(table, "day", v) if isinstance(v, date) else v for k, v in params.items()}
        rows = d.execute(
            f"SELECT {d.columns(table, _LINE, 'l')}, a.name, t.ref FROM invoice_lines l "
            "JOIN accounts a ON a.id = l.account_id LEFT JOIN tickets t ON t.id = l.ticket_id "
            f"WHERE {where} ORDER BY a.name, l.day, l.id", bound,
        ).fetchall()
        return [InvoiceLineRecord(**d.decode(table, _LINE, r[:-2]), account=r[-2], ticket_ref=r[-1]) for r in rows]

    def move_to_invoice(self, line_ids: Sequence[int], invoice_id: int, kind: str) -> None:
        for line_id in line_ids:
            self.direct.update(m.InvoiceLine.__table__, line_id, {"invoice_id": invoice_id, "invoice": kind})

    def add_invoice(self, account_id: int, kind: str, issued_on: date, due_on: date, at: datetime,
                    ticket_id: int | None = None, month: str | None = None) -> tuple[int, str]:
        """A new invoice with the next number of its year (``2026-00001``, one gap-free series: the number is
        taken in the caller's transaction); its id and number."""
        number = f"{issued_on.year}-{next_number(self.direct, f'invoice:{issued_on.year}', FIRST_INVOICE_NUMBER):05d}"
        invoice_id = self.direct.insert(m.Invoice.__table__, {
            "number": number, "account_id": account_id, "kind": kind, "ticket_id": ticket_id, "issued_on": issued_on,
            "due_on": due_on, "month": month, "created_at": at})
        return invoice_id, number

    def finish_invoice(self, invoice_id: int, *, subtotal: Decimal, vat: Decimal, total: Decimal,
                       card_balance: Decimal | None, pdf: bytes) -> None:
        """An issued invoice's totals and its PDF, as sent (never changed afterwards)."""
        self.direct.update(m.Invoice.__table__, invoice_id, {
            "subtotal": subtotal, "vat": vat, "total": total, "card_balance": card_balance, "pdf": pdf})

    def set_invoice_message(self, invoice_id: int, message_id: int) -> None:
        """The e-mail that carries the invoice (the latest, when it was sent again)."""
        self.direct.update(m.Invoice.__table__, invoice_id, {"message_id": message_id})

    def invoice_pdf(self, invoice_id: int) -> bytes | None:
        pdf = self.direct.scalar("SELECT pdf FROM invoices WHERE id = :i", {"i": invoice_id})
        return None if pdf is None else bytes(pdf)

    def monthly_invoice_exists(self, account_id: int, month: str) -> bool:
        return int(self.direct.scalar("SELECT count(*) FROM invoices WHERE account_id = :a AND month = :m",
                                      {"a": account_id, "m": month})) > 0

    def has_separate_invoice(self, ticket_id: int) -> bool:
        """True when the job of ``ticket_id`` was invoiced on its own (R21: later hours go monthly)."""
        return int(self.direct.scalar(f"SELECT count(*) FROM invoices WHERE ticket_id = :t AND kind = '{InvoiceKind.SEPARATE.value}'",
                                      {"t": ticket_id})) > 0

    def open_monthly_lines(self, end: date) -> list[InvoiceLineRecord]:
        """Lines waiting for a monthly invoice, dated before ``end``."""
        return self._lines(f"l.invoice = '{InvoiceKind.MONTHLY.value}' AND l.invoice_id IS NULL AND l.day < :end",
                           {"end": end})

    def invoices_between(self, start: date, end: date) -> list[InvoiceRecord]:
        """Invoices issued in [start, end)."""
        return self._invoices("i.issued_on >= :start AND i.issued_on < :end", {"start": start, "end": end})

    def invoices_for_month(self, month: str) -> list[InvoiceRecord]:
        """The monthly invoices of ``month`` (YYYY-MM)."""
        return self._invoices("i.month = :m", {"m": month})

    def invoice_by_number(self, number: str) -> InvoiceRecord | None:
        found = self._invoices("i.number = :n", {"n": number})
        return found[0] if found else None

    def _invoices(self, where: str, params: dict[str, Any]) -> list[InvoiceRecord]:
        d = self.direct
        table = m.Invoice.__table__
        bound = {k: d.value(table, "issued_on", v) if isinstance(v, date) else v for k, v in params.items()}
        rows = d.execute(
            f"SELECT {d.columns(table, _INVOICE, 'i')}, a.name, t.ref, msg.recipient, msg.delivery_state "
            "FROM invoices i JOIN accounts a ON a.id = i.account_id LEFT JOIN tickets t ON t.id = i.ticket_id "
            f"LEFT JOIN messages msg ON msg.id = i.message_id WHERE {where} ORDER BY i.issued_on, i.number",
            bound,
        ).fetchall()
        return [InvoiceRecord(**d.decode(table, _INVOICE, r[:-4]), account=r[-4], ticket_ref=r[-3], recipient=r[-2],
                              delivery_state=r[-1]) for r in rows]


__all__ = ["BillingRepository"]
