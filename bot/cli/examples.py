"""Real examples at the end of every command's ``--help`` (``slabot tickets list --help``)."""

from __future__ import annotations

import argparse

EXAMPLES: dict[str, tuple[str, ...]] = {
    "": ("slabot demo", "slabot --config config.toml run"),
    "run": ("slabot run", "SLABOT_HTTP_PORT=8081 slabot --config /etc/slabot/config.toml run"),
    "demo": ("slabot demo", "slabot demo --db /tmp/slabot-demo.db --quiet"),
    "ingest email": ("slabot ingest email < message.eml", "slabot ingest email maildir/new/ --json"),
    "sla deadline": ("slabot sla deadline --plan licentie --at 2026-11-23T10:00",
                     "slabot sla deadline --preset paynl --plan premium --at 2026-11-23T10:00+01:00 --json"),
    "config check": ("slabot config check", "slabot config check /etc/slabot/config.toml --json"),
    "config reference": ("slabot config reference > docs/configuration.md",),
    "db upgrade": ("slabot db upgrade", "slabot --config /etc/slabot/config.toml db upgrade"),
    "tickets list": ("slabot tickets list", "slabot tickets list --state open --json"),
    "tickets show": ("slabot tickets show MC-10001", "slabot tickets show MC-10001 --json"),
    "tickets classify": ("slabot tickets classify MC-10001 service --staff anna",),
    "tickets cause": ("slabot tickets cause MC-10001 outside --staff anna",
                      "slabot tickets cause PN-10004 customer --staff eva"),
    "tickets quote": ("slabot tickets quote MC-10001 2.5 --staff anna",
                      "slabot tickets quote MC-10001 1.5 --urgent --json"),
    "tickets reply": ("slabot tickets reply MC-10001 \"Dag Piet, het is opgelost.\" --staff anna",
                      "slabot tickets reply MC-10001 \"Welke lijst bedoel je?\" --clarify"),
    "tickets resolve": ("slabot tickets resolve MC-10001 --staff anna",),
    "tickets release": ("slabot tickets release PN-10002 --staff eva", "slabot tickets release PN-10002 --clear"),
    "hours log": ("slabot hours log MC-10001 1.5 --note \"opmaak nieuwsbrief\" --staff anna",
                  "slabot hours log MC-10001 0.5 --diagnosis --at 2026-11-23T14:00"),
    "billing statement": ("slabot billing statement --month 2026-11", "slabot billing statement --month 2026-11 --csv"),
    "billing invoices": ("slabot billing invoices", "slabot billing invoices --month 2026-12 --json"),
    "billing invoice": ("slabot billing invoice 2026-00003 --pdf invoice.pdf",
                        "slabot billing invoice 2026-00003 --resend --staff anna"),
    "billing issue": ("slabot billing issue", "slabot billing issue --on 2026-12-01 --json"),
    "billing punchcard": ("slabot billing punchcard \"Bakkerij de Vries\" 10 --staff anna",),
    "billing balance": ("slabot billing balance \"Bakkerij de Vries\"",),
    "mail kept": ("slabot mail kept", "slabot mail kept --json"),
    "mail raw": ("slabot mail raw 42 > kept.eml",),
    "mail reprocess": ("slabot mail reprocess 42", "slabot mail reprocess 42 --file repaired.eml"),
    "dashboard hash-password": ("slabot dashboard hash-password",),
    "dashboard secret-key": ("slabot dashboard secret-key",),
    "dashboard logout-all": ("slabot dashboard logout-all", "slabot dashboard logout-all --user anna"),
    "calls import": ("slabot calls import calls-2026-11.csv", "slabot calls import twilio-calls.json"),
    "calls log": ("slabot calls log --from 0612345678 --agent anna \"wil een kopie van de factuur\"",
                  "slabot calls log --critical --from 0687654321 --agent eva \"betaalpagina geeft 500\""),
    "accounts import": ("slabot accounts import accounts.toml", "slabot accounts import accounts.csv"),
    "accounts list": ("slabot accounts list", "slabot accounts list --json"),
    "api-keys create": ("slabot api-keys create mailcampaigns-platform",),
    "api-keys list": ("slabot api-keys list", "slabot api-keys list --json"),
    "api-keys revoke": ("slabot api-keys revoke mailcampaigns-platform",),
    "webhooks test": ("slabot webhooks test crm",),
    "privacy export": ("slabot privacy export --contact piet@bakkerij-jansen.nl > piet.json",
                       "slabot privacy export --contact 0612345678 --staff anna"),
    "privacy erase": ("slabot privacy erase --contact piet@bakkerij-jansen.nl",
                      "slabot privacy erase --contact 0612345678 --staff anna --yes"),
    "privacy log": ("slabot privacy log", "slabot privacy log --json"),
    "presets check": ("slabot presets check docs/examples/hostingdesk.toml", "slabot presets check my-sla.toml"),
    "presets show": ("slabot presets show mailcampaigns", "slabot presets show docs/examples/hostingdesk.toml --json"),
    "tickets priority": ("slabot tickets priority HD-10001 P1 --staff anna",),
    "canned list": ("slabot canned list", "slabot canned list --json"),
    "canned add": ("slabot canned add thanks \"Dag {contact}, dank voor je bericht over {ref}. Groet, {staff}\"",
                   "slabot canned add thanks \"Hi {contact}, we answer {ref} by {due}.\" --language en"),
    "canned remove": ("slabot canned remove thanks", "slabot canned remove thanks --language en"),
    "report": ("slabot report --from 2026-11-01 --to 2026-11-30",
               "slabot report --from 2026-11-01 --to 2026-11-30 --plan licentie --json"),
}


class ExamplesFormatter(argparse.HelpFormatter):
    """The default formatter, but an ``examples:`` block keeps its lines as they are written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        parts = []
        for paragraph in text.split("\n\n"):
            if paragraph.startswith("examples:"):
                parts.append("\n".join(indent + line for line in paragraph.splitlines()))
            else:
                parts.append(super()._fill_text(paragraph, width, indent))
        return "\n\n".join(parts)


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict[str, argparse.ArgumentParser]:
    """Every command of ``parser`` by its words (``"tickets list"``), the top level as ``""``."""
    found = {" ".join(path): parser}
    for action in parser._actions:  # noqa: SLF001 - argparse keeps its subcommands here
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for name, sub in action.choices.items():
                found.update(commands(sub, (*path, name)))
    return found


def add_examples(parser: argparse.ArgumentParser) -> None:
    """End each command's help with its examples (the help text keeps its own line breaks for them)."""
    for name, command in commands(parser).items():
        examples = EXAMPLES.get(name)
        if not examples:
            continue
        block = "examples:\n" + "\n".join(f"  {line}" for line in examples)
        command.epilog = f"{command.epilog}\n\n{block}" if command.epilog else block
        command.formatter_class = ExamplesFormatter


__all__ = ["EXAMPLES", "ExamplesFormatter", "add_examples", "commands"]
