"""``slabot api-keys create|list|revoke``: the bearer keys of the platform intake API (``/api/v1/``)."""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from bot.cli.common import UsageError, command_group, local_iso, with_database
from bot.platform import ApiKeys


def cmd_create(args: argparse.Namespace, out: TextIO) -> int:
    """Make a key named NAME and print it, once: only its hash is stored."""
    key = with_database(args, lambda _, db: ApiKeys(db).create(args.name))
    if key is None:
        raise UsageError(f"an API key named {args.name!r} exists already; `slabot api-keys list` shows them")
    out.write(key + "\n")
    return 0


def cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    """The keys with when they were made and last used (never the key)."""
    keys = with_database(args, lambda _, db: ApiKeys(db).all())
    rows = [{"name": k.name, "prefix": k.prefix, "created_at": local_iso(k.created_at),
             "last_used_at": local_iso(k.last_used_at), "revoked_at": local_iso(k.revoked_at)} for k in keys]
    if args.json:
        out.write(json.dumps(rows) + "\n")
        return 0
    if not rows:
        out.write("no API keys; `slabot api-keys create NAME` makes one\n")
    for row in rows:
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else f"last used {row['last_used_at'] or 'never'}"
        out.write(f"{row['name']:<20} {row['prefix']}...  made {row['created_at']}  {state}\n")
    return 0


def cmd_revoke(args: argparse.Namespace, out: TextIO) -> int:
    """Revoke the key NAME: the API refuses it from now on."""
    if not with_database(args, lambda _, db: ApiKeys(db).revoke(args.name)):
        raise UsageError(f"no live API key named {args.name!r}; `slabot api-keys list` shows them")
    out.write(f"revoked {args.name}\n")
    return 0


def register(commands: Any) -> None:
    """Add ``slabot api-keys`` to the ``slabot`` parser."""
    keys = command_group(commands, "api-keys", "bearer keys of the platform intake API")
    create = keys.add_parser("create", help="make a key and print it once (only its hash is stored)")
    create.add_argument("name", help="what the key is for, e.g. the host product's name")
    create.set_defaults(handler=cmd_create)
    listing = keys.add_parser("list", help="the keys, when made and last used")
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    listing.set_defaults(handler=cmd_list)
    revoke = keys.add_parser("revoke", help="revoke a key: the API refuses it from now on")
    revoke.add_argument("name", help="the key's name")
    revoke.set_defaults(handler=cmd_revoke)


__all__ = ["register"]
