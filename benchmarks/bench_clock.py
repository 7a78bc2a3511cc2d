"""Benchmark: slabot's business-hours clock against pandas' CustomBusinessHour.

Draws random received-at instants across 2026-2027 (Europe/Amsterdam), computes
the 24-business-hour first-response deadline of the ``mailcampaigns`` preset's
``licentie`` plan with slabot and with ``pandas.offsets.CustomBusinessHour``
(09:00-17:00, Dutch public holidays 2025-2029), and reports:

- throughput of both, and the ratio slabot / pandas (target: >= 50x);
- disagreements between the two (target: none). SPEC R10: pandas writes a
  deadline that runs out exactly at a closing time as the next opening, so
  slabot's 17:00 on day D and pandas' 09:00 on the next working day after D
  are the same point of business time and count as agreement (reported apart);
- slabot's per-call cost for 1 h, 24 h and 200 h targets (target: 200 h costs
  at most 2x 1 h).

Targets are only printed as PASS/FAIL; the script always exits 0.

    .venv/bin/python benchmarks/bench_clock.py [--n 100000] [--seed 1]
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import TypeVar
from zoneinfo import ZoneInfo

import pandas as pd

from bot.presets import load_preset
from sla_engine.deadlines import first_response_due

T = TypeVar("T")

ZONE = ZoneInfo("Europe/Amsterdam")
PRESET, PLAN = "mailcampaigns", "licentie"
HOLIDAY_YEARS = range(2025, 2030)  # 2025-2029
OPEN, CLOSE = dtime(9, 0), dtime(17, 0)
PANDAS_BUDGET_S = 60.0  # time pandas on everything if that is projected to take at most this long
PANDAS_MIN_SUBSET = 20_000
COMPARE_BUDGET_S = 90.0  # run pandas untimed on the rest for the comparison if that fits in this
REPEATS = 3


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Seconds one call of ``fn`` takes (garbage collector off, as timeit does), and its result."""
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        out = fn()
        return time.perf_counter() - t0, out
    finally:
        if gc_was_on:
            gc.enable()


def best_of(fn: Callable[[], T], repeats: int = REPEATS) -> tuple[float, T]:
    """The fastest of ``repeats`` timed runs (and the result of the last)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        seconds, out = timed(fn)
        best = min(best, seconds)
    return best, out  # type: ignore[return-value]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def us(seconds: float, count: int) -> str:
    return f"{seconds / count * 1e6:8.2f} us/call"


def rate(seconds: float, count: int) -> str:
    return f"{count / seconds:>12,.0f} deadlines/s"


def draw_instants(n: int, seed: int) -> list[datetime]:
    """``n`` instants uniform over the seconds of 2026-2027, aware in Europe/Amsterdam."""
    rng = random.Random(seed)
    lo = int(datetime(2026, 1, 1, tzinfo=ZONE).timestamp())
    hi = int(datetime(2028, 1, 1, tzinfo=ZONE).timestamp())
    return [datetime.fromtimestamp(rng.randrange(lo, hi), ZONE) for _ in range(n)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="number of random instants (default 100000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of random.Random (default 1)")
    args = parser.parse_args(argv)
    n, seed = args.n, args.seed
    started = time.perf_counter()

    print("bench_clock: slabot business clock vs pandas CustomBusinessHour")
    print(f"Python {sys.version.split()[0]} ({platform.python_implementation()}), pandas {pd.__version__}, "
          f"{platform.platform()}")
    print(f"n={n:,} seed={seed}; preset {PRESET!r}, plan {PLAN!r}; slabot timings best of {REPEATS}, "
          f"pandas timed once; gc off while timing")
    print()

    # -- 1. the instants ---------------------------------------------------
    instants = draw_instants(n, seed)
    print(f"[1] {n:,} received-at instants, uniform over the seconds of 2026-2027 (Europe/Amsterdam): "
          f"{min(instants).isoformat()} .. {max(instants).isoformat()}")
    print()

    # -- 2. slabot ---------------------------------------------------------
    t0 = time.perf_counter()
    preset = load_preset(PRESET)
    load_s = time.perf_counter() - t0
    plan = preset.plan(PLAN)
    terms = preset.terms(plan, date(2026, 1, 1))
    target = plan.first_response
    assert target is not None
    calendar = preset.calendars["office"]
    index = calendar.index

    # warm-up: the first call builds the calendar's lazy day index; time it on its own
    first_s, _ = timed(lambda: first_response_due(instants[0], terms))
    span = (index.first_year, index.last_year, len(index.cum))
    # the same build once more on a fresh preset, with the holidays package's caches warm
    fresh = load_preset(PRESET).calendars["office"].index
    rebuild_s, _ = timed(lambda: fresh.cover_years(span[0], span[1]))

    clock = terms.clock(target)
    duration = target.duration  # 24 h
    fr_s, slabot_due = best_of(lambda: [first_response_due(t, terms) for t in instants])
    add_s, slabot_add = best_of(lambda: [clock.add(t, duration) for t in instants])
    rebuilt = (index.first_year, index.last_year, len(index.cum)) != span

    print(f"[2] slabot (target {target.duration.total_seconds() / 3600:g} h on the {target.clock} clock, calendar {target.calendar!r})")
    print(f"    load_preset:                                   {load_s * 1e3:8.2f} ms")
    print(f"    first call, builds the day index {span[0]}-{span[1]}:   {first_s * 1e3:8.2f} ms   (one-off)")
    print(f"    same index build again (fresh preset, warm):   {rebuild_s * 1e3:8.2f} ms")
    print(f"    index rebuilt/grown during the timed runs:     {'yes (!)' if rebuilt else 'no'}")
    print(f"    first_response_due(t, terms):  {fr_s:7.3f} s  {us(fr_s, n)}  {rate(fr_s, n)}")
    print(f"    clock.add(t, 24h):             {add_s:7.3f} s  {us(add_s, n)}  {rate(add_s, n)}")
    same = sum(a == b for a, b in zip(slabot_due, slabot_add))
    print(f"    first_response_due == clock.add(t, 24h) for {same:,} of {n:,} instants")
    print()

    # -- 3. pandas ---------------------------------------------------------
    holidays = sorted({day for year in HOLIDAY_YEARS for day in calendar.holidays_in(year)})
    offset = pd.offsets.CustomBusinessHour(n=24, start="09:00", end="17:00", holidays=holidays)
    stamps = [pd.Timestamp(t.replace(tzinfo=None)) for t in instants]  # naive local wall time, not timed
    _ = stamps[0] + offset  # warm-up

    rng = random.Random(seed + 1)
    pilot = rng.sample(range(n), min(n, 2_000))
    pilot_s, _ = timed(lambda: [stamps[i] + offset for i in pilot])
    projected = pilot_s / len(pilot) * n

    pandas_res: list[datetime | None] = [None] * n
    if projected <= PANDAS_BUDGET_S:
        timed_idx = list(range(n))
        note = f"all {n:,} instants"
    else:
        size = min(n, max(PANDAS_MIN_SUBSET, int(PANDAS_BUDGET_S / (pilot_s / len(pilot)))))
        timed_idx = sorted(rng.sample(range(n), size))
        note = (f"a random subset of {size:,} of {n:,} instants "
                f"(all {n:,} projected at {projected:.0f} s > {PANDAS_BUDGET_S:.0f} s)")
    pd_s, out = timed(lambda: [stamps[i] + offset for i in timed_idx])
    for i, ts in zip(timed_idx, out):
        pandas_res[i] = ts.to_pydatetime()
    pd_count = len(timed_idx)

    rest = [i for i in range(n) if pandas_res[i] is None]
    rest_note = ""
    if rest:
        rest_projected = pd_s / pd_count * len(rest)
        if rest_projected <= COMPARE_BUDGET_S:
            for i in rest:
                pandas_res[i] = (stamps[i] + offset).to_pydatetime()
            rest_note = f"; the other {len(rest):,} run untimed for the comparison"
        else:
            rest_note = (f"; the other {len(rest):,} NOT run (projected {rest_projected:.0f} s), "
                         f"so the comparison covers the timed subset only")

    print("[3] pandas CustomBusinessHour(n=24, 09:00-17:00, "
          f"{len(holidays)} NL holidays {HOLIDAY_YEARS.start}-{HOLIDAY_YEARS.stop - 1}) on naive local timestamps")
    print(f"    pilot on 2,000 instants: {us(pilot_s, len(pilot))}, projected {projected:.1f} s for all {n:,}")
    print(f"    timed on {note}{rest_note}")
    print(f"    Timestamp + offset:            {pd_s:7.3f} s  {us(pd_s, pd_count)}  {rate(pd_s, pd_count)}")
    print()

    # -- 4. disagreements --------------------------------------------------
    closed = set(holidays)

    def next_working_day(day: date) -> date:
        day += timedelta(days=1)
        while day.weekday() >= 5 or day in closed:
            day += timedelta(days=1)
        return day

    compared = exact = boundary = 0
    wrong: list[int] = []
    for i in range(n):
        theirs = pandas_res[i]
        if theirs is None:
            continue
        due = slabot_due[i]
        assert due is not None
        ours = due.astimezone(ZONE).replace(tzinfo=None)
        compared += 1
        if ours == theirs:
            exact += 1
        elif ours.time() == CLOSE and theirs.time() == OPEN and theirs.date() == next_working_day(ours.date()):
            boundary += 1
        else:
            wrong.append(i)

    print(f"[4] slabot vs pandas on {compared:,} of {n:,} instants"
          + ("" if compared == n else "  (NOT all: see [3])"))
    print(f"    identical wall time:                              {exact:>9,}")
    print(f"    closing-time boundary, equivalent (R10):          {boundary:>9,}   "
          "(slabot 17:00 on D == pandas 09:00 next working day)")
    print(f"    real disagreements:                               {len(wrong):>9,}")
    for i in wrong[:5]:
        due = slabot_due[i]
        assert due is not None
        print(f"      received {instants[i].isoformat()} ({instants[i]:%a}): "
              f"slabot {due.isoformat()} ({due:%a}), pandas {pandas_res[i]} ({pandas_res[i]:%a})")
    if len(wrong) > 5:
        print(f"      ... and {len(wrong) - 5:,} more")
    print()

    # -- 5. cost against target length --------------------------------------
    print("[5] slabot clock.add per call by target length (same instants, best of 3)")
    per_call: dict[int, float] = {}
    for hours in (1, 24, 200):
        step = timedelta(hours=hours)
        seconds, _ = best_of(lambda: [clock.add(t, step) for t in instants])
        per_call[hours] = seconds / n
        print(f"    {hours:>3} h: {seconds:7.3f} s  {us(seconds, n)}  {rate(seconds, n)}")
    print()

    # -- summary -------------------------------------------------------------
    pd_rate = pd_count / pd_s
    ratio_fr = (n / fr_s) / pd_rate
    ratio_add = (n / add_s) / pd_rate
    long_short = per_call[200] / per_call[1]
    print("Summary")
    print(f"    slabot first_response_due:  {rate(fr_s, n)}")
    print(f"    slabot clock.add(24h):      {rate(add_s, n)}")
    print(f"    pandas CustomBusinessHour:  {rate(pd_s, pd_count)}"
          + ("" if pd_count == n else f"   (timed on {pd_count:,} instants)"))
    print(f"    ratio slabot/pandas, first_response_due: {ratio_fr:7.1f}x   target >= 50x   {verdict(ratio_fr >= 50)}")
    print(f"    ratio slabot/pandas, clock.add(24h):     {ratio_add:7.1f}x   target >= 50x   {verdict(ratio_add >= 50)}")
    print(f"    real disagreements: {len(wrong):,} of {compared:,} compared"
          f"{'' if compared == n else ' (subset)'}   target 0   {verdict(not wrong and compared > 0)}")
    print(f"    cost 200h / 1h:     {long_short:5.2f}x   target <= 2x   {verdict(long_short <= 2)}")
    print(f"    total runtime {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    main()
    sys.exit(0)
