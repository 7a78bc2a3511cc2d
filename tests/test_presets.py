"""Both shipped presets carry every plan and rule of R9-R13, R15 and R17 as data."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.presets import load_preset
from sla_engine.clocks import ClockKind
from sla_engine.deadlines import first_response_due
from sla_engine.policy import (
    Channel,
    Priority,
    ReminderRule,
    SlaTerms,
    parse_duration,
    queue_rank,
    takes_request,
)
from sla_engine.errors import PolicyError

AMS = ZoneInfo("Europe/Amsterdam")
MC = load_preset("mailcampaigns")
PN = load_preset("paynl")


def test_opening_hours_r9() -> None:
    assert MC.calendars["office"].describe_hours() == {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
    assert PN.calendars["office"].describe_hours() == {d: ["09:00-17:30"] for d in ("mon", "tue", "wed", "thu", "fri")}
    outage = PN.calendars["outage"]
    assert outage.holiday_country is None
    assert all(outage.is_open(datetime(2026, 12, 25, h, tzinfo=AMS)) for h in range(24))
    for cal in (MC.calendars["office"], PN.calendars["office"], outage):
        assert cal.timezone == "Europe/Amsterdam"
    assert MC.calendars["office"].holiday_country == "NL"


def test_mailcampaigns_plans_r11_r13() -> None:
    for name, (low, high) in {"licentie": ("3w", "4w"), "ondersteuning": ("2w", "3w"), "project": ("2w", "3w")}.items():
        plan = MC.plan(name)
        assert plan.sla
        assert plan.first_response is not None
        assert plan.first_response.duration == timedelta(hours=24)
        assert plan.first_response.clock is ClockKind.BUSINESS
        assert plan.resolution is not None and plan.resolution.clock is ClockKind.CALENDAR
        assert (plan.resolution.minimum, plan.resolution.maximum) == (parse_duration(low), parse_duration(high))
        assert plan.channels == {Channel.PHONE, Channel.EMAIL, Channel.WHATSAPP, Channel.PLATFORM}  # "Via het platform"
        assert plan.paid_service
    assert MC.plan("ondersteuning").staff_role == "campaign_specialist"
    assert MC.plan("ondersteuning").monthly_hours
    assert MC.plan("project").staff_role is not None
    assert MC.plan("licentie").staff_role is None


def test_paynl_plans_r5_r12_r13_r15() -> None:
    assert PN.plan("pioneer").channels == {Channel.WHATSAPP}
    assert PN.plan("professional").channels == {Channel.WHATSAPP, Channel.EMAIL, Channel.PHONE}
    for name in ("pioneer", "professional"):
        plan = PN.plan(name)
        assert not plan.sla and plan.first_response is None and plan.resolution is None
    business, premium = PN.plan("business"), PN.plan("premium")
    assert business.first_response is not None and business.first_response.duration == timedelta(hours=24)
    assert premium.first_response is not None and premium.first_response.duration == timedelta(hours=8)
    for plan in (business, premium):
        assert plan.resolution is not None
        assert plan.resolution.clock is ClockKind.WORKING_DAYS
        assert (plan.resolution.minimum, plan.resolution.maximum) == (timedelta(days=3), timedelta(days=7))
        assert plan.resolution.excludes_release
        assert plan.staff_role == "account_manager"
    assert premium.queue_priority > max(p.queue_priority for p in PN.plans if p is not premium)
    assert not any(p.paid_service for p in PN.plans)


def test_the_outage_line_is_open_to_every_plan_and_critical_issues_rank_first_r5_r15() -> None:
    pioneer, professional, business, premium = (PN.plan(n) for n in ("pioneer", "professional", "business",
                                                                      "premium"))
    assert not takes_request(pioneer, Channel.PHONE, critical=False, outage_line=PN.critical)  # R5
    assert takes_request(pioneer, Channel.PHONE, critical=True, outage_line=PN.critical)  # R17: every plan
    assert not takes_request(pioneer, Channel.PHONE, critical=True, outage_line=None)  # no outage line, no exception
    critical, normal = Priority.CRITICAL, Priority.NORMAL
    ranks = [queue_rank(premium, critical), queue_rank(business, critical), queue_rank(professional, critical),
             queue_rank(None, critical), queue_rank(premium, normal), queue_rank(business, normal)]
    assert ranks == sorted(ranks, reverse=True) and ranks[2] == ranks[3] and ranks[3] > ranks[4] > ranks[5]
    assert queue_rank(business, normal) == queue_rank(pioneer, normal) == queue_rank(None, normal) == 0
    with pytest.raises(PolicyError, match="queue_priority"):
        replace(premium, queue_priority=5000)


def test_outage_line_r17() -> None:
    assert PN.critical is not None
    assert PN.critical.calendar == "outage"
    assert PN.critical.repage_every == timedelta(minutes=15)
    assert PN.critical.outage_charge_warning
    assert MC.critical is None


def test_default_reminders_r16() -> None:
    specs = [r.spec for r in MC.plan("licentie").reminders]
    assert specs == ["75%", "1h before", "breach"]
    assert ReminderRule.parse("breach").escalate
    with pytest.raises(PolicyError):
        ReminderRule.parse("150%")


def test_unknown_plan_names_choices() -> None:
    with pytest.raises(PolicyError, match="licentie, ondersteuning, project"):
        MC.plan("gold")


def test_terms_snapshot_round_trips_and_keeps_rate_r22() -> None:
    terms = MC.terms("licentie", date(2026, 11, 23))
    data = json.loads(json.dumps(terms.to_dict()))
    again = SlaTerms.from_dict(data)
    assert again.to_dict() == terms.to_dict()
    assert terms.rate is not None and str(terms.rate.ad_hoc) == "130.00"
    received = datetime(2026, 11, 23, 10, tzinfo=AMS)
    # a later change of the preset (a longer target) moves nothing on the stored snapshot
    old = MC.plan("licentie")
    assert old.first_response is not None
    longer = replace(old, first_response=replace(old.first_response, duration=timedelta(hours=48)))
    changed = replace(MC, plans=(longer, *MC.plans[1:]))
    assert first_response_due(received, changed.terms("licentie", received.date())) == datetime(
        2026, 12, 1, 10, tzinfo=AMS)
    assert first_response_due(received, again) == datetime(2026, 11, 26, 10, tzinfo=AMS)


def test_terms_carry_only_the_calendars_used() -> None:
    assert set(PN.terms("premium", date(2026, 1, 5)).calendars) == {"office"}
    assert PN.terms("pioneer", date(2026, 1, 5)).rate is None
