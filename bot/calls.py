"""Phone-call logs into the intake: ``slabot calls import FILE``.

The log is read by :mod:`channels.calls` (CSV or JSON, columns documented
there and in the README). Each call goes through the intake pipeline like any
message: a new request for a known contact (or joining the caller's open phone
ticket), an unverified ticket for an unknown number; importing the same file
again adds nothing. A bad row is reported with its line and skipped; the good
rows still import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bot.accounts import Problem
from bot.intake import IntakePipeline
from channels.calls import call_message, parse_call, read_rows


@dataclass
class CallImport:
    """What an import did."""

    outcomes: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        counted = ", ".join(f"{n} {o}" for o, n in sorted(self.outcomes.items())) or "no calls"
        return f"{sum(self.outcomes.values())} calls: {counted}; {len(self.problems)} rejected"


def import_calls(pipeline: IntakePipeline, path: Path) -> CallImport:
    """Every call of the log through the intake; bad rows reported, the rest imported."""
    report = CallImport()
    for line, row in read_rows(path):
        try:
            call = parse_call(row)
        except ValueError as exc:
            report.problems.append(Problem(line, str(exc), path.name))
            continue
        outcome = pipeline.ingest(call_message(call)).outcome.value
        report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
    return report


__all__ = ["CallImport", "import_calls"]
