"""``slabot webhooks test NAME``: send a test event to a ``[[webhooks]]`` endpoint and print its answer."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any, TextIO

from bot.cli.common import UsageError, command_group
from bot.config import load_config
from bot.webhooks import send_test
from channels.messages import utc_now
from channels.webhook import WebhookSendError


def cmd_test(args: argparse.Namespace, out: TextIO) -> int:
    """POST a signed ``webhook.test`` event to the endpoint NAME now; print the status and the answer's body.
    Exit 1 when the endpoint cannot be reached or does not answer 2xx."""
    hooks = {hook.endpoint: hook for hook in load_config(args.config).config.webhooks}
    if args.name not in hooks:
        raise UsageError(f"no [[webhooks]] endpoint named {args.name!r}; configured: {', '.join(hooks) or 'none'}")
    try:
        answer = asyncio.run(send_test(hooks[args.name], utc_now()))
    except WebhookSendError as exc:
        out.write(f"not delivered: {exc}\n")
        return 1
    out.write(f"{answer.status}\n{answer.text}\n" if answer.text else f"{answer.status}\n")
    return 0 if answer.ok else 1


def register(commands: Any) -> None:
    """Add ``slabot webhooks`` to the ``slabot`` parser."""
    hooks = command_group(commands, "webhooks", "the outgoing webhooks")
    test = hooks.add_parser("test", help="send a signed test event to an endpoint and print its answer")
    test.add_argument("name", help="the endpoint's name ([[webhooks]] name, else its URL's host)")
    test.set_defaults(handler=cmd_test)


__all__ = ["register"]
