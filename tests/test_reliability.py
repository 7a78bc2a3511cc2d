"""Reliability against kill -9: ``slabot run`` in a process of its own, killed in the middle of sending an
acknowledgement, then started again; every acknowledgement is delivered exactly once. Runs alone with
``pytest tests/test_reliability.py``, on SQLite and PostgreSQL.

WhatsApp: the Twilio REST stand-in (served in this process, so it outlives every kill) either holds a send before
Twilio takes it (killed then, Twilio has nothing: the restarted slabot sends it) or takes it and answers late
(killed then, Twilio has it: the restarted slabot finds it in Twilio's list and does not send it again). E-mail:
the SMTP sink takes the mail and answers late; the restarted slabot sends it again with the same Message-ID,
which the receiving side takes as the same mail.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from helpers import free_port, until
from twilio.request_validator import RequestValidator

from bot.demo.standins.twilio import TwilioStandIn
from bot.web.server import QuietServer
from storage.database import Database, open_database
from storage.records import OutboxState
from storage.repositories import OutboxRepository

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "reliability-token"
PUBLIC = "https://support.example.nl"
WEBHOOK = "/webhooks/twilio/whatsapp"
OUR_NUMBER = "whatsapp:+31634890878"


class Slabot:
    """``slabot run`` as a child process: started, killed with SIGKILL, started again."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config, self.port, self.log = config, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "--config", str(self.config), "run"], cwd=self.config.parent,
                stdout=log, stderr=log, env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"})
        async with httpx.AsyncClient() as client:
            async def healthy() -> bool:
                assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
                try:
                    return (await client.get(f"http://127.0.0.1:{self.port}/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await until(healthy, timeout=30, what="slabot run to answer /healthz")

    def kill(self) -> None:
        """kill -9, and reap the process (so its id is free, as after a real crash)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@asynccontextmanager
async def served(app: Any) -> AsyncIterator[int]:
    """``app`` on a loopback port of its own, in this process's event loop."""
    server = QuietServer(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                                        timeout_graceful_shutdown=1))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the stand-in did not start"
        await asyncio.sleep(0.01)
    try:
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        await task


def outbox_states(url: str) -> Counter[str]:
    db = open_database(url)
    try:
        return Counter(row.state.value for row in db.run(lambda s: OutboxRepository(s).all()))
    finally:
        db.dispose()


async def drained(url: str, expected: int) -> Counter[str]:
    """Wait until ``expected`` outbox rows are all sent; their states."""
    async def done() -> bool:
        states = await asyncio.to_thread(outbox_states, url)
        return states == Counter({OutboxState.SENT.value: expected})

    await until(done, timeout=30, what=f"{expected} outbox rows sent")
    return await asyncio.to_thread(outbox_states, url)


def config_file(tmp_path: Path, db_url: str, port: int, extra: str) -> Path:
    config = tmp_path / "slabot.toml"
    config.write_text(f'preset = "mailcampaigns"\n[database]\nurl = "{db_url}"\n'
                      f'[http]\nhost = "127.0.0.1"\nport = {port}\npublic_url = "{PUBLIC}"\n{extra}',
                      encoding="utf-8")
    return config


def test_whatsapp_acknowledgements_are_delivered_once_across_kills_mid_send(tmp_path: Path, db_url: str) -> None:
    standin = TwilioStandIn()
    numbers = [f"+3161000000{i}" for i in range(4)]

    async def main() -> None:
        async with served(standin.app()) as st_port:
            port = free_port()
            config = config_file(tmp_path, db_url, port, (
                f'[twilio]\naccount_sid = "AC{"0" * 32}"\nauth_token = "{TOKEN}"\n'
                f'whatsapp_from = "{OUR_NUMBER}"\napi_base_url = "http://127.0.0.1:{st_port}"\n'))
            slabot = Slabot(config, port, tmp_path / "slabot.log")
            standin.hold_next(60)  # the first send: killed before Twilio takes it
            await slabot.start()
            try:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                    for i, number in enumerate(numbers):
                        params = {"MessageSid": f"SM{i:032d}", "From": f"whatsapp:{number}", "To": OUR_NUMBER,
                                  "Body": f"Vraag nummer {i}", "NumMedia": "0"}
                        signature = RequestValidator(TOKEN).compute_signature(PUBLIC + WEBHOOK, params)
                        answer = await client.post(WEBHOOK, data=params, headers={"X-Twilio-Signature": signature})
                        assert answer.status_code == 200
                await until(lambda: standin.held == 1, timeout=10, what="a send held by the stand-in")
                slabot.kill()
                assert standin.sent == []
                # the send that was cut off is made again after the restart: Twilio takes it and answers late
                standin.slow_next(60)
                await slabot.start()
                await until(lambda: len(standin.sent) == 1, timeout=10, what="the first send taken by Twilio")
                slabot.kill()
                await slabot.start()
                await drained(db_url, len(numbers))
            finally:
                slabot.stop()
        log = (tmp_path / "slabot.log").read_text()
        assert log.count("reconciling it") == 2, log

    asyncio.run(main())
    per_number = Counter(record["to"] for record in standin.sent)
    assert per_number == Counter({f"whatsapp:{n}": 1 for n in numbers})  # each once: none lost, none twice


def test_an_email_acknowledgement_cut_off_by_a_kill_is_sent_again_as_the_same_mail(tmp_path: Path,
                                                                                   db_url: str) -> None:
    from helpers import run_cli
    from smtpsink import smtp_sink

    async def main() -> None:
        with smtp_sink() as (sink, smtp_port):
            port = free_port()
            config = config_file(tmp_path, db_url, port, (
                f'[email]\nsmtp_host = "127.0.0.1"\nsmtp_port = {smtp_port}\nsmtp_security = "none"\n'
                'from_address = "support@mailcampaigns.example"\n'))
            mail = tmp_path / "vraag.eml"
            mail.write_bytes(b"From: Piet <piet@bakkerij.example>\r\nTo: support@mailcampaigns.example\r\n"
                             b"Subject: Vraag\r\nMessage-ID: <vraag-1@bakkerij.example>\r\n\r\nDe knop werkt niet.\r\n")
            code, _, err = await asyncio.to_thread(run_cli, "--config", str(config), "ingest", "email", str(mail))
            assert code == 0, err
            slabot = Slabot(config, port, tmp_path / "slabot.log")
            sink.answer_after(60)  # takes the mail, answers late: killed before slabot hears it arrived
            await slabot.start()
            try:
                await until(lambda: len(sink.envelopes) == 1, timeout=10, what="the mail taken by the sink")
                slabot.kill()
                await slabot.start()
                await drained(db_url, 1)
            finally:
                slabot.stop()
            ids = [str(mail["Message-ID"]) for mail in sink.mails]
            assert len(ids) == 2 and ids[0] == ids[1] and "@mailcampaigns.example>" in ids[0], ids

    asyncio.run(main())


def test_a_row_claimed_by_a_live_worker_of_this_host_is_left_alone(db: Database) -> None:
    """The other side of "its worker is gone": a process of this host that still runs keeps its row."""
    from bot.leases import worker_gone, worker_name

    me = worker_name()
    host = me.split(":")[0]
    assert not worker_gone(me, me)
    assert not worker_gone(f"{host}:{os.getppid()}:00000000", me)  # the parent process runs
    assert worker_gone(f"{host}:{os.getpid()}:00000000", me)  # this process id, another worker: it was before
    assert not worker_gone(f"elsewhere:{os.getpid()}:00000000", me)  # another host: the lease decides
    assert not worker_gone("slabot", me)  # a name from before: the lease decides
