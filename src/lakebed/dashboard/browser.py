"""Driving the dashboard in a real browser (the end-to-end tests and the benchmark):
Debian's Chromium, headless, with nothing reaching beyond this machine."""

from __future__ import annotations

from pathlib import Path

# Debian's binary itself: /usr/bin/chromium is a wrapper script that adds extensions.
CHROMIUM = Path("/usr/lib/chromium/chromium")
# No background traffic: the machine's network may be closed, and nothing may need one.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--disable-domain-reliability", "--no-pings",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--disable-features=AutofillServerCommunication,OptimizationHints,MediaRouter,Translate",
]  # fmt: skip
# A page whose script has finished running (its widgets may still be drawing).
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
