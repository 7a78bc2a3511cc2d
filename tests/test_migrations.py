"""The migrations build exactly the schema the models describe, and go down and up again."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from helpers import downgrade

from storage.database import Database
from storage.models import Base
from storage.search import is_search_structure
from storage.staffchat import EVENT_XID_INDEX


def _modelled(obj: object, name: str | None, kind: str, reflected: bool, compare_to: object) -> bool:
    """Everything but the search tables and indexes, and the events' transaction ids (PostgreSQL), which the
    migrations make outside the models."""
    if kind == "column" and name == "xid" and getattr(getattr(obj, "table", None), "name", None) == "events":
        return False
    return not is_search_structure(name) and name != EVENT_XID_INDEX


def _differences(db: Database) -> list[object]:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_object": _modelled})
        return list(compare_metadata(context, Base.metadata))


def test_migrated_schema_matches_the_models(db: Database) -> None:
    assert _differences(db) == []
    assert db.current_revision() is not None


def test_downgrade_one_step_and_upgrade_again(db: Database) -> None:
    head = db.current_revision()
    downgrade(db, "-1")
    assert db.current_revision() != head
    db.upgrade()
    assert db.current_revision() == head and _differences(db) == []
