"""Benchmark: signed WhatsApp webhooks over real HTTP into a running slabot, on loopback.

Four processes:

- the server: slabot's ``Application`` (SQLite file in a temporary directory,
  uvicorn on 127.0.0.1, the outbox dispatcher) with ``[twilio]`` pointed at the
  local ``TwilioStandIn``, so acknowledgements really go out over HTTP; the
  database holds a few hundred known contacts;
- the Twilio REST stand-in, in a process of its own: in production Twilio is
  remote, so what it costs to answer the sends is not slabot's (served in the
  server's own event loop it took CPU from the webhooks);
- the load generator (``multiprocessing``): WhatsApp webhooks signed as Twilio
  signs them (``RequestValidator`` over the public URL
  ``https://support.example.nl``), 10% of them exact re-deliveries of a recent
  webhook (same MessageSid, same signature), posted by a small HTTP/1.1
  keep-alive client on asyncio streams (httpx cost the generator about 1 ms of
  CPU per request, on the core slabot needs too);
- this process: sets up, starts the others, verifies the database.

Phase (a) sends at a fixed rate (default 200 requests/s for 15 s, open loop:
latency is measured from each request's scheduled start, so a stall is not
hidden), after a first second at the same rate whose latencies are printed
apart (64 connections opened, the first requests through cold code: a start-up,
not the sustained rate); phase (b) sends at full speed over a few concurrent connections for
15 s. Of the new messages, 90% come from the known contacts (the first one of a
contact opens a ticket, later ones join it) and 10% from unknown numbers (each
opens an unverified ticket): both get an acknowledgement through the outbox.

Printed per phase: requests, accepted (200) requests/s, p50/p99/max latency,
errors (non-200 and transport errors). Afterwards it checks in the database
that every distinct MessageSid that was sent is stored exactly once (inbound
message rows vs distinct sids), waits (bounded) for the outbox to drain (and
prints how long that took after the last request) and compares
acknowledgements with what the stand-in received. Targets, printed as
PASS/FAIL (the script always exits 0): >= 500 requests/s at full speed, p99 <
50 ms at 200 requests/s, zero lost, zero duplicated.

    .venv/bin/python benchmarks/bench_webhook.py
    .venv/bin/python benchmarks/bench_webhook.py --rate 200 --seconds 15 --connections 4 --contacts 300
    .venv/bin/python benchmarks/bench_webhook.py --profile     # also where the server's time goes
    .venv/bin/python benchmarks/bench_webhook.py --cprofile    # and cProfile's top functions (slower)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import multiprocessing as mp
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WARMUP = 1.0  # seconds at the fixed rate before it is measured: 64 connections opened, first requests
TOKEN = "bench-auth-token"
ACCOUNT_SID = "AC00000000000000000000000000000bench"
PUBLIC = "https://support.example.nl"
WEBHOOK = "/webhooks/twilio/whatsapp"
OUR_NUMBER = "whatsapp:+31634890878"
PLANS = ("licentie", "ondersteuning", "project")
TEXTS = (
    "De verzendknop in de editor werkt niet",
    "Kunnen jullie helpen met een automatische campagne?",
    "Mijn template ziet er raar uit in Outlook",
    "Hoe importeer ik een contactlijst?",
    "Sinds vanochtend komen er geen mails meer aan",
    "Graag een offerte voor het opzetten van een nieuwsbrief",
)


def known_phone(i: int) -> str:
    return f"+31612{i:06d}"


def unknown_phone(phase: str, i: int) -> str:
    return f"+3168{ord(phase) % 10}{i:06d}"


# -- the server process ------------------------------------------------------------------------------------------


def standin_main(conn: Any) -> None:
    """Serve the Twilio REST stand-in until the parent says stop; report what it received."""
    asyncio.run(_standin(conn))


async def _standin(conn: Any) -> None:
    import logging

    import uvicorn

    from bot.web.server import QuietServer
    from bot.demo.standins.twilio import TwilioStandIn

    logging.basicConfig(level=logging.WARNING, format="stand-in %(levelname)s %(name)s: %(message)s")
    standin = TwilioStandIn()
    server = QuietServer(uvicorn.Config(standin.app(), host="127.0.0.1", port=0, log_level="warning",
                                         access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    conn.send({"port": server.servers[0].sockets[0].getsockname()[1]})
    while not conn.poll():
        await asyncio.sleep(0.05)
    conn.recv()
    server.should_exit = True
    await task
    conn.send({"sent": len(standin.sent), "requests": standin.requests, "to": [r["to"] for r in standin.sent]})


def server_main(workdir: str, st_port: int, conn: Any, profile: str) -> None:
    """Run slabot until the parent says stop."""
    asyncio.run(_serve(Path(workdir), st_port, conn, profile))


async def _serve(workdir: Path, st_port: int, conn: Any, profile: str) -> None:
    import logging

    from bot.app import Application
    from bot.config import load_config

    logging.basicConfig(level=logging.WARNING, format="server %(levelname)s %(name)s: %(message)s")
    config = workdir / "slabot.toml"
    config.write_text(
        f'preset = "mailcampaigns"\n[database]\nurl = "sqlite:///{workdir / "slabot.db"}"\n'
        f'[http]\nhost = "127.0.0.1"\nport = 0\npublic_url = "{PUBLIC}"\n'
        f'[twilio]\naccount_sid = "{ACCOUNT_SID}"\nauth_token = "{TOKEN}"\nwhatsapp_from = "{OUR_NUMBER}"\n'
        f'api_base_url = "http://127.0.0.1:{st_port}"\n', encoding="utf-8")
    app = Application(load_config(str(config)), dispatch_interval=0.1, freeze_gc=True)  # as slabot run does
    probe = _Probe(app, cprofile=profile == "cprofile") if profile else None
    stop = asyncio.Event()
    app_task = asyncio.create_task(app.run(stop))
    while not app.started.is_set():
        if app_task.done():
            await app_task
        await asyncio.sleep(0.01)
    if probe is not None:
        probe.install()
    conn.send({"port": app._port()})
    while True:
        if conn.poll():
            message = conn.recv()
            if message == "stop":
                break
            if message == "reset-probe" and probe is not None:
                probe.reset()
            if isinstance(message, tuple) and message[0] == "probe":
                conn.send(probe.report(message[1]) if probe is not None else "")
        await asyncio.sleep(0.05)
    stop.set()
    await app_task
    conn.send("stopped")


class _Probe:
    """Where the server's time goes during a phase: CPU of the process and of its event-loop thread, wall and
    CPU time of each webhook's parts and of every database transaction; with ``cprofile`` also the top
    functions of the event-loop thread and of the intake thread (cProfile roughly doubles their cost)."""

    def __init__(self, app: Any, cprofile: bool) -> None:
        import threading

        self.app = app
        self.cprofile = cprofile
        self.lock = threading.Lock()
        self.loop_profile: Any = None
        self.reset()

    def reset(self) -> None:
        """Start measuring a phase (called on the event-loop thread)."""
        import cProfile

        if self.loop_profile is not None:
            self.loop_profile.disable()
        self.timings: dict[str, list[float]] = collections.defaultdict(list)
        self.thread_profiles: list[Any] = []
        self.generation = object()
        self.started = (time.perf_counter(), time.process_time(), time.thread_time())
        self.loop_profile = cProfile.Profile() if self.cprofile else None
        if self.loop_profile is not None:
            self.loop_profile.enable()

    def install(self) -> None:
        import threading

        import bot.web.twilio as bot_whatsapp
        from sqlalchemy import event
        from starlette.routing import request_response

        whatsapp = self.app.whatsapp
        pipeline = whatsapp.pipeline
        original_ingest = pipeline.ingest
        original_inbound = next(r.endpoint for r in self.app.routes if getattr(r, "path", "") == WEBHOOK)
        original_valid = bot_whatsapp.signature_valid
        db = self.app.db
        originals = {name: getattr(db, name) for name in ("run", "run_direct", "read_direct")}
        probe = self
        local = threading.local()

        def ingest(message: Any) -> Any:
            import cProfile

            profile = None
            if probe.cprofile:
                profile = getattr(local, "profile", None)
                if profile is None or getattr(local, "generation", None) is not probe.generation:
                    profile = local.profile = cProfile.Profile()  # one profiler per thread
                    local.generation = probe.generation
                    with probe.lock:
                        probe.thread_profiles.append(profile)
                profile.enable()
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return original_ingest(message)
            finally:
                if profile is not None:
                    profile.disable()
                probe.timings["ingest: wall time (intake thread)"].append(time.perf_counter() - started)
                probe.timings["ingest: CPU time (intake thread)"].append(time.thread_time() - cpu)

        def valid(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original_valid(*args, **kwargs)
            finally:
                probe.timings["signature check"].append(time.perf_counter() - started)

        async def inbound(request: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original_inbound(request)
            finally:
                probe.timings["webhook handler: read, check, parse, ingest"].append(time.perf_counter() - started)

        def timed(method: str) -> Any:
            original = originals[method]

            def run(work: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return original(work, **kwargs)
                finally:
                    name = getattr(work, "__qualname__", str(work)).replace("<locals>.", "").replace(".<lambda>", "")
                    probe.timings[f"{method} {name[:38]} (wall)"].append(time.perf_counter() - started)

            return run

        @event.listens_for(self.app.db.engine, "before_cursor_execute")
        def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            conn.info["probe_started"] = time.perf_counter()

        @event.listens_for(self.app.db.engine, "after_cursor_execute")
        def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            kind = statement.split(None, 1)[0]
            if kind == "BEGIN":
                kind = "BEGIN IMMEDIATE (waits for the write lock)"
            if "probe_started" in conn.info:
                probe.timings[f"SQL {kind} (ORM)"].append(time.perf_counter() - conn.info["probe_started"])

        pipeline.ingest = ingest
        bot_whatsapp.signature_valid = valid
        for method in originals:
            setattr(db, method, timed(method))
        for route in self.app.routes:  # the HTTP app was built before: point its route at the wrapper
            if getattr(route, "path", "") == WEBHOOK:
                route.endpoint = inbound
                route.app = request_response(inbound)

    def report(self, accepted: int) -> str:
        import io
        import pstats

        if self.loop_profile is not None:
            self.loop_profile.disable()
        wall = time.perf_counter() - self.started[0]
        cpu = time.process_time() - self.started[1]
        loop_cpu = time.thread_time() - self.started[2]
        intake_cpu = sum(self.timings.get("ingest: CPU time (intake thread)", []))
        per = max(accepted, 1)
        lines = [
            f"  server process CPU {cpu:.2f} s in {wall:.2f} s of wall time ({cpu / wall:.0%} of one core; the "
            f"GIL lets one thread run Python at a time)",
            f"  per accepted request: {cpu / per * 1000:.2f} ms CPU in all = event-loop thread (HTTP server, "
            f"handlers, dispatcher) {loop_cpu / per * 1000:.2f} ms + intake thread "
            f"{intake_cpu / per * 1000:.2f} ms + other threads (dispatcher's database work) "
            f"{(cpu - loop_cpu - intake_cpu) / per * 1000:.2f} ms",
        ]
        for name, values in sorted(self.timings.items(), key=lambda kv: -sum(kv[1])):
            values = sorted(values)
            lines.append(f"  {name:<52} n={len(values):>6}  mean {statistics.fmean(values) * 1000:7.2f} ms  "
                         f"p50 {percentile(values, 0.5) * 1000:7.2f} ms  p99 {percentile(values, 0.99) * 1000:7.2f} "
                         f"ms  total {sum(values):6.2f} s")

        def top(profiles: list[Any], title: str) -> list[str]:
            profiles = [p for p in profiles if p is not None and p.getstats()]
            if not profiles:
                return []
            out = io.StringIO()
            stats = pstats.Stats(profiles[0], stream=out)
            for extra in profiles[1:]:
                stats.add(extra)
            stats.sort_stats("tottime").print_stats(15)
            text = out.getvalue()
            return [f"  {title}:", text[text.find("   ncalls"):].rstrip() if "   ncalls" in text else text]

        lines += top([self.loop_profile], "cProfile, event-loop thread, by own time")
        lines += top(self.thread_profiles, "cProfile, intake thread (IntakePipeline.ingest), by own time")
        return "\n".join(lines)


# -- the load generator process -----------------------------------------------------------------------------------


class Workload:
    """Signed webhooks: new messages from known contacts or unknown numbers, and re-deliveries of recent ones."""

    def __init__(self, phase: str, contacts: int, duplicates: float, unknown: float, seed: int) -> None:
        from twilio.request_validator import RequestValidator

        self.phase = phase
        self.contacts = contacts
        self.duplicates = duplicates
        self.unknown = unknown
        self.rng = random.Random(f"{seed}-{phase}")
        self.validator = RequestValidator(TOKEN)
        self.recent: collections.deque[tuple[str, bytes, str]] = collections.deque(maxlen=32)
        self.count = 0
        self.unknown_count = 0

    def next(self) -> tuple[str, bytes, str, bool]:
        if self.recent and self.rng.random() < self.duplicates:
            return (*self.rng.choice(self.recent), True)
        self.count += 1
        sid = f"SM{self.phase}{self.count:031x}"
        if self.rng.random() < self.unknown:
            self.unknown_count += 1
            sender = unknown_phone(self.phase, self.unknown_count)
        else:
            sender = known_phone(self.rng.randrange(self.contacts))
        params = {"MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid, "AccountSid": ACCOUNT_SID,
                  "From": f"whatsapp:{sender}", "To": OUR_NUMBER, "Body": self.rng.choice(TEXTS),
                  "ProfileName": "Klant", "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received",
                  "ApiVersion": "2010-04-01", "WaId": sender.lstrip("+"), "MessageType": "text"}
        signature = self.validator.compute_signature(PUBLIC + WEBHOOK, params)
        item = (sid, urlencode(params).encode(), signature)
        self.recent.append(item)
        return (*item, False)


def load_main(port: int, phase: str, mode: str, rate: float, seconds: float, connections: int, contacts: int,
              duplicates: float, unknown: float, seed: int, conn: Any) -> None:
    conn.send(asyncio.run(_load(port, phase, mode, rate, seconds, connections, contacts, duplicates, unknown,
                                seed)))


class Connection:
    """One HTTP/1.1 keep-alive connection on asyncio streams: a POST at a time, its status read, its body skipped.

    About a tenth of httpx's CPU per request: the generator shares the machine with slabot.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        try:
            self.writer.write(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n%s\r\n%s" % (
                path.encode(), self.port, len(body), headers, body))
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            if fields.get("transfer-encoding", "").lower() == "chunked":
                while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    await self.reader.readexactly(size + 2)
                await self.reader.readuntil(b"\r\n")  # no trailers
            else:
                await self.reader.readexactly(int(fields.get("content-length", "0")))
            if fields.get("connection", "").lower() == "close":
                await self.close()
            return status
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def _load(port: int, phase: str, mode: str, rate: float, seconds: float, connections: int, contacts: int,
                duplicates: float, unknown: float, seed: int) -> dict[str, Any]:
    work = Workload(phase, contacts, duplicates, unknown, seed)
    latencies: list[float] = []
    statuses: collections.Counter[str] = collections.Counter()
    warm_latencies: list[float] = []  # the fixed rate's first WARMUP seconds: new connections, cold code paths
    warm_statuses: collections.Counter[str] = collections.Counter()
    sent_sids: set[str] = set()
    accepted_sids: set[str] = set()
    dups = 0
    late = 0.0
    fixed = b"Content-Type: application/x-www-form-urlencoded\r\nUser-Agent: TwilioProxy/1.1\r\n"

    async def post(connection: Connection, item: tuple[str, bytes, str, bool], start: float,
                   warm: bool = False) -> None:
        sid, body, signature, _ = item
        sent_sids.add(sid)
        counts = warm_statuses if warm else statuses
        try:
            status = await asyncio.wait_for(connection.post(WEBHOOK, body, fixed + b"X-Twilio-Signature: %s\r\n" % (
                signature.encode(),)), 10.0)
            counts[str(status)] += 1
            if status == 200:
                accepted_sids.add(sid)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                ValueError, IndexError) as exc:  # transport errors, and answers that are not HTTP
            counts[exc.__class__.__name__] += 1
        (warm_latencies if warm else latencies).append(time.perf_counter() - start)

    if mode == "rate":
        # open loop: a scheduler releases each request at its time; a fixed set of connection workers sends
        # them. If slabot falls behind, requests wait in the queue and their latency, counted from the
        # scheduled start, grows: nothing is hidden, and the generator's own cost stays the same per request.
        queue: asyncio.Queue[tuple[tuple[str, bytes, str, bool], float, bool] | None] = asyncio.Queue()
        pool = [Connection(port) for _ in range(64)]

        async def sender(connection: Connection) -> None:
            while (job := await queue.get()) is not None:
                await post(connection, job[0], job[1], job[2])

        senders = [asyncio.create_task(sender(c)) for c in pool]
        warm = int(rate * WARMUP)
        total = warm + int(rate * seconds)
        t0 = time.perf_counter() + 0.2
        for i in range(total):
            item = work.next()
            target = t0 + i / rate
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif i >= warm:
                late = max(late, -delay)
            if i >= warm:
                dups += item[3]
            queue.put_nowait((item, target, i < warm))
        for _ in senders:
            queue.put_nowait(None)
        await asyncio.gather(*senders)
        elapsed = time.perf_counter() - (t0 + WARMUP)
    else:
        pool = [Connection(port) for _ in range(connections)]
        t0 = time.perf_counter()
        end = t0 + seconds

        async def worker(connection: Connection) -> None:
            nonlocal dups
            while time.perf_counter() < end:
                item = work.next()
                dups += item[3]
                await post(connection, item, time.perf_counter())

        await asyncio.gather(*(worker(c) for c in pool))
        elapsed = time.perf_counter() - t0
    for connection in pool:
        await connection.close()
    return {"latencies": latencies, "statuses": dict(statuses), "sent_sids": sorted(sent_sids),
            "accepted_sids": sorted(accepted_sids), "duplicates": dups, "elapsed": elapsed, "late": late,
            "warm_latencies": warm_latencies, "warm_statuses": dict(warm_statuses),
            "unknown_senders": work.unknown_count}


# -- set-up and checks in this process ------------------------------------------------------------------------------


def set_up_database(workdir: Path, contacts: int) -> None:
    from storage.database import open_database
    from storage.records import AccountInput, ContactInput
    from storage.repositories import AccountRepository

    db = open_database(f"sqlite:///{workdir / 'slabot.db'}")
    now = datetime.now(timezone.utc)

    def work(s: Any) -> None:
        repo = AccountRepository(s)
        for i in range(contacts):
            repo.upsert(AccountInput(f"Klant {i:04d}", PLANS[i % len(PLANS)],
                                     contacts=(ContactInput(f"Contact {i:04d}", phones=(known_phone(i),)),)), now)

    db.run(work)
    db.dispose()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))]


def report_phase(title: str, result: dict[str, Any]) -> dict[str, float]:
    lat = result["latencies"]
    ok = result["statuses"].get("200", 0)
    errors = {k: v for k, v in result["statuses"].items() if k != "200"}
    rps = ok / result["elapsed"] if result["elapsed"] else 0.0
    p50, p99, worst = percentile(lat, 0.5) * 1000, percentile(lat, 0.99) * 1000, max(lat, default=0) * 1000
    print(f"{title}")
    print(f"  requests sent        {len(lat):>8}   ({result['duplicates']} re-deliveries of a recent MessageSid, "
          f"{len(result['sent_sids'])} distinct sids, {result['unknown_senders']} from unknown numbers)")
    print(f"  duration             {result['elapsed']:>8.2f} s")
    print(f"  accepted (200)       {ok:>8}   = {rps:.0f} requests/s")
    print(f"  latency              p50 {p50:.1f} ms   p99 {p99:.1f} ms   max {worst:.1f} ms   "
          f"(mean {statistics.fmean(lat) * 1000 if lat else float('nan'):.1f} ms)")
    print(f"  errors (non-200)     {sum(errors.values()):>8}   {errors if errors else ''}")
    warm = result.get("warm_latencies") or []
    if warm:
        warm_errors = sum(v for k, v in result["warm_statuses"].items() if k != "200")
        print(f"  warm-up (first {WARMUP:.0f} s at the same rate, before the figures above): {len(warm)} requests, "
              f"p99 {percentile(warm, 0.99) * 1000:.1f} ms, max {max(warm) * 1000:.1f} ms, {warm_errors} errors")
    if result["late"] > 0.005:
        print(f"  note: the generator started a request up to {result['late'] * 1000:.0f} ms late "
              "(counted in the latency)")
    return {"rps": rps, "p50": p50, "p99": p99, "max": worst, "errors": float(sum(errors.values()))}


def stored_sids(db_path: Path) -> tuple[collections.Counter[str], dict[str, int], int, int]:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT external_id, COUNT(*) FROM messages WHERE channel = 'whatsapp' "
                            "AND direction = 'in' GROUP BY external_id").fetchall()
        outbox = dict(conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())
        tickets = conn.execute("SELECT COUNT(*) FROM tickets").fetchone()[0]
        inbound = conn.execute("SELECT COUNT(*) FROM messages WHERE direction = 'in'").fetchone()[0]
    return collections.Counter({sid: n for sid, n in rows}), outbox, tickets, inbound


def run_phase(ctx: Any, port: int, phase: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=load_main, args=(port, phase, mode, args.rate, args.seconds, args.connections,
                                               args.contacts, args.duplicates, args.unknown, args.seed, child),
                       name=f"load-{phase}")
    proc.start()
    if not parent.poll(args.seconds + 60):
        proc.kill()
        raise SystemExit(f"load generator {phase} did not finish in time")
    result: dict[str, Any] = parent.recv()
    proc.join(10)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=300, help="known contacts (one account each)")
    parser.add_argument("--rate", type=float, default=200.0, help="phase (a): requests per second")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    parser.add_argument("--connections", type=int, default=4, help="phase (b): concurrent connections")
    parser.add_argument("--duplicates", type=float, default=0.10, help="share of re-delivered webhooks")
    parser.add_argument("--unknown", type=float, default=0.10, help="share of new messages from unknown numbers")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="also print where the server's time goes")
    parser.add_argument("--cprofile", action="store_true", help="--profile, plus cProfile's top functions "
                        "(slows the server down)")
    args = parser.parse_args()
    args.profile = "cprofile" if args.cprofile else ("timings" if args.profile else "")

    ctx = mp.get_context("spawn")
    import importlib.util

    print(f"bench_webhook: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} CPUs, {platform.platform()}; uvicorn parses HTTP with "
          f"{'httptools' if importlib.util.find_spec('httptools') else 'h11'}")
    print(f"  {args.contacts} known contacts; phase (a) {args.rate:.0f} requests/s for {args.seconds:.0f} s; "
          f"phase (b) full speed on {args.connections} connections for {args.seconds:.0f} s; "
          f"{args.duplicates:.0%} re-deliveries, {args.unknown:.0%} of new messages from unknown numbers")
    with tempfile.TemporaryDirectory(prefix="bench_webhook_") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        set_up_database(workdir, args.contacts)
        st_parent, st_child = ctx.Pipe()
        standin_proc = ctx.Process(target=standin_main, args=(st_child,), name="twilio-standin")
        standin_proc.start()
        if not st_parent.poll(60):
            raise SystemExit("the Twilio stand-in did not start within 60 s")
        st_port = st_parent.recv()["port"]
        parent, child = ctx.Pipe()
        server = ctx.Process(target=server_main, args=(str(workdir), st_port, child, args.profile), name="slabot")
        server.start()
        try:
            if not parent.poll(60):
                raise SystemExit("slabot did not start within 60 s")
            port = parent.recv()["port"]
            print(f"  set-up {time.perf_counter() - started:.1f} s; slabot on http://127.0.0.1:{port}, "
                  f"database {workdir / 'slabot.db'}\n")

            results: dict[str, dict[str, Any]] = {}
            figures: dict[str, dict[str, float]] = {}
            for phase, mode, title in (("a", "rate", f"(a) fixed rate, {args.rate:.0f} requests/s"),
                                       ("b", "full", f"(b) full speed, {args.connections} connections")):
                if args.profile:
                    parent.send("reset-probe")
                results[phase] = run_phase(ctx, port, phase, mode, args)
                last_request = time.perf_counter()
                _, backlog, _, _ = stored_sids(workdir / "slabot.db")
                figures[phase] = report_phase(title, results[phase])
                print(f"  outbox when the phase ended: {dict(sorted(backlog.items()))}")
                if args.profile:
                    parent.send(("probe", results[phase]["statuses"].get("200", 0)))
                    if parent.poll(30):
                        print("  server-side timings during this phase:")
                        print(parent.recv())
                print()

            # the outbox: wait (bounded) until every acknowledgement has been handled; the drain is counted from
            # the end of the last request
            outbox: dict[str, int] = {}
            while time.perf_counter() - last_request < 60:
                _, outbox, _, _ = stored_sids(workdir / "slabot.db")
                if not outbox.get("pending") and not outbox.get("sending"):
                    break
                time.sleep(0.05)
            drain = time.perf_counter() - last_request
            parent.send("stop")
            parent.poll(30)
        finally:
            server.join(30)
            if server.is_alive():
                server.kill()
                server.join()
            st_parent.send("stop")
            standin = st_parent.recv() if st_parent.poll(30) else {"sent": -1, "requests": -1}
            standin_proc.join(30)
            if standin_proc.is_alive():
                standin_proc.kill()
                standin_proc.join()

        counts, outbox, tickets, inbound_rows = stored_sids(workdir / "slabot.db")
        sent = set(results["a"]["sent_sids"]) | set(results["b"]["sent_sids"])
        accepted = set(results["a"]["accepted_sids"]) | set(results["b"]["accepted_sids"])
        stored = set(counts)
        lost = accepted - stored
        unanswered = sent - accepted
        duplicated = {sid: n for sid, n in counts.items() if n > 1}
        unexpected = stored - sent
        print("database")
        print(f"  distinct MessageSids sent {len(sent)}, answered 200 {len(accepted)}; inbound message rows "
              f"{inbound_rows} for {len(stored)} distinct sids")
        print(f"  lost (answered 200, not stored) {len(lost)}; stored twice or more {len(duplicated)}; "
              f"stored but never sent {len(unexpected)}; sent but never answered 200 {len(unanswered)} "
              f"(of which stored {len(unanswered & stored)})")
        print(f"  tickets {tickets}; outbox {dict(sorted(outbox.items()))} (drained {drain:.1f} s after the last request); "
              f"the Twilio stand-in received {standin['sent']} sends in {standin['requests']} requests")
        acks_ok = standin["sent"] == outbox.get("sent", 0) == sum(outbox.values())
        print(f"  every acknowledgement sent exactly once: {'yes' if acks_ok else 'NO'}")
        print()
        checks = [
            (f">= 500 requests/s accepted at full speed (b)", figures["b"]["rps"] >= 500,
             f"{figures['b']['rps']:.0f} requests/s"),
            (f"p99 < 50 ms at {args.rate:.0f} requests/s (a)", figures["a"]["p99"] < 50,
             f"{figures['a']['p99']:.1f} ms"),
            ("zero lost", not lost and not unanswered, f"{len(lost)} lost, {len(unanswered)} unanswered"),
            ("zero duplicated", not duplicated and inbound_rows == len(stored), f"{len(duplicated)} duplicated"),
        ]
        print("targets")
        for name, ok, value in checks:
            print(f"  {'PASS' if ok else 'FAIL'}  {name}: {value}")
        print(f"\ntotal run {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
