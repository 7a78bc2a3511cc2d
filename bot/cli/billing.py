"""The billing commands of ``slabot`` (R18-R22): classify, root cause, quote, hours, punch cards, statements.

``slabot tickets classify|cause|quote``, ``slabot hours log`` and ``slabot billing statement|punchcard|balance``;
each is one transaction through :class:`bot.billing.Billing`, the same code the Telegram commands use.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from bot.billing import CAUSES, Billing, Statement, line_json, statement_text
from bot.cli.common import (
    STAFF_ENV,
    Handler,
    UsageError,
    command_group,
    parse_instant,
    staff_name,
    with_database,
)
from bot.i18n import AMSTERDAM
from bot.texts import Texts
from storage.records import InvoiceKind, InvoiceRecord


def _run(args: argparse.Namespace, action: Callable[[Billing], Any]) -> Any:
    return with_database(args, lambda loaded, db: action(
        Billing(db, loaded.preset, texts=Texts(), default_language=loaded.config.language,
                issuer_lines=tuple(loaded.config.billing.invoice_lines))))


def _write(out: TextIO, args: argparse.Namespace, data: dict[str, Any], text: str) -> int:
    out.write((json.dumps(data) if getattr(args, "json", False) else text) + "\n")
    return 0


def cmd_classify(args: argparse.Namespace, out: TextIO) -> int:
    """Confirm or change support (free) or service (paid)."""
    ticket = _run(args, lambda b: b.classify(args.ref, args.kind, staff_name(args)))
    return _write(out, args, {"ref": ticket.ref, "kind": ticket.kind, "kind_reasons": list(ticket.kind_reasons)},
                  f"{ticket.ref} is {ticket.kind}")


def cmd_cause(args: argparse.Namespace, out: TextIO) -> int:
    """Record a ticket's root cause; diagnosis outside the platform is billed."""
    ticket, billed = _run(args, lambda b: b.record_cause(args.ref, args.cause, staff_name(args)))
    amount = sum((x.amount for x in billed.lines), Decimal(0)) if billed else Decimal(0)
    return _write(out, args, {"ref": ticket.ref, "root_cause": ticket.root_cause, "kind": ticket.kind,
                              "billed": str(amount)},
                  f"{ticket.ref}: root cause {ticket.root_cause}, {ticket.kind}"
                  + (f"; diagnosis billed {amount}" if billed else ""))


def cmd_quote(args: argparse.Namespace, out: TextIO) -> int:
    """Send the customer an hour estimate at the rate of the day."""
    result = _run(args, lambda b: b.quote(args.ref, args.hours, staff_name(args), urgent=args.urgent))
    q = result.quote
    parts = [f"{q.monthly_hours} h from the month's hours" if q.monthly_hours else "",
             f"{q.card_hours} h from the punch card" + (f" ({q.new_blocks} new block(s) of {q.block_price})"
                                                        if q.new_blocks else "") if q.card_hours else "",
             f"{q.paid_hours} h {'urgent' if q.urgent else 'ad hoc'} at {q.rate}" if q.paid_hours else ""]
    return _write(out, args, {"ref": result.ref, "estimated_hours": str(q.estimated_hours),
                              "billed_hours": str(q.billed_hours), "rate_kind": q.rate_kind, "rate": str(q.rate),
                              "total": str(q.total), "state": q.state, "urgent": q.urgent,
                              "monthly_hours": str(q.monthly_hours), "card_hours": str(q.card_hours),
                              "paid_hours": str(q.paid_hours), "new_blocks": q.new_blocks,
                              "block_price": str(q.block_price)},
                  f"{result.ref}: quote of {q.estimated_hours} h sent ({'; '.join(p for p in parts if p)}; "
                  f"total {q.total}); waiting for the customer's agreement")


def cmd_hours_log(args: argparse.Namespace, out: TextIO) -> int:
    """Log hours on a ticket; billed at once when billable."""
    def log(b: Billing) -> Any:
        when = parse_instant(args.at, b.preset) if args.at else None
        return b.log_hours(args.ref, args.hours, staff_name(args), diagnosis=args.diagnosis, note=args.note, at=when)

    try:
        result = _run(args, log)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    lines = [{"description": x.description, "hours": str(x.hours), "rate": None if x.rate is None else str(x.rate),
              "amount": str(x.amount), "rate_kind": x.rate_kind} for x in result.lines]
    text = f"{result.ref}: {args.hours} h logged ({result.status})"
    for x in result.lines:
        text += f"\n  {x.description}: {x.amount}"
    if result.renewed_blocks:
        text += f"\n  punch card used up: new block invoiced ({', '.join(result.renewed_blocks)})"
    if result.separate_invoice:
        text += f"\n  above the threshold: invoiced at once as {result.separate_invoice}"
    return _write(out, args, {"ref": result.ref, "status": result.status, "lines": lines,
                              "renewed_blocks": list(result.renewed_blocks),
                              "separate_invoice": result.separate_invoice}, text)


def cmd_punchcard(args: argparse.Namespace, out: TextIO) -> int:
    """Sell a prepaid punch card, invoiced at once."""
    number, price = _run(args, lambda b: b.buy_punch_card(args.account, args.hours, staff_name(args)))
    return _write(out, args, {"account": args.account, "hours": args.hours, "invoice": number, "price": str(price)},
                  f"punch card of {args.hours} h for {args.account}: invoice {number}, {price}")


def cmd_balance(args: argparse.Namespace, out: TextIO) -> int:
    """An account's punch card and this month's hours."""
    balance = _run(args, lambda b: b.balance(args.account))
    data = {"account": balance.account, "month": balance.month,
            "punch_card": {k: str(v) for k, v in balance.card.items()} if balance.card else None,
            "monthly_hours": {k: str(v) for k, v in balance.monthly.items()} if balance.monthly else None,
            "logged": str(balance.logged), "billed": str(balance.billed), "amount": str(balance.amount)}
    card = (f"punch card {balance.card['remaining']} of {balance.card['block_hours']} h left "
            f"(block {balance.card['block_number']})" if balance.card else "no punch card")
    return _write(out, args, data, f"{balance.account} {balance.month}: {card}; logged {balance.logged} h, "
                                   f"billed {balance.billed} h, invoiced {balance.amount}")


def cmd_statement(args: argparse.Namespace, out: TextIO) -> int:
    """The month's billable lines per account with their invoices: a table, ``--json`` or ``--csv``."""
    month = args.month or datetime.now(AMSTERDAM).strftime("%Y-%m")
    if not re.fullmatch(r"\d{4}-\d{2}", month):
        raise UsageError(f"--month is written YYYY-MM (e.g. 2026-11), not {month!r}")
    statement: Statement = _run(args, lambda b: b.statement(month))
    if args.json:
        out.write(json.dumps(statement.as_json()) + "\n")
    elif args.csv:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["account", "invoice", "kind", "issued_on", "due_on", "date", "ticket", "description",
                         "hours", "rate", "amount", "invoice_vat", "invoice_total"])
        for name, invoices in statement.accounts.items():
            for inv in invoices:
                for x in inv.lines:
                    writer.writerow([name, inv.number or "(to come)", inv.kind, inv.issued_on, inv.due_on, x.day,
                                     x.ticket_ref or "", x.description, "" if x.hours is None else x.hours,
                                     "" if x.rate is None else x.rate, x.amount, inv.vat, inv.total])
    else:
        out.write(statement_text(statement))
    return 0


def invoice_json(i: InvoiceRecord) -> dict[str, Any]:
    """An invoice as ``billing invoices --json`` prints it."""
    return {"number": i.number, "kind": i.kind, "account": i.account, "ticket": i.ticket_ref, "month": i.month,
            "issued_on": i.issued_on.isoformat(), "due_on": i.due_on.isoformat(),
            "subtotal": None if i.subtotal is None else str(i.subtotal), "vat": None if i.vat is None else str(i.vat),
            "total": None if i.total is None else str(i.total), "recipient": i.recipient,
            "delivery_state": i.delivery_state or "not_sent"}


def _invoice_row(i: InvoiceRecord) -> str:
    what = i.month if i.kind == InvoiceKind.MONTHLY else (i.ticket_ref or "")
    return (f"{i.number:<11} {i.issued_on} due {i.due_on}  {i.kind:<10} {what:<10} {i.account[:28]:<28} "
            f"{i.total!s:>10}  {i.delivery_state or 'not sent'} {i.recipient or ''}".rstrip())


def cmd_invoices(args: argparse.Namespace, out: TextIO) -> int:
    """The invoices issued, with the delivery state of their mail."""
    if args.month and not re.fullmatch(r"\d{4}-\d{2}", args.month):
        raise UsageError(f"--month is written YYYY-MM (e.g. 2026-11), not {args.month!r}")
    found: list[InvoiceRecord] = _run(args, lambda b: b.invoices(args.month))
    if args.json:
        out.write(json.dumps([invoice_json(i) for i in found]) + "\n")
        return 0
    out.write("".join(_invoice_row(i) + "\n" for i in found) or "no invoices\n")
    return 0


def cmd_invoice(args: argparse.Namespace, out: TextIO) -> int:
    """One invoice; ``--pdf FILE`` writes its PDF, ``--resend`` mails it again."""
    record, lines, pdf = _run(args, lambda b: b.invoice(args.number))
    if args.resend:
        record = _run(args, lambda b: b.resend(args.number, staff_name(args)))
    if args.pdf == "-":
        out.flush()
        sys.stdout.buffer.write(pdf)
        return 0
    if args.pdf:
        try:
            Path(args.pdf).write_bytes(pdf)
        except OSError as exc:
            raise UsageError(f"cannot write {args.pdf}: {exc.strerror or exc}") from None
    data = {**invoice_json(record), "lines": [line_json(x) for x in lines], "pdf": args.pdf, "resent": args.resend}
    text = _invoice_row(record) + "".join(f"\n  {x.description}: {x.amount}" for x in lines)
    if args.pdf:
        text += f"\nPDF written to {args.pdf}"
    if args.resend:
        text += f"\nsent again to {record.recipient}"
    return _write(out, args, data, text)


def cmd_issue(args: argparse.Namespace, out: TextIO) -> int:
    """Issue the monthly invoices that are due now and queue their mail."""
    try:
        on = date.fromisoformat(args.on) if args.on else None
    except ValueError:
        raise UsageError(f"--on is a date written YYYY-MM-DD, not {args.on!r}") from None
    issued: list[InvoiceRecord] = _run(args, lambda b: b.issue_due(on))
    if args.json:
        out.write(json.dumps([invoice_json(i) for i in issued]) + "\n")
        return 0
    out.write("".join(_invoice_row(i) + "\n" for i in issued) or "no monthly invoices due\n")
    return 0


def register(commands: Any, ticket_cmds: Any) -> None:
    """Add the billing commands to the ``slabot`` parser and to its ``tickets`` subcommands."""
    staff_help = f"who does it (default: ${STAFF_ENV}, else $USER)"

    def with_common(parser: argparse.ArgumentParser, handler: Handler) -> None:
        parser.add_argument("--staff", help=staff_help)
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.set_defaults(handler=handler)

    classify = ticket_cmds.add_parser("classify", help="confirm or change support (free) or service (paid) (R18)")
    classify.add_argument("ref", help="ticket reference")
    classify.add_argument("kind", choices=("support", "service"))
    with_common(classify, cmd_classify)
    cause = ticket_cmds.add_parser(
        "cause", help="record the root cause: diagnosis on a platform bug is free, outside the platform paid (R18)")
    cause.add_argument("ref", help="ticket reference")
    cause.add_argument("cause", choices=CAUSES, help="platform or outside (R18); customer: an outage caused in "
                       "the customer's own domain, charged at the urgent rate, at least 1 hour (R17)")
    with_common(cause, cmd_cause)
    quote = ticket_cmds.add_parser(
        "quote", help="send the customer an hour estimate at the rate of the day; work waits for agreement (R19)")
    quote.add_argument("ref", help="ticket reference")
    quote.add_argument("hours", help="estimated hours, e.g. 2.5 (at least 1 is billed)")
    quote.add_argument("--urgent", action="store_true", help="ad hoc with the urgent surcharge")
    with_common(quote, cmd_quote)

    hours_cmds = command_group(commands, "hours", "time spent on tickets")
    log = hours_cmds.add_parser("log", help="log hours on a ticket; billed at once when billable (R18-R21)")
    log.add_argument("ref", help="ticket reference")
    log.add_argument("hours", help="hours worked, e.g. 1.5")
    log.add_argument("--diagnosis", action="store_true", help="diagnosis time: free or paid once the cause is known")
    log.add_argument("--note", help="what was done")
    log.add_argument("--at", metavar="ISO8601", help="when the work was done (default: now)")
    with_common(log, cmd_hours_log)

    billing_cmds = command_group(commands, "billing", "punch cards, balances and the monthly statement")
    statement = billing_cmds.add_parser(
        "statement", help="the billable lines of a month per account, with their invoices (R21)",
        description="Per account: the month's invoice (issued on its last day, due 14 days later) and the invoices "
                    "issued at once that month (punch-card blocks, requests above the threshold). Money in "
                    "the preset's currency, rounded half-up to cents per line.")
    statement.add_argument("--month", metavar="YYYY-MM", help="the month (default: this month)")
    statement.description = (
        "Per account: the month's invoice (issued on the first working day after the month, due 14 days later; "
        "shown as 'to come' before that), the invoices issued at once that month (punch-card blocks, jobs above "
        "the threshold) and the hours used from the month or the punch card. Totals with VAT.")
    fmt = statement.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print one JSON object")
    fmt.add_argument("--csv", action="store_true", help="print one CSV row per line")
    statement.set_defaults(handler=cmd_statement, reads_only=True)
    invoices = billing_cmds.add_parser(
        "invoices", help="the invoices issued, with the delivery state of their mail (R21)")
    invoices.add_argument("--month", metavar="YYYY-MM", help="only those issued in this month")
    with_common(invoices, cmd_invoices)
    invoices.set_defaults(reads_only=True)
    invoice = billing_cmds.add_parser("invoice", help="one invoice: its lines; --pdf writes it out, --resend mails "
                                                      "it again")
    invoice.add_argument("number", help="invoice number, e.g. 2026-00001")
    invoice.add_argument("--pdf", metavar="FILE", help="write the invoice's PDF (as sent) to FILE ('-': stdout)")
    invoice.add_argument("--resend", action="store_true", help="send the invoice's mail again, with the same PDF")
    with_common(invoice, cmd_invoice)
    issue = billing_cmds.add_parser(
        "issue", help="issue and send the monthly invoices that are due now (slabot run does this by itself)")
    issue.add_argument("--on", metavar="YYYY-MM-DD", help="issue as on that day (default today; not later)")
    with_common(issue, cmd_issue)
    punch = billing_cmds.add_parser("punchcard", help="sell a prepaid punch card (at least 5 hours), invoiced at once")
    punch.add_argument("account", help="account name")
    punch.add_argument("hours", help="block size in hours, e.g. 10")
    with_common(punch, cmd_punchcard)
    balance = billing_cmds.add_parser("balance", help="an account's punch card and this month's hours")
    balance.add_argument("account", help="account name")
    with_common(balance, cmd_balance)
    balance.set_defaults(reads_only=True)


__all__ = ["register"]

