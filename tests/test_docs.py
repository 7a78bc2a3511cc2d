"""The docs: the configuration reference is generated from the config models, links resolve, the unit is the file."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from bot.cli import main
from bot.config_reference import DOC_PATH, REGENERATE, render, undescribed

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_configuration_reference_is_generated_from_the_models() -> None:
    written = (ROOT / DOC_PATH).read_text(encoding="utf-8")
    assert written == render(), f"{DOC_PATH} differs from the config models; regenerate it: {REGENERATE}"


def test_every_config_key_has_a_description() -> None:
    missing = undescribed()
    assert not missing, (f"add Field(description=...) in bot/config.py for {', '.join(missing)}, "
                         f"then regenerate {DOC_PATH}: {REGENERATE}")


def test_the_reference_names_every_key_and_its_environment_variable() -> None:
    text = render()
    for key in ("`url`", "`public_url`", "`auth_token`", "`imap_poll_seconds`", "`staff_user_ids`", "`file`"):
        assert f"| {key} |" in text
    assert "`SLABOT_TWILIO_AUTH_TOKEN`" in text
    assert "`SLABOT_TELEGRAM_STAFF_USER_IDS` (comma-separated)" in text
    assert "| `language` | one of `nl` or `en` | `\"nl\"` | `SLABOT_LANGUAGE` |" in text
    assert "| `templates` | table of strings | `{}` | file only |" in text


def test_config_reference_command_prints_the_reference() -> None:
    out = io.StringIO()
    assert main(["config", "reference"], out=out) == 0
    assert out.getvalue() == render()


def test_the_unit_shown_in_deployment_md_is_docs_slabot_service() -> None:
    text = (DOCS / "deployment.md").read_text(encoding="utf-8")
    unit = (DOCS / "slabot.service").read_text(encoding="utf-8")
    blocks = re.findall(r"```ini\n(.*?)```", text, re.DOTALL)
    assert unit in blocks, "deployment.md shows a unit that differs from docs/slabot.service"


def test_the_template_unit_shown_in_deployment_md_is_docs_slabot_at_service_and_compose_yaml_is_there() -> None:
    text = (DOCS / "deployment.md").read_text(encoding="utf-8")
    template = (DOCS / "slabot@.service").read_text(encoding="utf-8")
    assert template in re.findall(r"```ini\n(.*?)```", text, re.DOTALL)
    single = (DOCS / "slabot.service").read_text(encoding="utf-8")
    # the same service but for the port of the instance (and its comments)
    assert [line for line in template.splitlines() if not line.startswith("#") and line not in single] == [
        "Description=slabot worker on port %i (tickets, SLA deadlines, staff reminders)",
        "Environment=SLABOT_HTTP_PORT=%i", "RestartSec=1s"]
    compose = (DOCS / "compose.yaml").read_text(encoding="utf-8")
    assert all(f"\n  {service}:\n" in compose for service in ("db", "worker", "proxy"))
    assert "compose.yaml" in text


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.MULTILINE)}


@pytest.mark.parametrize("doc", sorted(p.name for p in DOCS.glob("*.md")) + ["../README.md"])
def test_links_between_the_docs_resolve(doc: str) -> None:
    path = (DOCS / doc).resolve()
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # an outside address
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        assert linked.exists(), f"{doc}: the link {target} points at nothing"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{doc}: {target}: no such heading in {linked.name}"
