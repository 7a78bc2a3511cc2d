"""A local stand-in for the parts of Twilio's REST API slabot uses, served on loopback.

``POST /2010-04-01/Accounts/{sid}/Messages.json`` creates a message (201, or an
error that was queued with :meth:`TwilioStandIn.fail_next`; a free-form
WhatsApp send to a number in ``window_closed`` answers Twilio's 63016; held
before or answered late with :meth:`TwilioStandIn.hold_next` and
:meth:`TwilioStandIn.slow_next`, so that a sender can be killed mid-send), ``GET
.../Messages/{sid}.json`` fetches one, ``GET .../Messages.json`` lists them
(inbound ones are added with :meth:`TwilioStandIn.receive`), and ``GET
/media/{name}`` serves media bytes, or redirects (307) to the URL in
``media_redirects`` as Twilio redirects to its CDN.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from channels.messages import utc_now


@dataclass
class TwilioStandIn:
    """State and behaviour of the stand-in; tests read ``sent`` and set the knobs."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    window_closed: set[str] = field(default_factory=set)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    media_redirects: dict[str, str] = field(default_factory=dict)
    failures: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    holds: list[float] = field(default_factory=list)
    held: int = 0  # create requests held right now (hold_next)
    requests: int = 0
    now: Callable[[], datetime] = field(default=utc_now)  # the clock of its timestamps
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def fail_next(self, status: int, code: int = 20500, message: str = "stand-in failure") -> None:
        """The next message create answers ``status`` with Twilio's error ``code``."""
        self.failures.append((status, {"code": code, "message": message, "status": status}))

    def slow_next(self, seconds: float) -> None:
        """The next message is created at once but answered only after ``seconds`` (a client timeout)."""
        self.delays.append(seconds)

    def hold_next(self, seconds: float) -> None:
        """The next message create waits ``seconds`` before Twilio takes it; a client that has gone by then (killed
        mid-send) created nothing."""
        self.holds.append(seconds)

    async def _hold(self, request: Request, seconds: float) -> bool:
        """Wait ``seconds`` or until the client goes; whether it is still there."""
        self.held += 1
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + seconds
            while loop.time() < deadline:
                if await request.is_disconnected():
                    return False
                await asyncio.sleep(0.02)
            return True
        finally:
            self.held -= 1

    def receive(self, sender: str, to: str, body: str, sid: str | None = None,
                when: datetime | None = None) -> dict[str, Any]:
        """Record an inbound message as Twilio would list it (its webhook may never arrive)."""
        record = self._record(sid or f"SM{next(self._ids):032x}", sender, to, body, "inbound", "received", when)
        self.received.append(record)
        return record

    def _record(self, sid: str, sender: str, to: str, body: str, direction: str, status: str,
                when: datetime | None = None) -> dict[str, Any]:
        stamp = format_datetime((when or self.now()).astimezone(timezone.utc), usegmt=True)
        return {
            "sid": sid, "account_sid": "AC", "from": sender, "to": to, "body": body, "status": status,
            "direction": direction, "num_media": "0", "num_segments": "1", "date_created": stamp,
            "date_sent": stamp, "date_updated": stamp, "error_code": None, "error_message": None,
            "uri": f"/2010-04-01/Accounts/AC/Messages/{sid}.json", "api_version": "2010-04-01",
            "price": None, "price_unit": "USD", "messaging_service_sid": None, "subresource_uris": {},
        }

    async def create(self, request: Request) -> Response:
        """``POST .../Messages.json``: a message created (201), or the queued failure, or 63016."""
        self.requests += 1
        form = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
        if self.holds and not await self._hold(request, self.holds.pop(0)):
            return Response(status_code=499)  # nobody is listening: nothing was created
        if self.failures:
            status, body = self.failures.pop(0)
            return JSONResponse(body, status_code=status)
        to = str(form.get("To", ""))
        if "Body" in form and to.removeprefix("whatsapp:") in self.window_closed:
            return JSONResponse({"code": 63016, "status": 400, "message": "Failed to send freeform message because "
                                 "you are outside the allowed window."}, status_code=400)
        sid = f"SM{next(self._ids):032x}"
        record = self._record(sid, str(form.get("From", "")), to, str(form.get("Body", "")), "outbound-api",
                              "queued")
        record["content_sid"] = form.get("ContentSid")
        record["content_variables"] = form.get("ContentVariables")
        record["status_callback"] = form.get("StatusCallback")
        self.sent.append(record)
        if self.delays:
            await asyncio.sleep(self.delays.pop(0))
        return JSONResponse(record, status_code=201)

    async def fetch(self, request: Request) -> Response:
        """``GET .../Messages/{sid}.json``: one message, sent or received (404 when unknown)."""
        sid = request.path_params["message"]
        for record in (*self.sent, *self.received):
            if record["sid"] == sid:
                return JSONResponse(record)
        return JSONResponse({"code": 20404, "status": 404, "message": "not found"}, status_code=404)

    async def list(self, request: Request) -> Response:
        """``GET .../Messages.json``: the messages to and from the numbers asked for, as one page."""
        to, sender = request.query_params.get("To"), request.query_params.get("From")
        items = [r for r in (*self.received, *self.sent)
                 if (to is None or r["to"] == to) and (sender is None or r["from"] == sender)]
        return JSONResponse({"messages": items, "end": len(items), "first_page_uri": "", "next_page_uri": None,
                             "page": 0, "page_size": 1000, "previous_page_uri": None, "start": 0, "uri": ""})

    async def get_media(self, request: Request) -> Response:
        """``GET /media/{name}``: media bytes, a redirect to where they are, or 404 when unknown."""
        moved = self.media_redirects.get(request.path_params["name"])
        if moved is not None:
            return RedirectResponse(moved, status_code=307)
        found = self.media.get(request.path_params["name"])
        if found is None:
            return Response(status_code=404)
        return Response(found[0], media_type=found[1])

    def app(self) -> Starlette:
        """The stand-in as a Starlette app, to serve on loopback."""
        base = "/2010-04-01/Accounts/{account}"
        return Starlette(routes=[
            Route(f"{base}/Messages.json", self.create, methods=["POST"]),
            Route(f"{base}/Messages.json", self.list, methods=["GET"]),
            Route(f"{base}/Messages/{{message}}.json", self.fetch, methods=["GET"]),
            Route("/media/{name}", self.get_media, methods=["GET"]),
        ])
