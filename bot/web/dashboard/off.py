"""``/dashboard/`` while the dashboard is off: a small page that says so and how to turn it on (not a bare 404)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Route

PREFIX = "/dashboard"
REASON = ("no [dashboard] users and secret_key; `slabot dashboard hash-password` and `slabot dashboard secret-key` "
          "make them (docs/configuration.md, [dashboard])")

PAGE = """<!doctype html>
<html lang="nl"><head><meta charset="utf-8"><title>slabot: dashboard off</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5}
code,pre{background:#f3f3f3;padding:.1rem .3rem}pre{padding:.6rem}</style></head><body>
<h1>Het dashboard staat uit</h1>
<p>Er zijn nog geen medewerkers ingesteld. Zet in de configuratie een <code>secret_key</code> en minstens
één gebruiker onder <code>[dashboard]</code>, en start slabot opnieuw:</p>
<h1 lang="en">The dashboard is off</h1>
<p lang="en">No staff logins are configured. Add a <code>secret_key</code> and at least one user under
<code>[dashboard]</code> in the config, then restart slabot:</p>
<pre>slabot dashboard secret-key       # prints a key
slabot dashboard hash-password    # prints a password's hash

[dashboard]
secret_key = "..."
[[dashboard.users]]
name = "anna"
password_hash = "$argon2id$..."</pre>
</body></html>
"""


def dashboard_off_routes() -> list[BaseRoute]:
    """``/dashboard`` and everything under it: the page above, with 404 (there is no dashboard here)."""
    async def off(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE, status_code=404, headers={"Cache-Control": "no-store"})

    return [Route(PREFIX, off, methods=["GET", "HEAD"]), Route(PREFIX + "/{rest:path}", off, methods=["GET", "HEAD"])]


__all__ = ["REASON", "dashboard_off_routes"]
