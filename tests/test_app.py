"""`slabot run`: one lifecycle for HTTP, outbox and channels; /healthz; clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import free_port, wait_for_health


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_run_without_credentials_starts_reports_and_stops(tmp_path: Path, stop_signal: signal.Signals) -> None:
    port = free_port()
    example = (Path(__file__).resolve().parent.parent / "config.example.toml").read_text(encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(example.replace('url = "sqlite:///slabot.db"', f'url = "sqlite:///{tmp_path}/slabot.db"')
                      .replace("port = 8080", f"port = {port}"), encoding="utf-8")
    exe = Path(sys.executable).parent / "slabot"
    proc = subprocess.Popen([str(exe), "--config", str(config), "run"], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        health = wait_for_health(port, proc)
        assert health["status"] == "ok"
        assert health["database"] == {"state": "up"}
        channels = health["channels"]
        assert isinstance(channels, dict)
        assert {name: c["state"] for name, c in channels.items()} == {
            "email": "off", "telegram": "off", "whatsapp": "off"}
        assert "twilio" in channels["whatsapp"]["reason"]
        started = time.monotonic()
        proc.send_signal(stop_signal)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "channel whatsapp: off" in err and "channel email: off" in err and "channel telegram: off" in err
    assert "slabot stopped" in err
    assert (tmp_path / "slabot.db").exists()


def test_a_part_that_dies_stops_the_application(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A background part ending with an error is not left dead while slabot runs on: the root stops the rest
    in reverse order and says which part died."""
    import asyncio

    from bot.app import Application
    from bot.config import load_config
    from bot.outbox import OutboxDispatcher

    async def broken(self: OutboxDispatcher, stop: asyncio.Event, interval: float = 1.0) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(OutboxDispatcher, "run", broken)
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/slabot.db"\n[http]\nhost = "127.0.0.1"\nport = 0\n',
                      encoding="utf-8")
    app = Application(load_config(str(config)))

    async def main() -> None:
        await asyncio.wait_for(app.run(asyncio.Event()), timeout=20)

    with pytest.raises(RuntimeError, match="outbox stopped unexpectedly: OSError: disk gone"):
        asyncio.run(main())
    assert app.server is not None and app.server.server.should_exit  # the HTTP server was stopped too


def test_the_http_server_sends_each_answer_at_once_on_a_kept_alive_connection() -> None:
    """Every accepted connection has TCP_NODELAY: a response's body does not wait for the client's delayed ACK
    of its headers (40 ms a request on a kept-alive connection, as Twilio and proxies keep them)."""
    import asyncio
    import socket

    import httpx

    from bot.lifecycle import Health
    from bot.web.server import HttpServer, health_route

    async def main() -> list[int]:
        async def ping() -> None:
            return None

        server = HttpServer([health_route(Health(), ping)], "127.0.0.1", 0)
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
                for _ in range(3):
                    assert (await client.get("/healthz")).status_code == 200
            (listener,) = [s for srv in server.server.servers for s in srv.sockets]
            return [listener.proto, listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)]
        finally:
            await server.stop()

    proto, nodelay = asyncio.run(main())
    assert proto == socket.IPPROTO_TCP and nodelay != 0  # asyncio sets TCP_NODELAY on what a TCP listener accepts
