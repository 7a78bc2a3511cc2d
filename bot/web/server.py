"""slabot's HTTP app and server: /healthz beside the routes of every part that is on, served by uvicorn.

:class:`HttpServer` is a component of :mod:`bot.app`: ``start`` binds and begins serving, failing at once
when the address cannot be bound; ``stop`` stops taking requests and finishes those in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from bot.errors import StartupError
from bot.lifecycle import Health, reason_of


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the application owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _masked(value: Any, mask: Callable[[str], str]) -> Any:
    """Every string in a JSON value passed through ``mask``."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {key: _masked(item, mask) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item, mask) for item in value]
    return value


LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")  # the machine itself: its monitoring asks for /healthz


def allowed_hosts(*urls: str | None) -> list[str] | None:
    """The Host names slabot answers: those of the public URLs given, and the machine itself; None (every
    host) when no public URL is given."""
    hosts = [host for host in (urlsplit(url).hostname for url in urls if url) if host]
    return [*dict.fromkeys([*hosts, *LOCAL_HOSTS])] if hosts else None


def health_route(health: Health, ping: Callable[[], Awaitable[None]],
                 mask: Callable[[str], str] = str) -> Route:
    """``GET /healthz``: the database and every channel; 200 when nothing is down, else 503.

    It answers without a login, so every reason in it goes through ``mask`` (the config's
    :class:`bot.config.Masker`): a library's error may quote a token or a password.
    """

    async def healthz(request: Request) -> JSONResponse:
        database: dict[str, Any] = {"state": "up"}
        try:
            await ping()
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            database = {"state": "down", "reason": reason_of(exc)}
        channels = {name: state.as_json() for name, state in sorted(health.channels.items())}
        ok = database["state"] == "up" and all(c["state"] != "down" for c in channels.values())
        body = {"status": "ok" if ok else "degraded", "database": database, "channels": channels}
        return JSONResponse(_masked(body, mask), status_code=200 if ok else 503)

    return Route("/healthz", healthz, methods=["GET"])


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port``, made as asyncio makes its own: its protocol named
    (``IPPROTO_TCP``), so every connection it accepts gets TCP_NODELAY. Without it a keep-alive client waits for
    its delayed ACK (40 ms) before the body that follows a response's headers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


def listen_problem(host: str, port: int, exc: OSError) -> str:
    """Why slabot cannot listen on ``host:port``, and what to do, in one line."""
    where = f"cannot listen on {host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (f"{where}: the port is in use (another slabot, or another program); stop it, or set another "
                f"[http] port (SLABOT_HTTP_PORT)")
    if exc.errno == errno.EACCES:
        return f"{where}: not allowed (ports below 1024 need privileges); set [http] port to 1024 or above"
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return f"{where}: this machine has no such address; check [http] host"
    return f"{where}: {exc.strerror or exc}; check [http] host and port"


class HttpServer:
    """The HTTP app on ``host:port`` (port 0: any free one, see :attr:`port`)."""

    name = "http"

    def __init__(self, routes: Sequence[BaseRoute], host: str, port: int, *,
                 died: Callable[[str, BaseException], None] | None = None,
                 trusted_proxies: Sequence[str] = (), allowed_hosts: Sequence[str] | None = None) -> None:
        """``trusted_proxies``: the peers whose X-Forwarded-For names the client (uvicorn's
        ``forwarded_allow_ips``); from any other peer the header is ignored. ``allowed_hosts``: the Host names
        answered (400 for any other); None answers every host. No redirect ever names the request's Host: a
        path that lacks its slash is 404, not redirected to http://HOST/..."""
        middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts), www_redirect=False)
                      ] if allowed_hosts is not None else []
        self.app = Starlette(routes=list(routes), middleware=middleware)
        self.app.router.redirect_slashes = False
        self.host = host
        self.server = QuietServer(uvicorn.Config(
            self.app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
            timeout_graceful_shutdown=5, proxy_headers=bool(trusted_proxies),
            forwarded_allow_ips=",".join(trusted_proxies) or None, server_header=False))
        self._configured_port = port
        self._died = died  # told when the server ends on its own while slabot runs
        self._stopping = False
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen on the address first (a taken port is a :class:`StartupError` naming it), then serve."""
        try:
            sock = listening_socket(self.host, self._configured_port)
        except OSError as exc:
            raise StartupError(listen_problem(self.host, self._configured_port, exc)) from None
        self._serving = asyncio.create_task(self.server.serve(sockets=[sock]), name="http")
        while not self.server.started and not self._serving.done():
            await asyncio.sleep(0.02)
        if self._serving.done():
            with contextlib.suppress(Exception, SystemExit):  # uvicorn has logged why (the address is taken)
                self._serving.result()
            raise RuntimeError(f"the HTTP server could not start on {self.host}:{self._configured_port}")
        self._serving.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self._died is not None and not self._stopping and not task.cancelled():
            self._died(self.name, task.exception() or RuntimeError("the HTTP server ended"))

    async def stop(self) -> None:
        if self._serving is None:
            return
        self._stopping = True
        self.server.should_exit = True
        with contextlib.suppress(Exception, SystemExit):  # a server that failed has said why in the log
            await self._serving

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0 in tests)."""
        for server in self.server.servers or ():
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return self._configured_port
