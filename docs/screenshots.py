"""Make the dashboard's screenshots in docs/images/ again: the queue and a ticket being worked on.

It runs the browser walk-through of tests/test_dashboard_workspace_browser.py (slabot on a loopback port,
WhatsApp on the Twilio stand-in, a headless chromium) with ``SLABOT_SCREENSHOTS`` set to this folder's images/.
It needs chromium and chromedriver (Debian: ``apt-get install -y chromium chromium-driver``) and selenium.

    .venv/bin/python docs/screenshots.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"


def main() -> int:
    env = {**os.environ, "SLABOT_SCREENSHOTS": str(IMAGES),
           "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_dashboard_workspace_browser.py"], cwd=ROOT, env=env, check=False)
    for name in ("dashboard-queue.png", "dashboard-ticket.png"):
        print(f"{IMAGES / name}: {'made' if (IMAGES / name).exists() else 'MISSING'}")
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
