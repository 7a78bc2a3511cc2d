"""R18: free support or paid service, decided by the preset's ordered rule table."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from bot.presets import load_preset
from sla_engine.classification import (
    Classification,
    ClassificationInput,
    ClassificationRule,
    Kind,
    RootCause,
    TemplateWindow,
    classify,
    normalise,
    template_window_state,
)
from sla_engine.errors import PolicyError

MC = load_preset("mailcampaigns")
TODAY = date(2026, 3, 2)


def run(
    text: str,
    *,
    received_on: date = TODAY,
    templates_delivered: date | None = None,
    root_cause: RootCause | None = None,
) -> Classification:
    result = classify(
        ClassificationInput(text, received_on, templates_delivered, root_cause),
        MC.classification,
        template_window=MC.template_window,
        default=Kind(MC.default_kind),
    )
    # Every decision explains itself: the rule that made it and at least one reason.
    assert result.rule
    assert result.reasons and all(r.strip() for r in result.reasons)
    return result


def assert_mentions_keyword(result: Classification, keyword: str) -> None:
    assert any(f"mentions {keyword!r}" in reason for reason in result.reasons), result.reasons


# --- the preset itself ----------------------------------------------------------------------


def test_mailcampaigns_preset_has_the_rule_table_in_order() -> None:
    assert [r.name for r in MC.classification] == [
        "diagnosis_platform",
        "diagnosis_outside",
        "template_in_window",
        "template_after_window",
        "template_unknown",
        "platform_bug",
        "more_results",
        "automation",
        "mailing_layout",
        "contact_lists",
    ]
    assert MC.default_kind == "undetermined"
    assert MC.template_window == timedelta(days=30)


def test_paynl_preset_has_no_rules_and_defaults_to_support() -> None:
    paynl = load_preset("paynl")
    assert paynl.classification == ()
    assert paynl.default_kind == "support"
    result = classify(
        ClassificationInput("Ik wil hulp bij de opmaak van mijn mailing", TODAY),
        paynl.classification,
        template_window=paynl.template_window,
        default=Kind(paynl.default_kind),
    )
    assert result == Classification(Kind.SUPPORT, "default", ("no rule matched",))


# --- platform bugs: free support ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("De verzendknop werkt niet", "werkt niet"),
        ("Bij het versturen krijg ik een foutmelding", "foutmelding"),
        ("Het dashboard is kapot sinds vanochtend", "kapot"),
        ("Mijn campagne is niet verstuurd terwijl hij ingepland stond", "niet verstuurd"),
        ("Er is een storing in het platform", "storing"),
        ("I get an error when I click the send button", "error"),
        ("The send button does not work", "does not work"),
        ("The editor doesn\u2019t work in Firefox", "doesn't work"),  # typographic apostrophe
        ("Scheduling is not working", "not working"),
        ("I think I found a bug in the statistics", "bug"),
    ],
)
def test_platform_bug_is_free_support(text: str, keyword: str) -> None:
    result = run(text)
    assert result.kind is Kind.SUPPORT
    assert result.rule == "platform_bug"
    assert_mentions_keyword(result, keyword)
    assert "free support" in result.reasons[-1]


# --- everything else: paid service ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rule", "keyword"),
    [
        # more results
        ("Hoe krijg ik meer resultaat uit mijn nieuwsbrief?", "more_results", "meer resultaat"),
        ("Kunnen jullie helpen mijn open rate te verhogen?", "more_results", "open rate"),
        ("How do I get more results from my mailings?", "more_results", "more results"),
        # automation campaigns
        ("Willen jullie een automation campagne instellen?", "automation", "automation"),
        ("Ik wil een welkomstflow opzetten: flow na inschrijving", "automation", "flow"),
        ("Can you set up a drip campaign for new customers?", "automation", "drip"),
        ("Please build a workflow for abandoned carts", "automation", "workflow"),
        # mailing layout
        ("Kunnen jullie helpen met de opmaak van onze mailing?", "mailing_layout", "opmaak"),
        ("Can you improve the layout of our newsletter?", "mailing_layout", "layout"),
        ("De lay-out van de header moet anders", "mailing_layout", "lay-out"),
        # contact-list management
        ("Graag hulp met contactlijst management", "contact_lists", "contactlijst"),
        ("Ik wil mijn contactlijsten opschonen", "contact_lists", "contactlijsten"),
        ("Please help me clean up my contact lists", "contact_lists", "contact lists"),
        ("How do I import contacts from our CRM?", "contact_lists", "import contacts"),
    ],
)
def test_everything_else_is_paid_service(text: str, rule: str, keyword: str) -> None:
    result = run(text)
    assert result.kind is Kind.SERVICE
    assert result.rule == rule
    assert_mentions_keyword(result, keyword)
    assert "paid service" in result.reasons[-1]


def test_a_bug_in_a_paid_area_is_still_free_support() -> None:
    # "Ondersteuning die niet te maken heeft met technisch disfunctioneren" is service;
    # a broken feature is a platform bug even when it concerns layout or contact lists.
    result = run("De opmaak editor werkt niet meer")
    assert (result.kind, result.rule) == (Kind.SUPPORT, "platform_bug")
    result = run("I get an error when I import my contact list")
    assert (result.kind, result.rule) == (Kind.SUPPORT, "platform_bug")


# --- normalisation and whole-word matching --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("HELP MET DE OPMAAK", "mailing_layout"),
        ("Contactlijst importeren lukt me niet", "contact_lists"),
        ("De VERZENDKNOP WERKT  NIET", "platform_bug"),  # case and doubled whitespace
        ("Ik wil meer resultaat, graag advies over conversie", "more_results"),
        ("Ondersteuning om meer resultaat te creëren", "more_results"),  # accent in the text
    ],
)
def test_keywords_match_regardless_of_case_accents_and_spacing(text: str, rule: str) -> None:
    assert run(text).rule == rule


def test_accented_keyword_matches_unaccented_text() -> None:
    rule = ClassificationRule("accent", Kind.SERVICE, keywords=("créatie",))
    result = classify(ClassificationInput("Hulp bij CREATIE van een mailing", TODAY), (rule,))
    assert result.rule == "accent"


def test_normalise() -> None:
    assert normalise("  Créëren\tOPMAAK \n lijst ") == "creeren opmaak lijst"
    assert normalise("doesn\u2019t") == "doesn't"


@pytest.mark.parametrize(
    "text",
    [
        "We sturen flowers naar onze klanten",  # "flow" inside "flowers"
        "Onze designer heeft een vraag over de factuur",  # "design" inside "designer"
        "I need to debug my own website",  # "bug" inside "debug"
        "Segmentatie is voor later",  # "segment" inside "segmentatie"
        "Ik wil mijn templatebestand ontvangen",  # "template" inside "templatebestand"
    ],
)
def test_a_keyword_inside_another_word_does_not_match(text: str) -> None:
    result = run(text, templates_delivered=TODAY - timedelta(days=5))
    assert result.kind is Kind.UNDETERMINED
    assert result.rule == "default"


# --- templates: 30 days after delivery ------------------------------------------------------


def test_template_issue_ten_days_after_delivery_is_free_support() -> None:
    delivered = TODAY - timedelta(days=10)
    result = run("Het template toont de footer verkeerd", templates_delivered=delivered)
    assert (result.kind, result.rule) == (Kind.SUPPORT, "template_in_window")
    assert_mentions_keyword(result, "template")
    assert any(str(delivered) in r and "10 days" in r and "inside" in r for r in result.reasons), result.reasons


def test_template_issue_31_days_after_delivery_is_paid_service() -> None:
    delivered = TODAY - timedelta(days=31)
    result = run("The template header looks wrong", templates_delivered=delivered)
    assert (result.kind, result.rule) == (Kind.SERVICE, "template_after_window")
    assert any(str(delivered) in r and "31 days" in r and "outside" in r for r in result.reasons), result.reasons


@pytest.mark.parametrize(
    ("days_after", "kind", "rule"),
    [
        (0, Kind.SUPPORT, "template_in_window"),  # the day of delivery
        (29, Kind.SUPPORT, "template_in_window"),
        (30, Kind.SUPPORT, "template_in_window"),  # "binnen 30 dagen": day 30 is still inside
        (31, Kind.SERVICE, "template_after_window"),  # day 31 is outside
        (365, Kind.SERVICE, "template_after_window"),
    ],
)
def test_template_window_boundary(days_after: int, kind: Kind, rule: str) -> None:
    delivered = date(2026, 1, 30)
    result = run(
        "Het sjabloon breekt in Outlook",
        received_on=delivered + timedelta(days=days_after),
        templates_delivered=delivered,
    )
    assert (result.kind, result.rule) == (kind, rule)


def test_template_window_state() -> None:
    delivered = date(2026, 1, 30)
    window = timedelta(days=30)
    assert template_window_state(date(2026, 3, 1), delivered, window) is TemplateWindow.INSIDE  # day 30
    assert template_window_state(date(2026, 3, 2), delivered, window) is TemplateWindow.OUTSIDE  # day 31
    assert template_window_state(date(2026, 3, 2), None, window) is TemplateWindow.UNKNOWN


def test_template_issue_with_unknown_delivery_date_is_undetermined() -> None:
    result = run("De sjablonen tonen geen afbeeldingen", templates_delivered=None)
    assert (result.kind, result.rule) == (Kind.UNDETERMINED, "template_unknown")
    assert_mentions_keyword(result, "sjablonen")
    assert any("no template-delivery date" in r for r in result.reasons)


def test_template_structures_count_as_templates() -> None:
    # "Technische issues van templates of structuren ... binnen 30 dagen"
    result = run("De structuren van de nieuwsbrief kloppen niet", templates_delivered=TODAY - timedelta(days=3))
    assert (result.kind, result.rule) == (Kind.SUPPORT, "template_in_window")


def test_template_rules_come_before_generic_bug_keywords() -> None:
    # A broken template long after delivery is a template issue (service), not a platform bug.
    result = run("Mijn template is kapot", templates_delivered=TODAY - timedelta(days=60))
    assert (result.kind, result.rule) == (Kind.SERVICE, "template_after_window")


def test_template_issue_before_delivery_is_not_billed_as_after_the_window() -> None:
    result = run("Het template is kapot", received_on=date(2026, 3, 2), templates_delivered=date(2026, 3, 10))
    assert result.kind is Kind.UNDETERMINED
    assert result.rule == "template_unknown"
    assert any("2026-03-10" in reason for reason in result.reasons)


# --- diagnosis: the recorded root cause ------------------------------------------------------


def test_diagnosis_platform_bug_is_free_support() -> None:
    result = run("Klant meldt dat statistieken niet kloppen", root_cause=RootCause.PLATFORM)
    assert (result.kind, result.rule) == (Kind.SUPPORT, "diagnosis_platform")
    assert any("root cause recorded as platform" in r for r in result.reasons)


def test_diagnosis_outside_the_platform_is_paid_service() -> None:
    result = run("Customer says the statistics are off", root_cause=RootCause.OUTSIDE)
    assert (result.kind, result.rule) == (Kind.SERVICE, "diagnosis_outside")
    assert any("root cause recorded as outside" in r for r in result.reasons)


@pytest.mark.parametrize(
    ("text", "root_cause", "kind", "rule"),
    [
        ("Graag hulp met de opmaak", RootCause.PLATFORM, Kind.SUPPORT, "diagnosis_platform"),
        ("Automation flow instellen", RootCause.PLATFORM, Kind.SUPPORT, "diagnosis_platform"),
        ("De verzendknop werkt niet", RootCause.OUTSIDE, Kind.SERVICE, "diagnosis_outside"),
        ("I get an error when sending", RootCause.OUTSIDE, Kind.SERVICE, "diagnosis_outside"),
    ],
)
def test_root_cause_overrides_keywords(text: str, root_cause: RootCause, kind: Kind, rule: str) -> None:
    result = run(text, root_cause=root_cause)
    assert (result.kind, result.rule) == (kind, rule)


def test_root_cause_overrides_template_window() -> None:
    inside = TODAY - timedelta(days=5)
    result = run("Template toont verkeerde links", templates_delivered=inside, root_cause=RootCause.OUTSIDE)
    assert (result.kind, result.rule) == (Kind.SERVICE, "diagnosis_outside")
    outside = TODAY - timedelta(days=90)
    result = run("Template toont verkeerde links", templates_delivered=outside, root_cause=RootCause.PLATFORM)
    assert (result.kind, result.rule) == (Kind.SUPPORT, "diagnosis_platform")


# --- nothing matches -------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["Goedemorgen, kunnen jullie mij terugbellen?", "Hello, quick question", ""])
def test_nothing_matching_is_undetermined_by_default(text: str) -> None:
    result = run(text)
    assert result == Classification(Kind.UNDETERMINED, "default", ("no rule matched",))


# --- the table itself -----------------------------------------------------------------------


def test_first_matching_rule_wins() -> None:
    rules = (
        ClassificationRule("first", Kind.SERVICE, keywords=("opmaak",), reason="first"),
        ClassificationRule("second", Kind.SUPPORT, keywords=("opmaak",), reason="second"),
    )
    result = classify(ClassificationInput("opmaak", TODAY), rules)
    assert result == Classification(Kind.SERVICE, "first", ("the request mentions 'opmaak'", "first"))


def test_a_rule_needs_a_condition() -> None:
    with pytest.raises(PolicyError):
        ClassificationRule("empty", Kind.SERVICE)
