"""Twilio's webhooks on the HTTP app: WhatsApp messages, their status callbacks, and the outage line's calls.

Every Twilio webhook goes through :func:`signed_params`: a body over
:data:`MAX_WEBHOOK_BYTES` is answered 413, one that is not UTF-8 400, and a
missing or wrong ``X-Twilio-Signature`` (checked against ``http.public_url``
plus the request's path) 403, with nothing stored. A route takes what it calls
as arguments: the intake for a message, the status applier for a callback, the
voice line's answer for a call (:mod:`bot.whatsapp`, :mod:`bot.voice`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.voice import DIALLED_PATH
from bot.web.limits import PayloadTooLarge, read_limited
from channels.messages import InboundMessage
from channels.whatsapp import (
    EMPTY_TWIML,
    StatusUpdate,
    WebhookError,
    parse_status_callback,
    parse_whatsapp_webhook,
    signature_url,
    signature_valid,
)

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 64 * 1024
WEBHOOK_PATH = "/webhooks/twilio/whatsapp"
STATUS_PATH = "/webhooks/twilio/status"
VOICE_PATH = "/webhooks/twilio/voice"

Ingest = Callable[[InboundMessage], Awaitable[object]]  # commits the message before it returns
ApplyStatus = Callable[[StatusUpdate], Awaitable[None]]
AnswerCall = Callable[[Mapping[str, str], bytes], Awaitable[str]]  # a call's fields and body -> TwiML


async def signed_params(request: Request, auth_token: str, public_url: str | None
                        ) -> tuple[dict[str, str], bytes] | Response:
    """A Twilio webhook's form fields and body, or the answer that refuses it.

    The ``X-Twilio-Signature`` is checked against ``public_url`` plus the request's path (403 when it is
    missing or wrong); 413 for a body over :data:`MAX_WEBHOOK_BYTES`, 400 when it is not UTF-8. Every
    Twilio webhook (WhatsApp, status callbacks, the voice line) goes through here.
    """
    try:
        body = await read_limited(request, MAX_WEBHOOK_BYTES)
    except PayloadTooLarge:
        return PlainTextResponse(f"payload larger than {MAX_WEBHOOK_BYTES} bytes", status_code=413)
    try:
        params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
    except UnicodeDecodeError:
        return PlainTextResponse("body is not UTF-8 form data", status_code=400)
    url = signature_url(public_url, str(request.url))
    if not signature_valid(auth_token, url, params, request.headers.get("X-Twilio-Signature")):
        log.warning("refused a %s webhook with a missing or wrong signature (url %s)", request.url.path, url)
        return PlainTextResponse("invalid Twilio signature", status_code=403)
    return params, body


Handler = Callable[[dict[str, str], bytes], Awaitable[Response]]


def twilio_endpoint(auth_token: str, public_url: str | None, handle: Handler
                    ) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint that hands a signed Twilio webhook's fields and body to ``handle``; a :class:`WebhookError`
    is answered with its status (400, 413)."""

    async def endpoint(request: Request) -> Response:
        checked = await signed_params(request, auth_token, public_url)
        if isinstance(checked, Response):
            return checked
        try:
            return await handle(*checked)
        except WebhookError as exc:
            return PlainTextResponse(str(exc), status_code=exc.status)

    return endpoint


def whatsapp_routes(auth_token: str, public_url: str | None, ingest: Ingest, apply_status: ApplyStatus,
                    now: Callable[[], datetime]) -> list[Route]:
    """``POST /webhooks/twilio/whatsapp`` (a message, committed through ``ingest`` before the 200) and
    ``POST /webhooks/twilio/status`` (a delivery status, handed to ``apply_status``; 204)."""

    async def inbound(params: dict[str, str], body: bytes) -> Response:
        message = parse_whatsapp_webhook(params, now(), raw=body)
        # committed before the answer: Twilio does not retry a 5xx, so an error here would lose it
        await ingest(message)
        return Response(EMPTY_TWIML, media_type="text/xml")

    async def status(params: dict[str, str], body: bytes) -> Response:
        await apply_status(parse_status_callback(params))
        return Response(status_code=204)

    return [Route(WEBHOOK_PATH, twilio_endpoint(auth_token, public_url, inbound), methods=["POST"]),
            Route(STATUS_PATH, twilio_endpoint(auth_token, public_url, status), methods=["POST"])]


def voice_routes(auth_token: str, public_url: str | None, answer: AnswerCall,
                 dialled: AnswerCall | None = None) -> list[Route]:
    """``POST /webhooks/twilio/voice``: a call to the outage number, answered in TwiML by ``answer`` (which logs
    it first); 400 when the form is not a call. ``POST /webhooks/twilio/voice/dialled`` (with ``dialled``): the
    transfer to on-call ended, answered in TwiML by ``dialled`` (which records an answered call first)."""

    def twiml(handle: AnswerCall) -> Handler:
        async def respond(params: dict[str, str], body: bytes) -> Response:
            return Response(await handle(params, body), media_type="text/xml")
        return respond

    routes = [Route(VOICE_PATH, twilio_endpoint(auth_token, public_url, twiml(answer)), methods=["POST"])]
    if dialled is not None:
        routes.append(Route(DIALLED_PATH, twilio_endpoint(auth_token, public_url, twiml(dialled)), methods=["POST"]))
    return routes


__all__ = ["DIALLED_PATH", "MAX_WEBHOOK_BYTES", "STATUS_PATH", "VOICE_PATH", "WEBHOOK_PATH", "signed_params",
           "twilio_endpoint", "voice_routes", "whatsapp_routes"]
