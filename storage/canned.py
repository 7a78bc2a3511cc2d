"""The canned answers staff keep (:mod:`bot.canned`): one row per name and language."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from storage import models as m
from storage.repositories import Repository


@dataclass(frozen=True)
class CannedRecord:
    name: str
    language: str
    text: str
    staff: str
    updated_at: datetime


def _record(row: m.CannedAnswer) -> CannedRecord:
    return CannedRecord(row.name, row.language, row.text, row.staff, row.updated_at)


class CannedRepository(Repository):
    """Canned answers by name and language."""

    def all(self) -> list[CannedRecord]:
        rows = self.session.scalars(select(m.CannedAnswer).order_by(m.CannedAnswer.name, m.CannedAnswer.language))
        return [_record(row) for row in rows]

    def get(self, name: str, language: str) -> CannedRecord | None:
        row = self.session.scalar(select(m.CannedAnswer).where(m.CannedAnswer.name == name,
                                                               m.CannedAnswer.language == language))
        return None if row is None else _record(row)

    def put(self, name: str, language: str, text: str, staff: str, now: datetime) -> bool:
        """Store the answer (replacing the one of that name and language); True when it is new."""
        row = self.session.scalar(select(m.CannedAnswer).where(m.CannedAnswer.name == name,
                                                               m.CannedAnswer.language == language))
        if row is None:
            self.session.add(m.CannedAnswer(name=name, language=language, text=text, staff=staff, updated_at=now))
            return True
        row.text, row.staff, row.updated_at = text, staff, now
        return False

    def remove(self, name: str, language: str | None = None) -> int:
        """Remove the answer in ``language`` (every language without one); how many were removed."""
        query = delete(m.CannedAnswer).where(m.CannedAnswer.name == name)
        if language is not None:
            query = query.where(m.CannedAnswer.language == language)
        return int(self.session.execute(query).rowcount or 0)  # type: ignore[attr-defined]


__all__ = ["CannedRecord", "CannedRepository"]
