"""Benchmark: kill -9 of ``slabot run`` in a flood of signed WhatsApp webhooks; nothing lost, nothing twice.

Three kinds of process:

- ``slabot run`` itself (``python -m bot.cli run``, a real child process), on a fresh SQLite file in a
  temporary directory (or ``--db-url``, e.g. a PostgreSQL schema), with ``[twilio]`` pointed at the stand-in;
- the Twilio REST stand-in (``bot.demo.standins.twilio``), in a process of its own so that it outlives every
  kill, as Twilio does; at the end it reports every message it was asked to send;
- this process: the load, the kills, the checks.

N webhooks, each from a number of its own (so each opens a ticket and gets one acknowledgement), signed as
Twilio signs them, are posted at full speed over a few keep-alive connections. K times, at a random moment of the
flood, slabot is killed with SIGKILL and started again at once (the connections wait for it; what they had in
flight is cut off). A webhook that was not answered 200 (cut off by the kill) is posted again afterwards, as Twilio's reconciliation would
(Twilio does not retry a webhook itself), until every one has been answered 200. Then the outbox is drained.

Printed: webhooks answered 200, stored (distinct MessageSids among the inbound messages), stored twice; the
acknowledgements the stand-in was asked to send, per number: once, twice, never; the outbox's states; how many
rows a restart found left ``sending`` and reconciled. Targets (for 5,000 webhooks and 3 kills): 0 lost, 0 stored
twice, 0 acknowledgements twice, 0 never. PASS/FAIL is printed; the script always exits 0.

    .venv/bin/python benchmarks/bench_crash.py                       # --webhooks 5000 --kills 3
    .venv/bin/python benchmarks/bench_crash.py --webhooks 1000 --kills 5 --seed 7
    .venv/bin/python benchmarks/bench_crash.py --db-url 'postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dcrash'
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import multiprocessing as mp
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TOKEN = "crash-auth-token"
ACCOUNT_SID = "AC" + "c" * 32
PUBLIC = "https://support.example.nl"
WEBHOOK = "/webhooks/twilio/whatsapp"
OUR_NUMBER = "whatsapp:+31634890878"


def number(i: int) -> str:
    return f"+3165{i:07d}"


def inbound_sid(i: int) -> str:
    """The MessageSid of webhook ``i``: "in" is no hex, so it never equals a sid the Twilio stand-in gives the
    messages slabot sends (slabot drops an inbound message with the id of one it sent as its own)."""
    return f"SMin{i:030d}"


# -- slabot run ------------------------------------------------------------------------------------------------


class Slabot:
    """``slabot run`` as a child process."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config, self.port, self.log = config, port, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    async def start(self) -> float:
        """Start it and wait for /healthz; the seconds that took."""
        import httpx

        began = time.perf_counter()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "--config", str(self.config), "run"], cwd=self.config.parent,
                stdout=log, stderr=log, env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"})
        self.starts += 1
        async with httpx.AsyncClient() as client:
            while time.perf_counter() - began < 60:
                if self.proc.poll() is not None:
                    raise SystemExit(f"slabot run exited with {self.proc.returncode}; see {self.log}")
                try:
                    if (await client.get(f"http://127.0.0.1:{self.port}/healthz")).status_code == 200:
                        return time.perf_counter() - began
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise SystemExit("slabot run did not answer /healthz within 60 s")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


# -- the flood -------------------------------------------------------------------------------------------------


class Flood:
    """Signed webhooks posted at full speed; kills at the chosen counts; what was answered 200."""

    def __init__(self, port: int, n: int, connections: int, kill_at: list[int], slabot: Slabot) -> None:
        from twilio.request_validator import RequestValidator

        self.port, self.n, self.connections, self.slabot = port, n, connections, slabot
        self.kill_at = sorted(kill_at)
        self.validator = RequestValidator(TOKEN)
        self.answered: set[str] = set()
        self.statuses: collections.Counter[str] = collections.Counter()
        self.started = 0
        self.restart_seconds: list[float] = []
        self.up = asyncio.Event()  # cleared while slabot restarts: the other connections wait (what they had in
        self.up.set()              # flight at the kill is cut off, and posted again afterwards)

    def params(self, i: int) -> tuple[dict[str, str], str]:
        params = {"MessageSid": inbound_sid(i), "AccountSid": ACCOUNT_SID, "From": f"whatsapp:{number(i)}",
                  "To": OUR_NUMBER, "Body": f"Vraag {i}: de verzendknop werkt niet", "NumMedia": "0"}
        return params, self.validator.compute_signature(PUBLIC + WEBHOOK, params)

    async def post(self, client: Any, i: int) -> None:
        import httpx

        params, signature = self.params(i)
        try:
            answer = await client.post(WEBHOOK, data=params, headers={"X-Twilio-Signature": signature})
            status = str(answer.status_code)
        except httpx.TransportError as exc:
            status = type(exc).__name__
        self.statuses[status] += 1
        if status == "200":
            self.answered.add(params["MessageSid"])

    async def worker(self, todo: collections.deque[int]) -> None:
        import httpx

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=10) as client:
            while todo:
                await self.up.wait()
                i = todo.popleft()
                self.started += 1
                if self.kill_at and self.started >= self.kill_at[0]:
                    self.kill_at.pop(0)
                    self.up.clear()
                    self.slabot.kill()  # at a random moment: webhooks in flight, acknowledgements being sent
                    self.restart_seconds.append(await self.slabot.start())
                    self.up.set()
                await self.post(client, i)

    async def run(self, indexes: list[int]) -> float:
        began = time.perf_counter()
        todo = collections.deque(indexes)
        await asyncio.gather(*(self.worker(todo) for _ in range(self.connections)))
        return time.perf_counter() - began


# -- the database ----------------------------------------------------------------------------------------------


def database_figures(url: str) -> tuple[collections.Counter[str], dict[str, int]]:
    """Inbound WhatsApp rows per MessageSid, and the outbox's states."""
    from storage.database import open_database
    from storage.direct import Direct

    db = open_database(url)

    def work(d: Direct) -> tuple[collections.Counter[str], dict[str, int]]:
        rows = d.execute("SELECT external_id, count(*) FROM messages WHERE channel = 'whatsapp' "
                         "AND direction = 'in' GROUP BY external_id").fetchall()
        outbox = d.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall()
        return collections.Counter({str(s): int(c) for s, c in rows}), {str(s): int(c) for s, c in outbox}

    try:
        return db.read_direct(work)
    finally:
        db.dispose()


async def drain(url: str, limit: float) -> tuple[float, dict[str, int]]:
    began = time.perf_counter()
    while True:
        _, outbox = await asyncio.to_thread(database_figures, url)
        if not outbox.get("pending") and not outbox.get("sending"):
            return time.perf_counter() - began, outbox
        if time.perf_counter() - began > limit:
            return time.perf_counter() - began, outbox
        await asyncio.sleep(0.2)


# -- main ------------------------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, workdir: Path, st_port: int) -> dict[str, Any]:
    from bot.demo.standins.loopback import free_port

    port = free_port()
    url = args.db_url or f"sqlite:///{workdir / 'slabot.db'}"
    config = workdir / "slabot.toml"
    config.write_text(
        f'preset = "mailcampaigns"\n[database]\nurl = "{url}"\n'
        f'[http]\nhost = "127.0.0.1"\nport = {port}\npublic_url = "{PUBLIC}"\n'
        f'[twilio]\naccount_sid = "{ACCOUNT_SID}"\nauth_token = "{TOKEN}"\nwhatsapp_from = "{OUR_NUMBER}"\n'
        f'api_base_url = "http://127.0.0.1:{st_port}"\n', encoding="utf-8")
    rng = random.Random(args.seed)
    kill_at = sorted(rng.sample(range(args.webhooks // 20, args.webhooks), args.kills))
    slabot = Slabot(config, port, workdir / "slabot.log")
    await slabot.start()
    flood = Flood(port, args.webhooks, args.connections, kill_at, slabot)
    try:
        seconds = await flood.run(list(range(args.webhooks)))
        first_statuses = dict(flood.statuses)
        rounds = 0
        while len(flood.answered) < args.webhooks and rounds < 10:  # resend what was not answered 200
            rounds += 1
            missing = [i for i in range(args.webhooks) if inbound_sid(i) not in flood.answered]
            await flood.run(missing)
        drained, outbox = await drain(url, args.drain)
    finally:
        slabot.stop()
    stored, _ = await asyncio.to_thread(database_figures, url)
    return {"url": url, "kill_at": kill_at, "seconds": seconds, "first_statuses": first_statuses,
            "resent": flood.statuses.total() - args.webhooks, "rounds": rounds, "answered": len(flood.answered),
            "stored": stored, "drained": drained, "outbox": outbox, "restarts": flood.restart_seconds,
            "log": (workdir / "slabot.log").read_text(encoding="utf-8", errors="replace")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webhooks", type=int, default=5000, help="webhooks, each from a number of its own")
    parser.add_argument("--kills", type=int, default=3, help="kill -9 of slabot run during the flood")
    parser.add_argument("--connections", type=int, default=4, help="concurrent keep-alive connections")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--drain", type=float, default=300.0, help="seconds the outbox may take to drain")
    parser.add_argument("--db-url", help="the database (default: a fresh SQLite file)")
    args = parser.parse_args()

    print(f"bench_crash: Python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"  {args.webhooks} webhooks on {args.connections} connections, {args.kills} kill -9 at random moments, "
          f"seed {args.seed}")
    from bench_webhook import (
        standin_main,  # the Twilio stand-in in a process of its own, as bench_webhook runs it
    )

    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench_crash_") as tmp:
        st_parent, st_child = ctx.Pipe()
        standin = ctx.Process(target=standin_main, args=(st_child,), name="twilio-standin")
        standin.start()
        try:
            if not st_parent.poll(60):
                raise SystemExit("the Twilio stand-in did not start within 60 s")
            result = asyncio.run(bench(args, Path(tmp), st_parent.recv()["port"]))
        finally:
            st_parent.send("stop")
            sent_to = st_parent.recv()["to"] if st_parent.poll(30) else None
            standin.join(30)
            if standin.is_alive():
                standin.kill()
    if sent_to is None:
        raise SystemExit("the Twilio stand-in did not report")

    sids = {inbound_sid(i) for i in range(args.webhooks)}
    stored: collections.Counter[str] = result["stored"]
    acks = collections.Counter(sent_to)
    per_number = [acks.get(f"whatsapp:{number(i)}", 0) for i in range(args.webhooks)]
    once, twice, never = (sum(1 for n in per_number if n == 1), sum(1 for n in per_number if n >= 2),
                          sum(1 for n in per_number if n == 0))
    lost = len(sids - set(stored))
    stored_twice = sum(1 for n in stored.values() if n > 1)
    reconciled = result["log"].count("reconciling it")
    print(f"  kills after webhook {', '.join(map(str, result['kill_at']))}; restarts took "
          f"{', '.join(f'{s:.1f} s' for s in result['restarts'])}")
    print(f"  the flood: {result['seconds']:.1f} s, answers {result['first_statuses']}")
    print(f"  resent (not answered 200): {result['resent']} in {result['rounds']} round(s)")
    print()
    print(f"  answered 200            {result['answered']:>6} of {args.webhooks}")
    print(f"  stored                  {len(set(stored) & sids):>6}   (lost {lost})")
    print(f"  stored twice            {stored_twice:>6}")
    if lost:
        print(f"  lost: {', '.join(sorted(sids - set(stored))[:10])}")
    print(f"  acknowledgements sent once  {once:>6}")
    print(f"  acknowledgements sent twice {twice:>6}")
    print(f"  acknowledgements never sent {never:>6}")
    print(f"  outbox {dict(sorted(result['outbox'].items()))}, drained {result['drained']:.1f} s after the last "
          f"webhook; rows found left sending and reconciled on a restart: {reconciled}")
    print()
    checks = [("0 lost", lost == 0), ("0 stored twice", stored_twice == 0), ("0 acknowledgements twice", twice == 0),
              ("0 acknowledgements never sent", never == 0)]
    for name, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")


if __name__ == "__main__":
    main()
