"""Benchmark: 1, 2 and 4 ``slabot run`` workers on one PostgreSQL behind a round-robin proxy, one killed -9.

For each worker count W (``--workers 1,2,4``):

- a fresh PostgreSQL schema (``SLABOT_TEST_PG_URL`` or ``--pg-url``; dropped at the end), migrated by the workers
  themselves as they start together (under the migrations' advisory lock);
- W ``slabot run`` processes (``python -m bot.cli run``, real child processes), identical but for their HTTP port,
  with ``[twilio]`` pointed at the Twilio REST stand-in (a process of its own, as in bench_webhook.py), which
  counts every message it is asked to send;
- a small asyncio TCP proxy in this process, the only address the load knows: each new client connection goes to
  the next worker in turn (a worker that refuses the connection is skipped), as nginx's or HAProxy's round robin;
- the load, in this process too: N numbers (each a contact of an account on the plan licentie, imported with
  ``slabot accounts import``), each sending two different WhatsApp messages at the same moment (on
  two connections, so through two workers), and 10% re-deliveries of a recent webhook (same MessageSid, same
  signature), signed as Twilio signs them, over C keep-alive connections at full speed. A request not answered
  200 (cut off by the kill, or refused while no worker was up) is posted again after 50 ms, as Twilio's
  re-delivery and slabot's reconciliation would bring it again, until it is answered 200.

The workers' staff chat is a Telegram Bot API stand-in (a process of its own too), which keeps what it is asked
to post. While the flood runs, the first reminder (75%) of every ticket opened so far is made due, a few times a
second, as the clock would make it due: the workers post the reminders while they take the webhooks, each
reminder claimed by one of them.

Half-way through the flood the last worker is killed with SIGKILL and started again at once (as systemd's
``Restart=always`` does); the others keep taking webhooks. The first round of the worker started again posts the
reminders made due so far, and it is killed once more while it holds a reminder's claim, and started again. After the flood the outbox is drained and the
reminders made due are posted (within the reminders' 15-second poll).

Printed per worker count: the flood's requests answered 200 per second, p50/p99/max latency (each request from
its post to its answer, the re-posts of a cut-off request not counted), the re-posts, and the checks: 0 lost
(every MessageSid stored), 0 stored twice, 0 numbers with two tickets, every acknowledgement sent exactly once
(one per number: the second message of a number joins the ticket the first opened), every reminder made due
posted, once. A reminder a kill left claimed is posted by the worker started again, at once: it sees that the
claimer's process is gone. Telegram cannot be asked what it received, so one whose post reached it in the
instant before the kill is posted twice; the check allows that for those reminders only, and prints them. The
script always exits 0.

On a 2-core machine the load generator, the proxy, the stand-in, PostgreSQL and the workers share two cores: the
figures show what more processes on the same cores give, not what more machines would.

    SLABOT_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python benchmarks/bench_scaleout.py                  # --workers 1,2,4 --numbers 1500
    .venv/bin/python benchmarks/bench_scaleout.py --pg-url postgresql+psycopg://... --workers 2 --numbers 500
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import multiprocessing as mp
import os
import platform
import random
import re
import sys
import tempfile
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for folder in (ROOT, ROOT / "benchmarks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from bench_crash import ACCOUNT_SID, OUR_NUMBER, PUBLIC, TOKEN, WEBHOOK, Slabot, database_figures  # noqa: E402
from bench_webhook import Connection, percentile, standin_main  # noqa: E402

REDELIVERED = 0.10
STAFF_CHAT = -1001
RETRY_PAUSE = 0.05  # seconds before a request not answered 200 is posted again


def number(i: int) -> str:
    return f"+3166{i:07d}"


# -- the round-robin proxy -----------------------------------------------------------------------------------


class RoundRobin:
    """A TCP proxy: each client connection to the next backend port in turn, skipping one that refuses."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self.turn = itertools.cycle(range(len(backends)))
        self.per_backend: collections.Counter[int] = collections.Counter()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for _ in range(len(self.backends)):
            port = self.backends[next(self.turn)]
            try:
                upstream = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue
            self.per_backend[port] += 1
            break
        if upstream is None:  # no worker up: the client sees the connection closed
            writer.close()
            return
        up_reader, up_writer = upstream
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except OSError:
            pass
        finally:
            sink.close()


# -- the staff chat ------------------------------------------------------------------------------------------


def telegram_main(conn: Any) -> None:
    """Serve the Telegram Bot API stand-in until the parent says stop; report the reminders posted."""
    asyncio.run(_telegram(conn))


async def _telegram(conn: Any) -> None:
    import logging

    from bot.demo.standins.loopback import serving
    from bot.demo.standins.telegram import TelegramStandIn

    logging.basicConfig(level=logging.WARNING, format="telegram stand-in %(levelname)s %(name)s: %(message)s")
    standin = TelegramStandIn()
    async with serving(standin.app()) as url:
        conn.send({"url": url, "token": standin.token})
        while not conn.poll():
            await asyncio.sleep(0.05)
        conn.recv()
    posts = [s.text or "" for s in standin.messages_to(STAFF_CHAT)]
    conn.send({"reminders": [t for t in posts if t[:1] in ("\u23f0", "\U0001f6a8")], "posts": len(posts)})


def add_contacts(config: Path, numbers: int) -> None:
    """An account with one contact per number (plan licentie: its tickets have an SLA, and so reminders),
    imported as staff import them: ``slabot accounts import`` of a CSV file."""
    import subprocess

    accounts = config.parent / "accounts.csv"
    accounts.write_text("account,plan,contact,phone\n" + "".join(
        f"Klant {i},licentie,Contact {i},{number(i)}\n" for i in range(numbers)), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "bot.cli", "--config", str(config), "accounts", "import", str(accounts)],
                   cwd=config.parent, check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})


def claims_of(url: str, pid: int, within: float = 0.0) -> list[str]:
    """The tickets whose reminder the worker of process ``pid`` holds claimed; with ``within``, wait at most that
    many seconds for one (so that a kill leaves one behind)."""
    from storage.database import open_database

    db = open_database(url)
    deadline = time.perf_counter() + within
    try:
        while True:
            held = db.read_direct(lambda d: [str(ref) for (ref,) in d.execute(
                "SELECT t.ref FROM reminders r JOIN tickets t ON t.id = r.ticket_id "
                "WHERE r.state = 'claimed' AND r.claimed_by LIKE :me", {"me": f"%:{pid}:%"}).fetchall()])
            if held or time.perf_counter() > deadline:
                return held
    finally:
        db.dispose()


async def make_reminders_due(url: str, stop: asyncio.Event, every: float = 0.3) -> int:
    """Until ``stop``: the 75% reminder of each ticket opened so far made due now; how many were."""
    from storage.database import open_database

    db = open_database(url)
    made = 0
    try:
        while True:
            finished = stop.is_set()
            made += await asyncio.to_thread(db.run_direct, lambda d: int(d.execute(
                "UPDATE reminders SET due_at = now() WHERE spec = '75%' AND state = 'planned' "
                "AND due_at > now()").rowcount))
            if finished:
                return made
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                pass
    finally:
        db.dispose()


# -- the load ----------------------------------------------------------------------------------------------


@dataclass
class Load:
    """Signed webhooks, in the order they go out; what became of them."""

    bodies: list[tuple[str, bytes, bytes]]  # (MessageSid, body, headers)
    latencies: list[float] = field(default_factory=list)
    answered: set[str] = field(default_factory=set)
    reposts: int = 0
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    started: int = 0


def make_load(numbers: int, seed: int) -> tuple[Load, list[str]]:
    """Two messages from each number, one after the other in the queue (two connections take them at once), and
    a re-delivery of a recent webhook after one in ten."""
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(TOKEN)
    rng = random.Random(seed)
    bodies: list[tuple[str, bytes, bytes]] = []
    sids: list[str] = []
    for i in range(numbers):
        for part in "AB":
            sid = f"SM{i:030d}{part}0"
            params = {"MessageSid": sid, "AccountSid": ACCOUNT_SID, "From": f"whatsapp:{number(i)}",
                      "To": OUR_NUMBER, "Body": f"Vraag {i}{part}: de verzendknop werkt niet", "NumMedia": "0"}
            signature = validator.compute_signature(PUBLIC + WEBHOOK, params)
            body = urllib.parse.urlencode(params).encode()
            headers = (b"Content-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: %s\r\n"
                       % signature.encode())
            bodies.append((sid, body, headers))
            sids.append(sid)
            if rng.random() < REDELIVERED:
                bodies.append(bodies[rng.randrange(max(0, len(bodies) - 20), len(bodies))])
    return Load(bodies), sids


async def connection(load: Load, todo: collections.deque[int], port: int, kill_at: int,
                     kill: asyncio.Event) -> None:
    client = Connection(port)
    clock = time.perf_counter
    try:
        while todo:
            index = todo.popleft()
            load.started += 1
            if load.started == kill_at:
                kill.set()
            sid, body, headers = load.bodies[index]
            while True:
                began = clock()
                try:
                    status = await client.post(WEBHOOK, body, headers)
                except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
                    status, what = 0, type(exc).__name__
                else:
                    what = str(status)
                if status == 200:
                    load.latencies.append(clock() - began)
                    load.answered.add(sid)
                    break
                load.failures[what] += 1
                load.reposts += 1
                await asyncio.sleep(RETRY_PAUSE)
    finally:
        await client.close()


# -- one worker count ----------------------------------------------------------------------------------------


def schema_url(base: str, schema: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False)


def figures(url: str) -> dict[str, Any]:
    """Inbound rows per MessageSid and the outbox's states (bench_crash's figures), WhatsApp tickets per number."""
    from sqlalchemy import create_engine

    stored, outbox = database_figures(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tickets = conn.exec_driver_sql("SELECT thread_key, count(*) FROM tickets WHERE channel = 'whatsapp' "
                                           "GROUP BY thread_key").all()
            reminders = conn.exec_driver_sql("SELECT r.state, t.ref FROM reminders r JOIN tickets t "
                                             "ON t.id = r.ticket_id WHERE r.spec = '75%%' AND r.due_at <= now()"
                                             ).all()
    finally:
        engine.dispose()
    return {"stored": stored, "outbox": outbox,
            "tickets": collections.Counter({str(k): int(c) for k, c in tickets}),
            "reminders": collections.Counter(str(state) for state, _ in reminders),
            "due_refs": {str(ref) for _, ref in reminders}}


async def drain(url: str, limit: float) -> tuple[float, dict[str, Any]]:
    began = time.perf_counter()
    while True:
        found = await asyncio.to_thread(figures, url)
        if (not found["outbox"].get("pending") and not found["outbox"].get("sending")
                and not found["reminders"].get("planned") and not found["reminders"].get("claimed")) \
                or time.perf_counter() - began > limit:
            return time.perf_counter() - began, found
        await asyncio.sleep(0.25)


async def run_workers(args: argparse.Namespace, workers: int, url: str, workdir: Path, st_port: int,
                      telegram: dict[str, Any], load: Load) -> dict[str, Any]:
    from bot.demo.standins.loopback import free_port

    slabots: list[Slabot] = []
    for w in range(workers):
        port = free_port()
        config = workdir / f"worker{w}" / "slabot.toml"
        config.parent.mkdir(parents=True)
        config.write_text(
            f'preset = "mailcampaigns"\n[database]\nurl = "{url}"\n'
            f'[http]\nhost = "127.0.0.1"\nport = {port}\npublic_url = "{PUBLIC}"\n'
            f'[twilio]\naccount_sid = "{ACCOUNT_SID}"\nauth_token = "{TOKEN}"\nwhatsapp_from = "{OUR_NUMBER}"\n'
            f'api_base_url = "http://127.0.0.1:{st_port}"\n'
            f'[telegram]\ntoken = "{telegram["token"]}"\nstaff_chat_id = {STAFF_CHAT}\nstaff_user_ids = [7]\n'
            f'api_base_url = "{telegram["url"]}"\n', encoding="utf-8")
        slabots.append(Slabot(config, port, config.parent / "slabot.log"))
    proxy = RoundRobin([s.port for s in slabots])
    proxy_port = await proxy.start()
    restart: list[float] = []
    left: list[str] = []  # tickets whose reminder a killed worker left claimed
    try:
        await asyncio.gather(*(s.start() for s in slabots))  # together: the migrations run once, under the lock
        await asyncio.to_thread(add_contacts, slabots[0].config, args.numbers)
        kill = asyncio.Event()
        victim = slabots[-1]

        async def kill_victim() -> None:
            assert victim.proc is not None
            pid = victim.proc.pid
            victim.kill()
            left.extend(await asyncio.to_thread(claims_of, url, pid))  # the claims it left behind
            restart.append(await victim.start())

        async def killer() -> None:
            await kill.wait()
            await kill_victim()
            # its first round posts the reminders made due so far: killed again while it holds a claim
            assert victim.proc is not None
            if await asyncio.to_thread(claims_of, url, victim.proc.pid, 5.0):
                await kill_victim()

        killing = asyncio.create_task(killer())
        flooded = asyncio.Event()
        due = asyncio.create_task(make_reminders_due(url, flooded))
        todo = collections.deque(range(len(load.bodies)))
        began = time.perf_counter()
        await asyncio.gather(*(connection(load, todo, proxy_port, len(load.bodies) // 2, kill)
                               for _ in range(args.connections)))
        seconds = time.perf_counter() - began
        flooded.set()
        made_due = await due
        await killing
        drained, found = await drain(url, args.drain)
    finally:
        await proxy.stop()
        for s in slabots:
            s.stop()
    logs = "".join(s.log.read_text(encoding="utf-8", errors="replace") for s in slabots)
    return {"seconds": seconds, "drained": drained, "restart": restart, "per_worker": list(proxy.per_backend.values()),
            "migrations": logs.count("Running upgrade  -> "), "made_due": made_due, "left": left,
            "released": sum(int(n) for n in re.findall(r"(\d+) reminder claims of a stopped process released", logs)),
            **found}


def report(workers: int, result: dict[str, Any], load: Load, sids: list[str], acks: collections.Counter[str],
           posted: list[str], numbers: int) -> tuple[float, float]:
    stored: collections.Counter[str] = result["stored"]
    tickets: collections.Counter[str] = result["tickets"]
    ordered = sorted(load.latencies)
    rate = len(load.latencies) / result["seconds"]
    p99 = percentile(ordered, 0.99)
    lost = len(set(sids) - set(stored))
    twice = sum(1 for n in stored.values() if n > 1)
    per_number = [acks.get(f"whatsapp:{number(i)}", 0) for i in range(numbers)]
    two_tickets = sum(1 for n in tickets.values() if n > 1)
    print(f"== {workers} worker{'s' if workers > 1 else ''} ==")
    print(f"    flood: {len(load.bodies):,} webhooks ({len(sids):,} distinct, the rest re-deliveries) in "
          f"{result['seconds']:.1f} s: {rate:,.0f} requests/s answered 200")
    print(f"    latency p50 {percentile(ordered, 0.50) * 1e3:.1f} ms   p99 {p99 * 1e3:.1f} ms   "
          f"max {ordered[-1] * 1e3:.1f} ms")
    print(f"    kill -9 of worker {workers} after {len(load.bodies) // 2:,} webhooks; it answered /healthz again "
          f"{result['restart'][0]:.1f} s later; re-posts of requests not answered 200: {load.reposts:,} "
          f"{dict(load.failures)}")
    again = (f"killed again while it held a reminder's claim, up {result['restart'][1]:.1f} s later"
             if len(result["restart"]) > 1 else "no reminder claim of it seen within 5 s: not killed again")
    print(f"    worker {workers} restarted: its first round posts the reminders made due so far; {again}")
    print(f"    connections per worker through the proxy: {result['per_worker']}; migrations run: "
          f"{result['migrations']} time(s)")
    due_refs: set[str] = result["due_refs"]
    per_ref = collections.Counter(text.split(" ", 2)[1] for text in posted)  # "⏰ MC-10001 (...): ..."
    per_reminder = [per_ref.get(ref, 0) for ref in sorted(due_refs)]
    # a post that reached Telegram in the instant before its worker was killed: posted again after (Telegram
    # cannot be asked what it received; a ping twice rather than none)
    posted_twice = [ref for ref in sorted(due_refs) if per_ref.get(ref, 0) > 1]
    print(f"    outbox {dict(sorted(result['outbox'].items()))}, reminders made due {result['made_due']:,} "
          f"{dict(sorted(result['reminders'].items()))}; claims left by the kills {len(result['left'])}, released at "
          f"once {result['released']}; "
          f"drained {result['drained']:.1f} s after the flood")
    checks = [
        ("0 lost", lost == 0, f"{len(set(sids) & set(stored)):,} of {len(sids):,} stored"),
        ("0 stored twice", twice == 0, f"{twice}"),
        ("0 numbers with two tickets", two_tickets == 0 and len(tickets) == numbers,
         f"{len(tickets):,} numbers with a ticket, {two_tickets} with more than one"),
        ("every acknowledgement sent once", all(n == 1 for n in per_number),
         f"{sum(n == 1 for n in per_number):,} once, {sum(n > 1 for n in per_number)} more often, "
         f"{sum(n == 0 for n in per_number)} never"),
        ("every reminder made due posted once (twice only where a kill left its claim)",
         len(due_refs) == result["made_due"] > 0 and all(n >= 1 for n in per_reminder)
         and set(posted_twice) <= set(result["left"]) and all(per_ref[ref] == 2 for ref in posted_twice),
         f"{result['made_due']:,} made due, {sum(n == 1 for n in per_reminder):,} posted once, "
         f"{len(posted_twice)} twice {posted_twice} (claims left by the kills: {sorted(result['left'])}), "
         f"{sum(n == 0 for n in per_reminder)} never"),
    ]
    for name, ok, detail in checks:
        print(f"    {'PASS' if ok else 'FAIL'}  {name}: {detail}")
    print()
    return rate, p99


async def one_count(args: argparse.Namespace, workers: int, st_port: int, st_conn: Any,
                    tg_conn: Any) -> tuple[float, float]:
    from sqlalchemy import create_engine

    admin = create_engine(args.pg_url)
    schema = f"scaleout_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        load, sids = make_load(args.numbers, args.seed + workers)
        with tempfile.TemporaryDirectory(prefix="bench_scaleout_") as tmp:
            telegram = tg_conn.recv()
            result = await run_workers(args, workers, schema_url(args.pg_url, schema), Path(tmp), st_port, telegram,
                                       load)
        st_conn.send("count")
        acks = collections.Counter(st_conn.recv()["to"])
        tg_conn.send("stop")
        if not tg_conn.poll(30):
            raise SystemExit("the Telegram stand-in did not report")
        posted = list(tg_conn.recv()["reminders"])
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()
    return report(workers, result, load, sids, acks, posted, args.numbers)


async def bench(args: argparse.Namespace) -> list[tuple[int, float, float]]:
    ctx = mp.get_context("spawn")
    out: list[tuple[int, float, float]] = []
    for workers in args.workers:
        st_parent, st_child = ctx.Pipe()
        tg_parent, tg_child = ctx.Pipe()
        standin = ctx.Process(target=standin_main, args=(st_child,), name="twilio-standin")
        chat = ctx.Process(target=telegram_main, args=(tg_child,), name="telegram-standin")
        standin.start()
        chat.start()
        try:
            if not st_parent.poll(60) or not tg_parent.poll(60):
                raise SystemExit("the stand-ins did not start within 60 s")
            st_port = st_parent.recv()["port"]
            rate, p99 = await one_count(args, workers, st_port, _StopToCount(st_parent), tg_parent)
            out.append((workers, rate, p99))
        finally:
            for process in (standin, chat):
                process.join(30)
                if process.is_alive():
                    process.kill()
    return out


class _StopToCount:
    """The stand-in reports what it was asked to send when it is told to stop: "count" stops it."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def send(self, _what: str) -> None:
        self.conn.send("stop")

    def recv(self) -> dict[str, Any]:
        if not self.conn.poll(30):
            raise SystemExit("the Twilio stand-in did not report")
        return dict(self.conn.recv())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated (default 1,2,4)")
    parser.add_argument("--numbers", type=int, default=1500, help="numbers, each sending two messages at once")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--drain", type=float, default=120.0, help="seconds the outbox may take to drain")
    parser.add_argument("--pg-url", default=os.environ.get("SLABOT_TEST_PG_URL"),
                        help="PostgreSQL (default: SLABOT_TEST_PG_URL)")
    args = parser.parse_args()
    if not args.pg_url:
        parser.error("needs PostgreSQL: --pg-url or SLABOT_TEST_PG_URL")
    args.workers = [int(w) for w in args.workers.split(",")]
    print(f"bench_scaleout: Python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"  {args.numbers:,} numbers x 2 simultaneous messages + {REDELIVERED:.0%} re-deliveries, "
          f"{args.connections} connections through a round-robin proxy; one worker killed -9 half-way; seed "
          f"{args.seed}")
    print()
    results = asyncio.run(bench(args))
    print("Summary: requests/s answered 200 (p99)")
    base = results[0][1] if results else 0.0
    for workers, rate, p99 in results:
        print(f"    {workers} worker{'s' if workers > 1 else ' '}  {rate:>7,.0f} requests/s  p99 {p99 * 1e3:7.1f} ms  "
              f"x{rate / base:.2f} of {results[0][0]} worker{'s' if results[0][0] > 1 else ''}")


if __name__ == "__main__":
    main()
