"""The platform intake API on the HTTP app: ``POST /api/v1/requests``, ``GET /api/v1/tickets/REF``,
``GET /api/v1/openapi.json``.

A FastAPI application mounted under ``/api/v1`` of slabot's Starlette app: the pydantic models below are the
one declaration that both checks a request and writes the OpenAPI document. Every refusal is an RFC 9457
problem document (``application/problem+json``): 401 without a live bearer key, 413 for a body over
:data:`MAX_BODY_BYTES` (refused before it is read whole), 422 naming each bad field, 409 for an
``external_id`` used with another body, 429 with ``Retry-After`` for a key over its rate. A route takes what it
calls as arguments (the platform intake, the key check), built in :mod:`bot.app`.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.platform import Filed, PlatformError, PlatformRequest
from channels.identity import IdentityError, normalise_email, normalise_phone

PREFIX = "/api/v1"
MAX_BODY_BYTES = 64 * 1024
PROBLEM = "application/problem+json"

FileRequest = Callable[[PlatformRequest, str], Awaitable[Filed]]
Authenticate = Callable[[str], Awaitable["str | None"]]
ShowTicket = Callable[[str], Awaitable["dict[str, Any] | None"]]


# -- the one declaration: what a request is and what the answers are ----------------------------------------


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class Contact(BaseModel):
    """Who the request is from: the e-mail address or the phone number of a contact of an account."""

    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, max_length=320, examples=["piet@bakkerij-jansen.nl"])
    phone: str | None = Field(default=None, max_length=40, examples=["+31612345678"])

    @field_validator("email", "phone")
    @classmethod
    def _identity(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            return normalise_email(value) if info.field_name == "email" else normalise_phone(value)
        except IdentityError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _one(self) -> Contact:
        if (self.email is None) == (self.phone is None):
            raise ValueError("give exactly one of email and phone")
        return self


class RequestIn(BaseModel):
    """A request filed by the host product for one of its users."""

    model_config = ConfigDict(extra="forbid")

    contact: Contact
    subject: str | None = Field(default=None, max_length=998, examples=["Nieuwsbrief wordt niet verstuurd"])
    text: str = Field(min_length=1, max_length=60_000, examples=["Sinds vanochtend blijft onze mailing hangen."])
    external_id: str | None = Field(default=None, min_length=1, max_length=200, description=(
        "The host product's own id of the request: sending it again is safe (the same body answers 200 with "
        "the same answer and stores nothing; another body under a used id answers 409)."), examples=["req-4711"])
    language: Literal["nl", "en"] | None = Field(default=None, description=(
        "The language of the answer and of what follows; unset, the contact's or the account's."))
    critical: bool = Field(default=False, description="A critical incident (the outage line, R17).")
    priority: str | None = Field(default=None, min_length=1, max_length=40, description=(
        "A priority of the preset's matrix by name (R25), e.g. P1; unset, the preset's rules decide."),
        examples=["P2"])
    urgency: str | None = Field(default=None, min_length=1, max_length=40, description=(
        "The user's answer on urgency, as the preset's priority rules name it (R25), e.g. cannot_work."))
    impact: str | None = Field(default=None, min_length=1, max_length=40, description=(
        "The user's answer on impact, as the preset's priority rules name it (R25), e.g. everyone."))

    _nul = field_validator("subject", "text", "external_id", "priority", "urgency", "impact")(_no_nul)


class Acknowledgement(BaseModel):
    """The automatic reply to the request (R7), given in this answer rather than sent."""

    purpose: str = Field(examples=["accepted"])
    text: str


class RequestOut(BaseModel):
    """What became of the request; ``ref`` is null where no ticket was opened."""

    ref: str | None = Field(examples=["MC-10001"])
    decision: str = Field(examples=["new_ticket"])
    first_response_due: str | None = Field(examples=["2026-11-26T10:00:00+01:00"])
    resolution_due_min: str | None
    resolution_due_max: str | None
    acknowledgement: Acknowledgement | None
    state: str | None = Field(examples=["open"])
    reasons: list[str]


class MessageOut(BaseModel):
    """A message of the ticket, inbound or outbound."""

    model_config = ConfigDict(extra="allow")

    direction: Literal["in", "out"]
    channel: str
    external_id: str | None
    sender: str | None
    recipient: str | None
    text: str
    delivery_state: str
    auto: bool


class TicketOut(BaseModel):
    """A ticket with its messages, as ``slabot tickets show --json`` prints it."""

    model_config = ConfigDict(extra="allow")

    ref: str
    state: str
    account: str | None
    contact: str | None
    channel: str
    kind: str
    priority: str
    plan: str | None
    first_response_due: str | None
    first_responded_at: str | None
    resolution_due_min: str | None
    resolution_due_max: str | None
    messages: list[MessageOut]


class FieldProblem(BaseModel):
    field: str = Field(examples=["contact.email"])
    pointer: str = Field(examples=["#/contact/email"])
    detail: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None


def problem(status: int, detail: str, *, errors: list[dict[str, str]] | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    """An RFC 9457 problem document with ``status`` (``application/problem+json``)."""
    title = "Unprocessable Content" if status == 422 else HTTPStatus(status).phrase  # RFC 9110's name
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status,
                            "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field_problems(errors: Sequence[Any]) -> list[dict[str, str]]:
    found = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ()) if part != "body"]
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        found.append({"field": ".".join(loc) or "(body)", "pointer": "#/" + "/".join(loc), "detail": message})
    return found


_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM: {}}} for status in (401, 409, 413, 422, 429)}


# -- rate and size -------------------------------------------------------------------------------------------


class RateLimit:
    """At most ``per_minute`` calls per key in any 60 seconds; :meth:`wait` says how long a refused one waits."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._calls: dict[str, deque[float]] = {}

    def wait(self, key: str) -> float:
        """0 when ``key`` may call now (the call is counted), else the seconds until it may."""
        now = self.clock()
        calls = self._calls.setdefault(key, deque())
        while calls and calls[0] <= now - 60:
            calls.popleft()
        if len(calls) >= self.per_minute:
            return calls[0] + 60 - now
        calls.append(now)
        return 0.0


class BodyLimit:
    """An ASGI wrapper that answers 413 to a body over ``limit`` bytes, before the app reads it whole."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        too_large = declared.isdigit() and int(declared) > self.limit
        body = bytearray()
        while not too_large:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)  # the client went away: let the app see it
                return
            body.extend(message.get("body", b""))
            too_large = len(body) > self.limit
            if not message.get("more_body", False):
                break
        if too_large:
            await problem(413, f"the body is larger than {self.limit} bytes")(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


# -- the application ---------------------------------------------------------------------------------------


def api_app(file_request: FileRequest, authenticate: Authenticate, show_ticket: ShowTicket, *,
            requests_per_minute: int, clock: Callable[[], float] = time.monotonic) -> FastAPI:
    """The API as a FastAPI application (to be mounted at :data:`PREFIX`)."""
    app = FastAPI(title="slabot platform intake API", version="1", openapi_url="/openapi.json", docs_url=None,
                  redoc_url=None, description=(
                      "Requests filed by a host product for its users (channel `platform`). Every call needs "
                      "`Authorization: Bearer KEY` with a key made by `slabot api-keys create NAME`. Errors are "
                      "RFC 9457 problem documents."))
    bearer = HTTPBearer(auto_error=False, description="A key made by `slabot api-keys create NAME`.")
    rate = RateLimit(requests_per_minute, clock)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = _field_problems(exc.errors())
        return problem(422, "invalid: " + "; ".join(f"{p['field']}: {p['detail']}" for p in problems),
                       errors=problems)

    @app.exception_handler(HTTPException)
    async def refused(request: Request, exc: HTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    async def key_name(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
        name = await authenticate(credentials.credentials) if credentials is not None else None
        if name is None:
            raise HTTPException(401, "a live API key is needed: Authorization: Bearer KEY",
                                headers={"WWW-Authenticate": "Bearer"})
        wait = rate.wait(name)
        if wait > 0:
            raise HTTPException(429, f"more than {rate.per_minute} requests a minute with key {name}",
                                headers={"Retry-After": str(max(1, math.ceil(wait)))})
        return name

    @app.post("/requests", status_code=201, response_model=RequestOut, responses={
        200: {"model": RequestOut, "description": "The same request again (by external_id): nothing stored"},
        **_PROBLEMS}, summary="File a request for a user of the host product")
    async def file(body: RequestIn, key: str = Depends(key_name)) -> JSONResponse:
        request = PlatformRequest.of(body.contact.email, body.contact.phone, body.subject, body.text,
                                     body.external_id, body.language, body.critical, body.priority, body.urgency,
                                     body.impact)
        try:
            filed = await file_request(request, key)
        except PlatformError as exc:
            return problem(409, str(exc))
        return JSONResponse(filed.answer, status_code=filed.status)

    @app.get("/tickets/{ref}", response_model=TicketOut, responses={404: {"model": Problem}, **_PROBLEMS},
             summary="A ticket with its deadlines, state and messages")
    async def ticket(ref: str, key: str = Depends(key_name)) -> JSONResponse:
        found = await show_ticket(ref)
        if found is None:
            return problem(404, f"no ticket {ref}")
        return JSONResponse(found)

    return app


def api_routes(file_request: FileRequest, authenticate: Authenticate, show_ticket: ShowTicket, *,
               requests_per_minute: int) -> list[BaseRoute]:
    """The API mounted at :data:`PREFIX`, bodies over :data:`MAX_BODY_BYTES` refused."""
    app = api_app(file_request, authenticate, show_ticket, requests_per_minute=requests_per_minute)
    return [Mount(PREFIX, app=BodyLimit(app, MAX_BODY_BYTES))]


__all__ = ["MAX_BODY_BYTES", "PREFIX", "BodyLimit", "RateLimit", "RequestIn", "api_app", "api_routes", "problem"]
