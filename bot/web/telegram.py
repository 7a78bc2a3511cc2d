"""``POST /webhooks/telegram``: the updates Telegram posts in webhook mode, handed to the staff chat.

The route takes an update only with the webhook's secret in
``X-Telegram-Bot-Api-Secret-Token`` (403 otherwise, nothing done), refuses a
body over 256 KB (413) and what is not an update (400), and hands the update
to ``take_update`` (the staff chat's, passed in by the composition root) and
answers 200 at once; while the staff chat is stopped it answers 503, so
Telegram posts the update again.
"""

from __future__ import annotations

import hmac
import json
import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.web.limits import PayloadTooLarge, read_limited
from channels.telegram import NotAnUpdateError, TelegramStoppedError, UpdateSink

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/telegram"
MAX_UPDATE_BYTES = 256 * 1024  # an update is a few KB: a 4096-character message with the one it replies to
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def telegram_webhook_route(secret: str | None, take_update: UpdateSink) -> Route:
    """The webhook route: updates with ``secret`` go to ``take_update`` (with no secret, every request is refused)."""

    async def webhook_update(request: Request) -> Response:
        """One update posted by Telegram: checked, handed on, answered at once."""
        given = request.headers.get(SECRET_HEADER, "").encode("latin-1")  # the bytes as sent
        if secret is None or not hmac.compare_digest(given, secret.encode("utf-8")):
            log.warning("telegram webhook: refused a request with a missing or wrong secret token")
            return PlainTextResponse("wrong secret token", status_code=403)
        try:
            body = await read_limited(request, MAX_UPDATE_BYTES)
        except PayloadTooLarge:
            return PlainTextResponse(f"update larger than {MAX_UPDATE_BYTES} bytes", status_code=413)
        try:
            data = json.loads(body)
            if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
                raise ValueError("not an update")
        except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError included
            return _not_an_update(exc)
        try:
            await take_update(data)
        except NotAnUpdateError as exc:
            return _not_an_update(exc)
        except TelegramStoppedError:
            return PlainTextResponse("the staff chat is not running", status_code=503)  # Telegram posts it again
        return Response(status_code=200)

    return Route(WEBHOOK_PATH, webhook_update, methods=["POST"])


def _not_an_update(exc: Exception) -> Response:
    log.warning("telegram webhook: not an update (%s)", exc)
    return PlainTextResponse("not a Telegram update", status_code=400)


__all__ = ["MAX_UPDATE_BYTES", "SECRET_HEADER", "WEBHOOK_PATH", "telegram_webhook_route"]
