"""The dashboard against a forged Host header and out-of-range report dates (issue 18, points 5 and 6).

The whole application runs on a loopback port (the Host check and the redirect to ``/dashboard/`` belong to
slabot's HTTP app); the report's dates go to the dashboard's app through httpx, logged in.
"""

from __future__ import annotations

import asyncio
import html
from pathlib import Path

import httpx
import pytest
from helpers import app_running, free_port
from test_dashboard import NOW, PREFIX, SECRET_KEY, Browser, Site, anna_hash, paynl_db, site  # noqa: F401

from bot.config import load_config

PUBLIC = "https://support.example.nl"


def _config(tmp_path: Path, anna_hash: str, port: int, public_url: str | None) -> Path:
    config = tmp_path / "slabot.toml"
    config.write_text(
        f'preset = "paynl"\n[database]\nurl = "sqlite:///{tmp_path / "slabot.db"}"\n'
        f'[http]\nhost = "127.0.0.1"\nport = {port}\n' + (f'public_url = "{public_url}"\n' if public_url else "")
        + f'[dashboard]\nsecret_key = "{SECRET_KEY}"\n'
        f'[[dashboard.users]]\nname = "anna"\npassword_hash = "{anna_hash}"\n', encoding="utf-8")
    return config


@pytest.mark.parametrize("public_url", [None, PUBLIC])
def test_a_redirect_never_goes_to_the_host_a_request_names(tmp_path: Path, anna_hash: str,
                                                          public_url: str | None) -> None:
    from bot.app import Application

    port = free_port()
    config = _config(tmp_path, anna_hash, port, public_url)

    async def main() -> None:
        async with app_running(Application(load_config(config), now=lambda: NOW)):
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                for path in ("/dashboard", "/dashboard?x=1", "/dashboard/report/", "/dashboard/login/"):
                    answer = await client.get(path, headers={"Host": "evil.example"})
                    assert "evil.example" not in answer.headers.get("location", ""), (path, answer.headers)
                    if public_url:
                        assert answer.status_code == 400, path  # an unknown host is refused
                    elif path.startswith("/dashboard?") or path == "/dashboard":
                        assert answer.is_redirect and answer.headers["location"].startswith(f"{PREFIX}/")
                own = await client.get("/dashboard", headers={"Host": "support.example.nl"})
                assert own.is_redirect
                assert own.headers["location"] in (f"{PREFIX}/", f"{public_url or ''}{PREFIX}/")
                health = await client.get("/healthz")  # the monitoring on the machine itself
                assert health.status_code == 200

    asyncio.run(main())


@pytest.mark.parametrize("query, field", [
    ("from=0001-01-01&to=9999-12-31", "from"),
    ("from=2026-11-01&to=9999-12-31", "to"),
    ("to=0001-01-03", "to"),
    ("from=0001-01-01", "from"),
    ("from=2026-13-01", "from"),
    ("from=2026-11-01&to=gisteren", "to"),
    ("from=2000-01-01&to=2099-12-31", "to"),  # a century of weeks: too long a period
])
def test_a_report_period_out_of_range_is_a_400_naming_the_field(site: Site, query: str, field: str) -> None:

    async def body(b: Browser) -> None:
        assert (await b.login()).status_code == 303
        page = await b.get(f"/report?{query}")
        assert page.status_code == 400 and f"Ongeldige periode: {field} " in html.unescape(page.text), page.text
        chart = await b.get(f"/report/chart.png?{query}")
        assert chart.status_code == 400 and chart.json()["error"].startswith(f"{field} "), chart.text

    site.run(body)


def test_a_long_period_within_range_still_answers(site: Site) -> None:

    async def body(b: Browser) -> None:
        assert (await b.login()).status_code == 303
        page = await b.get("/report?from=2022-01-01&to=2026-12-31")
        assert page.status_code == 200
        chart = await b.get("/report/chart.png?from=2022-01-01&to=2026-12-31")
        assert chart.status_code == 200 and chart.headers["content-type"] == "image/png"

    site.run(body)
