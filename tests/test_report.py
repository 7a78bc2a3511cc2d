"""SLA reports (issue 8, part 3): the numbers on a known data set, the chart, the command, the weekly summary.

The data set is made the way production makes it: requests through the intake
pipeline with a driven clock, staff replies, clarifications and resolutions
through :class:`bot.desk.Desk`, and "taken" events as the staff chat records
them. Mondays 23 and 30 November 2026; MailCampaigns opens 09:00-17:00 and
Pay.nl 09:00-17:30; no public holiday falls in the period. Every ticket, its
times on its plan's own clock and its staff member:

====  =====================  ===========================  ============================  ==========================
T     plan                   received                     first response                staff
====  =====================  ===========================  ============================  ==========================
T1    licentie               Mon 23 Nov 10:00             carl Mon 12:00: 2h, met       carl (replied)
T2    licentie               Mon 23 Nov 14:00             carl Thu 26 15:00: 25h, late  dirk (taken)
T3    ondersteuning (anna)   Tue 24 Nov 09:30             anna 13:30: 4h, met           anna (assigned)
T4    ondersteuning (anna)   Wed 25 Nov 16:00             none: 60h by Mon 7 Dec 12:00  anna (assigned)
T5    project (bob)          Sat 28 Nov 11:00             bob Mon 30 17:00: 8h, met     anna (taken)
T6    licentie               Tue 1 Dec 10:00              carl clarifies 11:00: 1h      carl (replied)
T7    licentie               Thu 3 Dec 16:00              none: 12h, pending            (unassigned)
T8    ondersteuning (anna)   Mon 30 Nov 09:00             resolved 10:00 unanswered     anna (assigned)
T9    premium (eva)          Mon 30 Nov 10:00             eva 17:30: 7.5h, met          eva (assigned)
T10   premium, critical      Sat 5 Dec 02:00              eva 04:30: 2.5h calendar      eva (assigned)
====  =====================  ===========================  ============================  ==========================

Resolutions: T1 Wed 25 Nov 10:00 (48h calendar), T5 Tue 1 Dec 17:00 (78h),
T6 Thu 3 Dec 10:00 (48h less 23h waiting on the customer: 25h), T8 after 1h,
T9 Thu 3 Dec 10:00 (3 working days). Outside the period or without a plan,
and so not in the report: a ticket of Fri 20 Nov, one of Mon 7 Dec and an
unknown sender's.
"""

from __future__ import annotations

import asyncio
import json
import struct
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from helpers import add_account, at, contact, email, pipeline, run_cli, whatsapp

from bot.desk import Desk
from bot.reports import (
    UNASSIGNED,
    GroupSummary,
    SlaReport,
    TargetSummary,
    last_full_week,
    load_report,
    render_chart,
    report_data,
    summary_text,
    weekly_summary,
)
from sla_engine.performance import Verdict, median, percentile
from storage.database import Database
from storage.repositories import TicketRepository

H = timedelta(hours=1)
AS_OF = at(2026, 12, 7, 12)
LATER = at(2026, 12, 31, 12)
FROM, TO = date(2026, 11, 23), date(2026, 12, 6)
PIET, FRANK, GIJS, WIM = "piet@bakkerij-jansen.nl", "frank@fietsen.nl", "+31611111111", "+31622222222"


def _ingest(db: Database, preset_name: str, msg: object) -> str:
    result = pipeline(db, preset_name, now=msg.received_at).ingest(msg)  # type: ignore[attr-defined]
    assert result.ticket_ref is not None, result
    return result.ticket_ref


def _reply(db: Database, ref: str, when: datetime, staff: str, *, clarify: bool = False) -> None:
    assert Desk(db, now=lambda: when).reply(ref, "We kijken ernaar.", staff, clarify=clarify).first_response


def _resolve(db: Database, ref: str, when: datetime, staff: str) -> None:
    Desk(db, now=lambda: when).resolve(ref, staff)


def _take(db: Database, ref: str, when: datetime, staff: str) -> None:
    """What the staff chat's /take records: a 'taken' event by the staff member."""
    def work(s: object) -> None:
        tickets = TicketRepository(s)  # type: ignore[arg-type]
        found = tickets.by_ref(ref)
        assert found is not None
        tickets.add_event("taken", when, ticket_id=found.id, actor=staff)

    db.run(work)


def make_data_set(db: Database) -> dict[str, str]:
    """The tickets of the module docstring; their references by name."""
    add_account(db, "Bakkerij Jansen", "licentie", contact("Piet", email=PIET))
    add_account(db, "Fietsen Frank", "ondersteuning", contact("Frank", email=FRANK), staff="anna")
    add_account(db, "Garage Gijs", "project", contact("Gijs", phone=GIJS), staff="bob")
    add_account(db, "Webshop Wim", "premium", contact("Wim", phone=WIM), staff="eva")
    refs: dict[str, str] = {}

    def mail(name: str, sender: str, when: datetime) -> str:
        refs[name] = _ingest(db, "mailcampaigns", email(f"<{name}@x>", sender, "De export werkt niet",
                                                        received_at=when))
        return refs[name]

    before = mail("before", PIET, at(2026, 11, 20, 10))
    _reply(db, before, at(2026, 11, 20, 11), "carl")
    t1 = mail("T1", PIET, at(2026, 11, 23, 10))
    _reply(db, t1, at(2026, 11, 23, 12), "carl")
    _resolve(db, t1, at(2026, 11, 25, 10), "carl")
    t2 = mail("T2", PIET, at(2026, 11, 23, 14))
    _take(db, t2, at(2026, 11, 23, 15), "carl")
    _take(db, t2, at(2026, 11, 24, 9), "dirk")  # the last one to take it owns it
    _reply(db, t2, at(2026, 11, 26, 15), "carl")
    t3 = mail("T3", FRANK, at(2026, 11, 24, 9, 30))
    _reply(db, t3, at(2026, 11, 24, 13, 30), "anna")
    mail("T4", FRANK, at(2026, 11, 25, 16))
    refs["T5"] = t5 = _ingest(db, "mailcampaigns", whatsapp("SMT5", GIJS, "De koppeling is stuk",
                                                            received_at=at(2026, 11, 28, 11)))
    _take(db, t5, at(2026, 11, 30, 9), "anna")
    _reply(db, t5, at(2026, 11, 30, 17), "bob")
    _resolve(db, t5, at(2026, 12, 1, 17), "anna")
    t6 = mail("T6", PIET, at(2026, 12, 1, 10))
    _reply(db, t6, at(2026, 12, 1, 11), "carl", clarify=True)
    answer = email("<T6-answer@x>", PIET, "De export van november", received_at=at(2026, 12, 2, 10),
                   thread_refs=("<T6@x>",))
    assert _ingest(db, "mailcampaigns", answer) == t6  # the customer answers: the resolution clock runs again
    _resolve(db, t6, at(2026, 12, 3, 10), "carl")
    mail("T7", PIET, at(2026, 12, 3, 16))
    t8 = mail("T8", FRANK, at(2026, 11, 30, 9))
    _resolve(db, t8, at(2026, 11, 30, 10), "anna")
    refs["T9"] = t9 = _ingest(db, "paynl", whatsapp("SMT9", WIM, "Betalingen komen niet door",
                                                    received_at=at(2026, 11, 30, 10)))
    _reply(db, t9, at(2026, 11, 30, 17, 30), "eva")
    _resolve(db, t9, at(2026, 12, 3, 10), "eva")
    refs["T10"] = t10 = _ingest(db, "paynl", whatsapp("SMT10", WIM, "Alle betalingen liggen eruit",
                                                      received_at=at(2026, 12, 5, 2), critical=True))
    _reply(db, t10, at(2026, 12, 5, 4, 30), "eva")
    mail("after", PIET, at(2026, 12, 7, 9))
    stranger = email("<stranger@x>", "iemand@onbekend.nl", "Hallo?", received_at=at(2026, 11, 24, 10))
    _ingest(db, "mailcampaigns", stranger)  # an unverified ticket: no plan, no clock
    return refs


@pytest.fixture
def data_set(db: Database) -> dict[str, str]:
    return make_data_set(db)


def _group(groups: tuple[GroupSummary, ...], name: str) -> GroupSummary:
    found = {g.name: g for g in groups}
    assert name in found, sorted(found)
    return found[name]


def _check(summary: TargetSummary, *, met: int, breached: int, pending: int = 0, closed: int = 0,
           median_: timedelta | None, p90: timedelta | None, breaches: tuple[str, ...] = ()) -> None:
    assert (summary.met, summary.breached, summary.pending, summary.closed) == (met, breached, pending, closed)
    assert (summary.median, summary.p90) == (median_, p90)
    assert summary.breaches == breaches


def test_per_plan(db: Database, data_set: dict[str, str]) -> None:
    r = data_set
    report = load_report(db, FROM, TO, AS_OF)
    assert [t.ref for t in report.tickets] == [r[n] for n in ("T1", "T2", "T3", "T4", "T5", "T8", "T9", "T6", "T7",
                                                             "T10")]
    assert [g.name for g in report.by_plan] == ["licentie", "ondersteuning", "premium", "premium (critical)", "project"]

    licentie = _group(report.by_plan, "licentie")
    assert licentie.tickets == 4
    _check(licentie.first_response, met=2, breached=1, pending=1, median_=2 * H, p90=25 * H, breaches=(r["T2"],))
    assert licentie.first_response.share_met == pytest.approx(2 / 3)
    # resolution on the calendar clock, T6 less its 23 hours waiting on the customer (R14)
    _check(licentie.resolution, met=2, breached=0, pending=2, median_=36.5 * H, p90=48 * H)

    support = _group(report.by_plan, "ondersteuning")
    _check(support.first_response, met=1, breached=1, closed=1, median_=4 * H, p90=4 * H, breaches=(r["T4"],))
    assert support.first_response.share_met == 0.5
    _check(support.resolution, met=1, breached=0, pending=2, median_=1 * H, p90=1 * H)

    project = _group(report.by_plan, "project")  # received on a Saturday: the clock starts Monday 09:00
    _check(project.first_response, met=1, breached=0, median_=8 * H, p90=8 * H)
    _check(project.resolution, met=1, breached=0, median_=78 * H, p90=78 * H)

    premium = _group(report.by_plan, "premium")  # 09:00-17:30, 8 hours; resolution in working days
    _check(premium.first_response, met=1, breached=0, median_=7.5 * H, p90=7.5 * H)
    _check(premium.resolution, met=1, breached=0, median_=timedelta(days=3), p90=timedelta(days=3))
    critical = _group(report.by_plan, "premium (critical)")  # the outage line's calendar clock (R17)
    _check(critical.first_response, met=1, breached=0, median_=2.5 * H, p90=2.5 * H)
    _check(critical.resolution, met=0, breached=0, pending=1, median_=None, p90=None)

    overall = report.overall
    assert overall.tickets == 10
    _check(overall.first_response, met=6, breached=2, pending=1, closed=1, median_=4 * H, p90=25 * H,
           breaches=(r["T2"], r["T4"]))
    assert overall.first_response.share_met == 0.75
    assert [(b.ref, b.target, b.elapsed, b.allowed, b.staff, b.still_open) for b in report.breaches] == [
        (r["T2"], "first_response", 25 * H, 24 * H, "dirk", False),
        (r["T4"], "first_response", 60 * H, 24 * H, "anna", True),
    ]


def test_per_staff_member(db: Database, data_set: dict[str, str]) -> None:
    r = data_set
    report = load_report(db, FROM, TO, AS_OF)
    assert [g.name for g in report.by_staff] == ["anna", "carl", "dirk", "eva", UNASSIGNED]
    basis = {t.ref: (t.staff, t.staff_basis) for t in report.tickets}
    assert basis[r["T1"]] == ("carl", "replied")
    assert basis[r["T2"]] == ("dirk", "taken")
    assert basis[r["T3"]] == ("anna", "assigned")
    assert basis[r["T5"]] == ("anna", "taken")  # taking it beats the account's staff member (bob)
    assert basis[r["T7"]] == (UNASSIGNED, "none")

    anna = _group(report.by_staff, "anna")
    assert anna.tickets == 4
    _check(anna.first_response, met=2, breached=1, closed=1, median_=6 * H, p90=8 * H, breaches=(r["T4"],))
    _check(_group(report.by_staff, "carl").first_response, met=2, breached=0, median_=1.5 * H, p90=2 * H)
    dirk = _group(report.by_staff, "dirk")
    _check(dirk.first_response, met=0, breached=1, median_=25 * H, p90=25 * H, breaches=(r["T2"],))
    assert dirk.first_response.share_met == 0.0
    _check(_group(report.by_staff, "eva").first_response, met=2, breached=0, median_=5 * H, p90=7.5 * H)
    nobody = _group(report.by_staff, UNASSIGNED)
    _check(nobody.first_response, met=0, breached=0, pending=1, median_=None, p90=None)
    assert nobody.first_response.share_met is None


def test_open_tickets_breach_as_time_goes_on(db: Database, data_set: dict[str, str]) -> None:
    r = data_set
    report = load_report(db, FROM, TO, LATER)
    ticket = {t.ref: t for t in report.tickets}
    assert ticket[r["T7"]].first_response.verdict is Verdict.BREACHED  # never answered
    # T7's four calendar weeks end on 31 December 16:00: still pending at 12:00
    assert ticket[r["T7"]].resolution.verdict is Verdict.PENDING
    assert [(b.ref, b.target) for b in report.breaches if b.target == "resolution"] == [
        (r["T2"], "resolution"), (r["T3"], "resolution"), (r["T4"], "resolution"), (r["T10"], "resolution")]
    # T10 (premium, 7 working days from Monday 7 December 09:00): 17 working days by the 31st (Christmas closed)
    assert ticket[r["T10"]].resolution.elapsed == timedelta(days=17, hours=3)
    # as of the moment T2 was answered, nothing had happened yet to the tickets received later
    early = {t.ref: t for t in load_report(db, FROM, TO, at(2026, 11, 26, 15)).tickets}
    assert [ref for ref, t in early.items() if t.first_response.verdict is Verdict.MET] == [r["T1"], r["T3"]]
    assert early[r["T2"]].first_response.verdict is Verdict.BREACHED
    assert early[r["T6"]].first_response.verdict is Verdict.PENDING
    assert early[r["T6"]].first_response.elapsed == timedelta(0)


def test_one_plan_and_a_shorter_period(db: Database, data_set: dict[str, str]) -> None:
    r = data_set
    report = load_report(db, date(2026, 11, 30), date(2026, 12, 6), AS_OF, plan="licentie")
    assert [t.ref for t in report.tickets] == [r["T6"], r["T7"]]
    assert [g.name for g in report.by_plan] == ["licentie"]
    assert [w.week for w in report.weeks] == [date(2026, 11, 30)]


def test_weeks(db: Database, data_set: dict[str, str]) -> None:
    report = load_report(db, FROM, TO, AS_OF)
    weeks = {(w.week, w.group): w for w in report.weeks}
    assert sorted({w for w, _ in weeks}) == [date(2026, 11, 23), date(2026, 11, 30)]
    first = weeks[(date(2026, 11, 23), "licentie")]
    assert (first.answered, first.median, first.p90, first.target) == (2, 13.5 * H, 25 * H, 24 * H)
    assert weeks[(date(2026, 11, 23), "project")].median == 8 * H  # received on Saturday the 28th
    nothing = weeks[(date(2026, 11, 30), "ondersteuning")]  # T8 was closed unanswered
    assert (nothing.answered, nothing.median) == (0, None)
    assert weeks[(date(2026, 11, 30), "premium (critical)")].target == 8 * H


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_chart_is_a_png_of_sensible_size(db: Database, data_set: dict[str, str], tmp_path: Path) -> None:
    png = render_chart(load_report(db, FROM, TO, AS_OF))
    assert len(png) > 5_000
    width, height = _png_size(png)
    assert 800 <= width <= 2_000 and 600 <= height <= 1_600
    from PIL import Image  # matplotlib's own dependency: the file decodes whole

    path = tmp_path / "chart.png"
    path.write_bytes(png)
    with Image.open(path) as image:
        image.load()
        assert image.size == (width, height)
        assert len(image.getcolors(1 << 20) or ()) > 10  # drawn, not blank


def test_an_empty_period_still_draws(db: Database) -> None:
    report = load_report(db, FROM, TO, AS_OF)
    assert report.overall.tickets == 0 and report.overall.first_response.share_met is None
    png = render_chart(report)
    assert _png_size(png)[0] > 0 and len(png) > 5_000
    assert report_data(report)["plans"] == []


def test_the_command(db: Database, db_url: str, data_set: dict[str, str], tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    r = data_set
    config = tmp_path / "slabot.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n')
    out_dir = tmp_path / "charts"
    code, out, err = run_cli("--config", str(config), "report", "--from", "2026-11-23", "--to", "2026-12-06",
                             "--as-of", "2026-12-07T12:00:00+01:00", "--out", str(out_dir), "--json")
    assert code == 0, err
    data = json.loads(out)
    chart = Path(data["chart"])
    assert chart == (out_dir / "sla-report-2026-11-23-2026-12-06.png").resolve()
    assert _png_size(chart.read_bytes())[0] > 0
    assert (data["from"], data["to"], data["as_of"]) == ("2026-11-23", "2026-12-06", "2026-12-07T12:00:00+01:00")
    licentie = next(p for p in data["plans"] if p["name"] == "licentie")
    assert licentie["tickets"] == 4
    assert licentie["first_response"] == {"met": 2, "breached": 1, "pending": 1, "closed": 0, "no_target": 0,
                                          "share_met": pytest.approx(2 / 3), "median_seconds": 7200.0,
                                          "p90_seconds": 90000.0, "breaches": [r["T2"]],
                                          "clock": "business"}
    assert [s["name"] for s in data["staff"]] == ["anna", "carl", "dirk", "eva", UNASSIGNED]
    assert data["overall"]["first_response"]["share_met"] == 0.75
    assert [(b["ref"], b["target"], b["elapsed_seconds"], b["still_open"]) for b in data["breaches"]] == [
        (r["T2"], "first_response", 90000.0, False), (r["T4"], "first_response", 216000.0, True)]
    t4 = next(t for t in data["tickets"] if t["ref"] == r["T4"])
    assert t4["first_response"] == {"verdict": "breached", "elapsed_seconds": 216000.0, "target_seconds": 86400.0,
                                    "clock": "business", "done": False}
    assert t4["staff"] == "anna" and t4["staff_basis"] == "assigned"

    # the tables, and the chart into the current folder by default, for one plan
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("--config", str(config), "report", "--from", "2026-11-23", "--to", "2026-12-06",
                             "--plan", "Licentie", "--as-of", "2026-12-07T12:00")
    assert code == 0, err
    assert f"chart written to {tmp_path.resolve() / 'sla-report-2026-11-23-2026-12-06-licentie.png'}" in out
    assert "-- per plan" in out and "-- per staff member" in out and "-- breaches (1)" in out
    assert r["T2"] in out and r["T4"] not in out


@pytest.mark.parametrize(("argv", "message"), [
    (("--from", "2026-13-01", "--to", "2026-12-06"), "--from '2026-13-01' is not a date; expected YYYY-MM-DD"),
    (("--from", "2026-11-23", "--to", "last week"), "--to 'last week' is not a date; expected YYYY-MM-DD"),
    (("--from", "2026-12-06", "--to", "2026-11-23"), "--to 2026-11-23 is before --from 2026-12-06"),
    (("--from", "2026-11-23", "--to", "2026-12-06", "--plan", "gold"), "unknown plan 'gold'"),
    (("--from", "2026-11-23", "--to", "2026-12-06", "--as-of", "soon"), "--at 'soon' is not an ISO 8601"),
])
def test_bad_arguments_give_a_clear_error(tmp_path: Path, argv: tuple[str, ...], message: str) -> None:
    config = tmp_path / "slabot.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "slabot.db"}"\n')
    code, out, err = run_cli("--config", str(config), "report", *argv, "--out", str(tmp_path))
    assert code == 2
    assert message in err and "Traceback" not in err
    assert out == "" and not list(tmp_path.glob("*.png"))


def test_missing_dates_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run_cli("report", "--from", "2026-11-23")
    assert code == 2 and "the following arguments are required: --to" in capsys.readouterr().err


def test_weekly_summary(db: Database, data_set: dict[str, str]) -> None:
    r = data_set
    assert last_full_week(at(2026, 12, 7, 8)) == (date(2026, 11, 30), date(2026, 12, 6))
    summary = weekly_summary(db, at(2026, 12, 7, 8), language="en")
    assert (summary.report.start, summary.report.end) == (date(2026, 11, 30), date(2026, 12, 6))
    assert summary.text.splitlines()[0] == "SLA week 2026-11-30 to 2026-12-06: 5 tickets"
    assert "licentie: first response 1/1 in time (100%), median 1.0h, p90 1.0h; resolution 1/1 in time" in summary.text
    assert summary.text.endswith("No breaches.")
    assert summary.caption == summary.text and summary.rest is None
    assert summary.filename == "sla-report-2026-11-30-2026-12-06.png"
    assert _png_size(summary.chart)[0] > 0
    dutch = summary_text(load_report(db, FROM, TO, AS_OF))
    assert f"Overschreden: {r['T2']}, {r['T4']}" in dutch


def test_posted_to_the_staff_chat(db: Database, data_set: dict[str, str]) -> None:
    from pydantic import SecretStr
    from test_telegram_standin import serving

    from bot.config import TelegramConfig
    from bot.staffchat.staffbot import StaffBot
    from bot.demo.standins.telegram import TelegramStandIn

    standin = TelegramStandIn()
    chat = -100555

    async def main() -> None:
        async with serving(standin.app()) as url:
            config = TelegramConfig(token=SecretStr("123:TEST"), staff_chat_id=chat, staff_user_ids=[1],
                                    api_base_url=url)
            bot = StaffBot(config, db, now=lambda: AS_OF, announce_every=None)
            await bot.app.initialize()
            try:
                await bot.post_weekly_report()
            finally:
                await bot.app.shutdown()

    asyncio.run(main())
    (sent,) = standin.messages_to(chat)
    assert sent.method == "sendPhoto"
    assert sent.text is not None and sent.text.startswith("SLA-week 2026-11-30 t/m 2026-12-06: 5 tickets")
    assert sent.file is not None and sent.file.name == "sla-report-2026-11-30-2026-12-06.png"
    assert _png_size(sent.file.data)[0] > 0 and len(sent.file.data) > 5_000


def test_statistics() -> None:
    assert median([]) is None and percentile([], 0.9) is None
    assert median([3 * H, H, 2 * H]) == 2 * H
    assert median([H, 2 * H]) == 1.5 * H
    values = [timedelta(minutes=m) for m in range(1, 11)]
    assert percentile(values, 0.9) == timedelta(minutes=9)  # nearest rank: 9 of 10, no float drift to 10
    assert percentile(values, 1.0) == timedelta(minutes=10)
    assert percentile(values[:1], 0.5) == timedelta(minutes=1)
    with pytest.raises(ValueError):
        percentile(values, 0)


def test_data_is_plain_json(db: Database, data_set: dict[str, str]) -> None:
    report: SlaReport = load_report(db, FROM, TO, AS_OF)
    data = report_data(report)
    assert json.loads(json.dumps(data)) == data
    assert {t["staff_basis"] for t in data["tickets"]} == {"taken", "assigned", "replied", "none"}


def test_an_outage_acknowledged_without_a_deadline_is_still_measured_on_the_outage_lines_clock(
        db: Database, db_url: str, tmp_path: Path) -> None:
    """R7 takes the deadline out of a critical acknowledgement, not out of the report: the time to on-call's answer
    is measured on the 24/7 calendar clock against the plan's target (R17); a plan without an SLA has none."""
    add_account(db, "Webshop Noord", "business", contact("Eva", phone="+31611111111", email="eva@noord.example"))
    add_account(db, "Webshop Klein", "pioneer", contact("Kees", phone="+31687654321"))
    config = tmp_path / "paynl.toml"
    config.write_text(f'preset = "paynl"\n[database]\nurl = "{db_url}"\n', encoding="utf-8")
    for number, when in (("+31611111111", "2026-11-28T03:00:00+01:00"), ("+31687654321", "2026-11-28T04:00:00+01:00")):
        code, out, err = run_cli("--config", str(config), "calls", "log", "--from", number, "--critical", "--at",
                                 when, "Betalingen", "falen")
        assert code == 0, out + err
    business, pioneer = "PN-10001", "PN-10002"
    told = json.loads(run_cli("--config", str(config), "tickets", "show", business, "--json")[1])
    (ack,) = [msg for msg in told["messages"] if msg["direction"] == "out"]
    assert "uiterlijk" not in ack["text"] and "gealarmeerd" in ack["text"]  # no deadline told to the customer
    _reply(db, business, at(2026, 11, 28, 5, 30), "eva")  # on-call answers 2.5 hours later, on a Saturday night
    _reply(db, pioneer, at(2026, 11, 28, 6), "eva")
    code, out, err = run_cli("--config", str(config), "report", "--from", "2026-11-23", "--to", "2026-11-29",
                             "--as-of", "2026-11-30T12:00:00+01:00", "--json", "--out", str(tmp_path))
    assert code == 0, err
    lines = {t["ref"]: t for t in json.loads(out)["tickets"]}
    assert lines[business]["plan"] == "business (critical)"
    assert lines[business]["first_response"] == {"verdict": "met", "elapsed_seconds": 2.5 * 3600,
                                                 "target_seconds": 24 * 3600, "clock": "calendar", "done": True}
    assert lines[pioneer]["plan"] == "pioneer (critical)"
    assert lines[pioneer]["first_response"]["verdict"] == "no_target"
