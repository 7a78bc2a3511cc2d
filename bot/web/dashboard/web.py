"""The staff dashboard: a Starlette app mounted at ``/dashboard`` on slabot's own HTTP app.

How it works
------------
It is on only when ``[dashboard]`` names staff logins (``[[dashboard.users]]``
with an Argon2 ``password_hash``) and a ``secret_key``. A login is a session
kept in the database (:mod:`storage.sessions`, only a hash of its token) whose
token rides in a cookie signed with that key (Starlette's ``SessionMiddleware``,
i.e. itsdangerous): HttpOnly, SameSite=Lax, limited to the ``/dashboard`` path,
Secure when ``http.public_url`` is https. It ends ``session_hours`` after the
login whatever the cookie's own age, at logout, when the login's password
changes, and with ``slabot dashboard logout-all``: a cookie saved before any of
these opens nothing.

- No data without a login: the pages redirect to the login form, the JSON
  endpoint answers 401. The static CSS and JavaScript are the only things
  served without one.
- Every POST (login, logout, language) carries the session's CSRF token in its
  form; a POST without it is refused (403). The login replaces the session
  (a new token), so a token seen before the login is worth nothing after it.
- Failed logins are throttled per account from a client, per client address and per account
  (:class:`bot.web.dashboard.auth.LoginThrottle`): 429 with ``Retry-After``.
- Pages are rendered on the server (Jinja2 templates in ``templates/``, shipped
  in the package); ``static/dashboard.js`` only runs the countdowns. The
  Content-Security-Policy allows nothing from elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.billing import Billing
from bot.canned import CannedAnswers
from bot.config import DashboardConfig, DashboardUser
from bot.desk import Desk, DeskError
from bot.i18n import LANGUAGES, Language, format_when
from bot.reports import (
    FIRST_DAY,
    SlaReport,
    check_period,
    load_report,
    render_chart,
    report_data,
    report_day,
    span_text,
)
from bot.staff_texts import ACTION_PHRASES, DASHBOARD_TEXTS, WORKSPACE_TEXTS
from bot.web.dashboard.actions import ActionError, TicketActions, excerpt
from bot.web.dashboard.auth import (
    CSRF_FIELD,
    LoginThrottle,
    csrf_matches,
    new_csrf_token,
    new_session_token,
    password_tag,
    token_hash,
    verify_password,
)
from bot.web.dashboard.finding import page_url, search_filter, search_form
from bot.web.dashboard.language import pick_language
from bot.web.dashboard.live import POLL_SECONDS, PresenceBoard
from bot.web.dashboard.views import (
    QueueRow,
    answered_apart,
    hours_text,
    invoice_rows,
    queue_rows,
    short_when,
    timeline,
)
from bot.web.limits import PayloadTooLarge, read_limited
from channels.messages import utc_now
from sla_engine.errors import PolicyError
from sla_engine.policy import Preset
from storage.billing import BillingRepository
from storage.database import Database, Session
from storage.records import (
    OPEN_STATES,
    InvoiceLineRecord,
    QuoteRecord,
    ReminderRecord,
    TicketRecord,
    TicketState,
    TimeEntryRecord,
)
from storage.repositories import AccountRepository, ReminderRepository, TicketRepository
from storage.search import TicketSearch
from storage.sessions import DashboardSessionRepository

log = logging.getLogger(__name__)

PREFIX = "/dashboard"
SESSION_COOKIE = "slabot_dashboard"
MAX_FORM_BYTES = 8 * 1024
REPORT_DAYS = 28  # the report's default period: the last four weeks
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

TEXTS: dict[Language, dict[str, str]] = {lang: DASHBOARD_TEXTS[lang] | WORKSPACE_TEXTS[lang] for lang in LANGUAGES}
WHATSAPP_WINDOW = timedelta(hours=24)  # WhatsApp's customer-service window: free text only within it

Endpoint = Callable[[Request], Awaitable[Response]]
StaffEndpoint = Callable[[Request, DashboardUser], Awaitable[Response]]



CRITICAL_SUFFIX = " (critical)"  # how bot.reports names a plan's critical incidents

class _SecurityHeaders:
    """Adds the headers above to every answer; pages (not the static files) are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope["path"]).startswith(f"{scope.get('root_path', '')}/static/")

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers[name] = value
                if not static:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, sending)


@dataclass(frozen=True)
class _TicketData:
    ticket: TicketRecord
    events: list[dict[str, Any]]
    reminders: list[ReminderRecord]
    entries: list[TimeEntryRecord]
    quote: QuoteRecord | None
    lines: list[InvoiceLineRecord]
    accounts: list[str]  # the accounts an unverified ticket can be linked to


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


async def _to_queue(request: Request) -> Response:
    """``/dashboard`` to ``/dashboard/``: a relative redirect, which never names the Host the request gave."""
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"{_base(request)}{PREFIX}/{query}", status_code=307)


def safe_next(base: str, target: str | None) -> str:
    """Where to go after a login or a language change: a dashboard path, never another site."""
    if target and target.startswith(f"{base}/") and "//" not in target and "\\" not in target:
        return target
    return f"{base}/"


class Dashboard:
    """The dashboard's routes for slabot's HTTP app; see the module docstring."""

    def __init__(self, config: DashboardConfig, db: Database, preset: Preset, *, language: Language = "nl",
                 secure_cookies: bool = False, now: Callable[[], datetime] = utc_now,
                 throttle: LoginThrottle | None = None, billing: Billing | None = None,
                 whatsapp_templates: Mapping[str, str] | None = None) -> None:
        if config.secret_key is None:
            raise ValueError("the dashboard needs [dashboard] secret_key")
        self.config = config
        self.db = db
        self.preset = preset
        self.language = language
        self.secure_cookies = secure_cookies
        self.now = now
        self.throttle = throttle or LoginThrottle()
        self.whatsapp_templates = dict(whatsapp_templates or {})
        self.canned = CannedAnswers(db, now)
        self.presence = PresenceBoard()
        # every action on the code path of the staff chat and the command line (bot.desk, bot.billing)
        self.actions = TicketActions(Desk(db, now), billing or Billing(db, preset, now=now, default_language=language),
                                     preset)
        self.users = {user.name.casefold(): user for user in config.users}
        self.zone = next(iter(preset.calendars.values())).zone
        self.soon = timedelta(minutes=config.due_soon_minutes)
        env = Environment(loader=PackageLoader("bot.web.dashboard", "templates"), autoescape=select_autoescape(),
                          undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self.templates = Jinja2Templates(env=env)

    # -- the app --------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """The dashboard mounted at ``/dashboard`` (``/dashboard/`` is the queue)."""
        return [Route(PREFIX, _to_queue, methods=["GET", "HEAD"]), Mount(PREFIX, app=self.asgi())]

    def asgi(self) -> Starlette:
        secret = self.config.secret_key
        assert secret is not None
        app = Starlette(
            routes=[
                Route("/", self._page(self.queue), methods=["GET"]),
                Route("/tickets/{ref}", self._page(self.ticket), methods=["GET"]),
                Route("/tickets/{ref}/act", self._page(self.act), methods=["POST"]),
                Route("/report", self._page(self.report), methods=["GET"]),
                Route("/canned", self._page(self.canned_page), methods=["GET"]),
                Route("/canned", self._page(self.canned_change), methods=["POST"]),
                Route("/report/chart.png", self._api(self.report_chart), methods=["GET"]),
                Route("/api/queue", self._api(self.api_queue), methods=["GET"]),
                Route("/api/live", self._api(self.api_live), methods=["GET"]),
                Route("/login", self.login_form, methods=["GET"]),
                Route("/login", self.login, methods=["POST"]),
                Route("/logout", self.logout, methods=["POST"]),
                Route("/language", self.set_language, methods=["POST"]),
                Mount("/static", app=StaticFiles(packages=[("bot.web.dashboard", "static")])),
            ],
            middleware=[
                Middleware(_SecurityHeaders),
                Middleware(SessionMiddleware, secret_key=secret.get_secret_value(), session_cookie=SESSION_COOKIE,
                           max_age=math.ceil(self.config.session_hours * 3600), path=PREFIX, same_site="lax",
                           https_only=self.secure_cookies),
            ],
        )
        app.router.redirect_slashes = False  # its redirect would name the request's Host: a path it lacks is 404
        return app

    # -- who is asking ----------------------------------------------------------------------------

    async def staff(self, request: Request) -> DashboardUser | None:
        """The logged-in staff member, or None: no login, or one that has ended (expired, revoked, its password
        changed) or whose user is no longer configured."""
        token = request.session.get("session")
        if not isinstance(token, str) or not token:
            return None
        key, now = token_hash(token), self.now()
        found = await asyncio.to_thread(self.db.read_direct, lambda d: DashboardSessionRepository(d).find(key, now))
        user = self.users.get(found.user_name) if found is not None else None
        if found is None or user is None or found.password_tag != password_tag(user.password_hash.get_secret_value()):
            if found is not None:  # a user removed or given a new password: the session ends for good
                await asyncio.to_thread(self.db.run_direct, lambda d: DashboardSessionRepository(d).revoke(key))
            request.session.clear()
            return None
        return user

    def _language(self, request: Request, user: DashboardUser | None) -> Language:
        return pick_language(request.session.get("language"), user.language if user else None,
                             request.headers.get("accept-language"), self.language)

    def _csrf(self, request: Request) -> str:
        token = request.session.get("csrf")
        if not isinstance(token, str) or not token:
            token = new_csrf_token()
            request.session["csrf"] = token
        return token

    def _page(self, handler: StaffEndpoint) -> Endpoint:
        """A page for logged-in staff; anyone else is sent to the login form (and back here after it)."""
        async def endpoint(request: Request) -> Response:
            user = await self.staff(request)
            if user is None:
                wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"{_base(request)}/login?next={quote(wanted, safe='/')}", status_code=303)
            return await handler(request, user)

        return endpoint

    def _api(self, handler: StaffEndpoint) -> Endpoint:
        """A JSON endpoint for logged-in staff; 401 for anyone else."""
        async def endpoint(request: Request) -> Response:
            user = await self.staff(request)
            if user is None:
                return JSONResponse({"error": "login required"}, status_code=401)
            return await handler(request, user)

        return endpoint

    async def _form(self, request: Request) -> dict[str, str] | None:
        """A POST's form fields when its CSRF token is the session's; None otherwise (or when it is no form)."""
        try:
            body = await read_limited(request, MAX_FORM_BYTES)
            form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except (PayloadTooLarge, UnicodeDecodeError):
            return None
        if not csrf_matches(request.session.get("csrf"), form.get(CSRF_FIELD)):
            log.warning("dashboard: refused a %s without the session's CSRF token from %s", request.url.path,
                        request.client.host if request.client else "?")
            return None
        return form

    # -- rendering --------------------------------------------------------------------------------

    def _render(self, request: Request, user: DashboardUser | None, name: str, context: dict[str, Any],
                status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
        language = self._language(request, user)
        now = self.now()
        zone = self.zone
        common: dict[str, Any] = {
            "t": TEXTS[language], "language": language, "languages": LANGUAGES, "base": _base(request),
            "user": user, "csrf": self._csrf(request), "csrf_field": CSRF_FIELD, "server_now": now.isoformat(),
            "soon_seconds": int(self.soon.total_seconds()), "here": request.url.path, "poll_seconds": POLL_SECONDS,
            "when": lambda instant: short_when(instant, language, zone) if instant else "—",
            "long_when": lambda instant: format_when(instant, language, zone) if instant else "—",
            "flash": request.session.pop("flash", None), "flash_error": request.session.pop("flash_error", None),
        }
        return self.templates.TemplateResponse(request, name, common | context, status_code=status_code,
                                               headers=headers)

    def _error(self, request: Request, user: DashboardUser | None, message: str, status_code: int) -> Response:
        return self._render(request, user, "error.html", {"message": message}, status_code)

    def group_title(self, group: str) -> str:
        """A report group (``licentie``, ``premium (critical)``) by its plan's title (``Licentie``)."""
        plan = group.removesuffix(CRITICAL_SUFFIX)
        return (self.plan_title(plan) or plan) + group[len(plan):]

    def plan_title(self, plan: str | None) -> str | None:
        if plan is None:
            return None
        try:
            return self.preset.plan(plan).title
        except PolicyError:
            return plan

    # -- login and logout -------------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        if await self.staff(request) is not None:
            return RedirectResponse(safe_next(_base(request), request.query_params.get("next")), status_code=303)
        return self._login_page(request)

    def _login_page(self, request: Request, error: str | None = None, status_code: int = 200, *,
                    name: str = "", target: str | None = None, headers: dict[str, str] | None = None) -> Response:
        return self._render(request, None, "login.html", {
            "error": error, "name": name, "next": safe_next(_base(request), target or request.query_params.get("next")),
        }, status_code, headers)

    async def login(self, request: Request) -> Response:
        words = TEXTS[self._language(request, None)]
        form = await self._form(request)
        if form is None:
            return self._login_page(request, words["form_expired"], 403)
        name = form.get("name", "").strip()
        client = request.client.host if request.client else "?"  # a trusted proxy's client: see HttpServer
        user = self.users.get(name.casefold())
        account = user.name.casefold() if user else None
        wait = self.throttle.retry_after(account, client)
        if wait > 0:
            log.warning("dashboard: login for %r from %s refused for %.0f s (too many failures)", name[:100], client,
                        wait)
            return self._login_page(request, words["throttled"].format(minutes=math.ceil(wait / 60)), 429,
                                    name=name, target=form.get("next"), headers={"Retry-After": str(math.ceil(wait))})
        password_hash = user.password_hash.get_secret_value() if user else None
        if user is None or not await asyncio.to_thread(verify_password, password_hash, form.get("password", "")):
            self.throttle.failed(account, client)
            log.warning("dashboard: failed login for %r from %s", name[:100], client)
            return self._login_page(request, words["wrong_login"], 401, name=name, target=form.get("next"))
        self.throttle.succeeded(user.name.casefold(), client)
        language = request.session.get("language")
        token, now = new_session_token(), self.now()
        key, account, tag = token_hash(token), user.name.casefold(), password_tag(password_hash or "")
        expires = now + timedelta(hours=self.config.session_hours)
        await asyncio.to_thread(self.db.run_direct,
                                lambda d: DashboardSessionRepository(d).create(key, account, tag, now, expires))
        request.session.clear()  # a new session: nothing from before the login carries over but the language
        request.session.update({"session": token, "csrf": new_csrf_token()})
        if language in LANGUAGES:
            request.session["language"] = language
        log.info("dashboard: %s logged in from %s", user.name, client)
        return RedirectResponse(safe_next(_base(request), form.get("next")), status_code=303)

    async def logout(self, request: Request) -> Response:
        user = await self.staff(request)
        if await self._form(request) is None:
            return self._error(request, user, TEXTS[self._language(request, user)]["form_expired"], 403)
        token = request.session.get("session")
        if isinstance(token, str) and token:  # ended on the server: a copy of the cookie opens nothing
            key = token_hash(token)
            await asyncio.to_thread(self.db.run_direct, lambda d: DashboardSessionRepository(d).revoke(key))
        request.session.clear()
        if user is not None:
            log.info("dashboard: %s logged out", user.name)
        return RedirectResponse(f"{_base(request)}/login", status_code=303)

    async def set_language(self, request: Request) -> Response:
        user = await self.staff(request)
        form = await self._form(request)
        if form is None:
            return self._error(request, user, TEXTS[self._language(request, user)]["form_expired"], 403)
        if form.get("language") in LANGUAGES:
            request.session["language"] = form["language"]
        return RedirectResponse(safe_next(_base(request), form.get("next")), status_code=303)

    # -- pages ------------------------------------------------------------------------------------

    async def _open_queue(self) -> list[TicketRecord]:
        return await asyncio.to_thread(self.db.run, lambda s: TicketRepository(s).queue(TicketState.OPEN))

    async def queue(self, request: Request, user: DashboardUser) -> Response:
        """The open queue in R15's order; with words or filters in the URL, the tickets found, a page at a time."""
        wanted = search_filter(request.query_params, user.name)
        context: dict[str, Any] = {"search": search_form(request.query_params), "page": None,
                                   "plans": [(p.name, p.title) for p in self.preset.plans]}
        if wanted is None:  # R15's order, the answered tickets apart
            tickets = await self._open_queue()
        else:
            now = self.now()
            found = await asyncio.to_thread(self.db.run, lambda s: TicketSearch(s).find(wanted, now, self.soon))
            tickets = found.tickets
            context["page"] = found
            context["page_url"] = lambda number: page_url(request.query_params, number)
        rows = queue_rows(tickets, self.now(), self.soon, self.plan_title)
        if wanted is None:
            rows = answered_apart(rows)
        return self._render(request, user, "queue.html", {"rows": await self._with_subjects(rows, tickets), **context})

    async def _with_subjects(self, rows: list[QueueRow], tickets: list[TicketRecord]) -> list[QueueRow]:
        """A ticket without a subject (WhatsApp, a call) shows the first words of its first message instead."""
        wanted = {t.id: t.ref for t in tickets if not t.subject}
        texts = await asyncio.to_thread(self.db.run, lambda s: TicketSearch(s).first_texts(list(wanted)))
        by_ref = {wanted[i]: excerpt(text) for i, text in texts.items() if text.strip()}
        return [replace(row, subject=by_ref[row.ref]) if row.ref in by_ref else row for row in rows]

    async def api_queue(self, request: Request, user: DashboardUser) -> Response:
        now = self.now()
        rows = answered_apart(queue_rows(await self._open_queue(), now, self.soon, self.plan_title))
        return JSONResponse({"now": now.isoformat(), "tickets": [row.as_json() for row in rows]})

    async def api_live(self, request: Request, user: DashboardUser) -> JSONResponse:
        """The stamp of the ticket ``ref`` (of every ticket without one) and who else has it open."""
        ref = (request.query_params.get("ref") or "").strip().upper()[:30] or None
        stamp = await asyncio.to_thread(self.db.run, lambda s: TicketSearch(s).change_stamp(ref))
        others = [] if ref is None else self.presence.here(ref, user.name, request.query_params.get("typing") == "1",
                                                            self.now())
        return JSONResponse({"stamp": stamp, "others": [{"name": p.name, "typing": p.typing} for p in others]})

    async def ticket(self, request: Request, user: DashboardUser, *, status_code: int = 200,
                     draft: str = "") -> Response:
        ref = request.path_params["ref"]

        def work(s: Session) -> _TicketData | None:
            tickets = TicketRepository(s)
            found = tickets.by_ref(ref, with_messages=True)
            if found is None:
                return None
            billing = BillingRepository(s)
            accounts = ([a.name for a in AccountRepository(s).all()]
                        if found.state == TicketState.UNVERIFIED else [])
            return _TicketData(found, tickets.events(found.id), ReminderRepository(s).for_ticket(found.id),
                               billing.entries(found.id), billing.current_quote(found.id),
                               billing.ticket_lines(found.id), accounts)

        data = await asyncio.to_thread(self.db.run, work)
        language = self._language(request, user)
        words = TEXTS[language]
        if data is None:
            return self._error(request, user, words["not_found"].format(ref=ref), 404)
        pick = request.query_params.get("canned")
        if pick and not draft:  # a canned answer inserted in the reply box, filled from the ticket
            try:
                draft = await asyncio.to_thread(self.canned.for_ticket, pick, ref, user.name)
            except DeskError as exc:
                request.session["flash_error"] = words["not_done"].format(problem=exc)
        names = await asyncio.to_thread(self.canned.names)
        ticket = data.ticket
        hours = sum((entry.hours for entry in data.entries), Decimal(0))
        return self._render(request, user, "ticket.html", {
            "ticket": ticket,
            "row": queue_rows([ticket], self.now(), self.soon, self.plan_title)[0],
            "items": timeline(ticket, data.events, data.reminders, data.entries, data.quote, words, language),
            "lines": invoice_rows(data.lines, language),
            "hours": hours_text(hours, language) if hours else None,
            "open": ticket.state in OPEN_STATES, "draft": draft, "accounts": data.accounts, "canned_names": names,
            "canned_picked": pick or "",
            "staff_names": [u.name for u in self.config.users], "billable": self.preset.billing is not None,
            "window": self._whatsapp_window(ticket),
            "priorities": [(p.name, p.title) for p in self.preset.priorities],
        }, status_code)

    async def canned_page(self, request: Request, user: DashboardUser) -> Response:
        """The canned answers, with a form to add or change one and a button to remove each."""
        answers = await asyncio.to_thread(self.canned.all)
        return self._render(request, user, "canned.html", {"answers": answers})

    async def canned_change(self, request: Request, user: DashboardUser) -> Response:
        """Add, change (``save``) or remove (``remove``) a canned answer; back to the list (303), or the list with
        why not (400)."""
        words = TEXTS[self._language(request, user)]
        form = await self._form(request)
        if form is None:
            return self._error(request, user, words["form_expired"], 403)
        name, language = form.get("name", ""), form.get("language", "")
        try:
            if form.get("action") == "remove":
                await asyncio.to_thread(self.canned.remove, name, language or None)
                request.session["flash"] = words["canned_removed"].format(name=name)
            else:
                await asyncio.to_thread(self.canned.add, name, language, form.get("text", ""), user.name)
                request.session["flash"] = words["canned_saved"].format(name=name.strip().lower())
        except DeskError as exc:
            request.session["flash_error"] = words["not_done"].format(problem=exc)
            return self._render(request, user, "canned.html", {
                "answers": await asyncio.to_thread(self.canned.all)}, 400)
        return RedirectResponse(f"{_base(request)}/canned", status_code=303)

    def _whatsapp_window(self, ticket: TicketRecord) -> dict[str, str | None] | None:
        """For a WhatsApp ticket whose customer wrote last more than 24 hours ago: the approved template the reply
        goes as (None: none configured; the message then comes back to staff). None while free text may go."""
        if ticket.channel != "whatsapp":
            return None
        last = max((msg.at for msg in ticket.messages if msg.direction == "in"), default=None)
        if last is not None and self.now() - last < WHATSAPP_WINDOW:
            return None
        return {"template": self.whatsapp_templates.get("reply") or self.whatsapp_templates.get("default")}

    async def act(self, request: Request, user: DashboardUser) -> Response:
        """A staff action on the ticket (the form's ``action``): done through bot.desk or bot.billing, then the
        ticket page again with what was done (303), or with why not (400, nothing changed)."""
        language = self._language(request, user)
        words = TEXTS[language]
        form = await self._form(request)
        if form is None:
            return self._error(request, user, words["form_expired"], 403)
        ref, action = request.path_params["ref"], form.get("action", "")
        try:
            done = await asyncio.to_thread(self.actions.do, ref, action, form, user.name)
        except ActionError as exc:
            problem = words[exc.key].format(**exc.values)
        except DeskError as exc:
            problem = str(exc)
        else:
            log.info("dashboard: %s did %s on %s", user.name, done.action, done.ref)
            request.session["flash"] = words["done"].format(
                what=ACTION_PHRASES[language][done.action].format(**done.values))
            return RedirectResponse(f"{_base(request)}/tickets/{quote(done.ref)}#timeline", status_code=303)
        request.session["flash_error"] = words["not_done"].format(problem=problem)
        return await self.ticket(request, user, status_code=400, draft=form.get("text", ""))

    def _period(self, request: Request) -> tuple[date, date, str | None]:
        """The report's period and plan from the query (``from``, ``to``, ``plan``); the last four weeks by default.

        Raises ValueError naming the field for a date that is not one or is out of range
        (:func:`bot.reports.report_day`), or a period that ends before it starts or is too long.
        """
        today = self.now().astimezone(self.zone).date()
        given = request.query_params.get("from")
        start = report_day(given, "from") if given else None
        end = report_day(request.query_params.get("to") or today.isoformat(), "to")
        if start is None:
            start = max(end - timedelta(days=REPORT_DAYS - 1), FIRST_DAY)
        check_period(start, end)
        return start, end, request.query_params.get("plan") or None

    async def _load_report(self, start: date, end: date, plan: str | None) -> SlaReport:
        return await asyncio.to_thread(load_report, self.db, start, end, self.now(), zone=self.zone, plan=plan)

    async def report(self, request: Request, user: DashboardUser) -> Response:
        """The SLA report of :mod:`bot.reports` (its plain data) for a period, with its chart."""
        words = TEXTS[self._language(request, user)]
        try:
            start, end, plan = self._period(request)
        except ValueError as exc:
            return self._error(request, user, words["bad_period"].format(problem=exc), 400)
        data = report_data(await self._load_report(start, end, plan))
        for group in data["plans"]:  # the plans by their titles, as the queue shows them
            group["name"] = self.group_title(group["name"])
        for breach in data["breaches"]:
            breach["plan"] = self.group_title(breach["plan"])
        query = urlencode({"from": start.isoformat(), "to": end.isoformat(), **({"plan": plan} if plan else {})})
        return self._render(request, user, "report.html", {
            "report": data, "start": start, "end": end, "plan": plan, "chart_query": query,
            "plans": [(p.name, p.title) for p in self.preset.plans],
            "span": lambda seconds: "—" if seconds is None else span_text(timedelta(seconds=seconds)),
        })

    async def report_chart(self, request: Request, user: DashboardUser) -> Response:
        """The report's chart (PNG), for the same period and plan as the page."""
        try:
            start, end, plan = self._period(request)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        report = await self._load_report(start, end, plan)
        png = await asyncio.to_thread(render_chart, report)
        return Response(png, media_type="image/png")
