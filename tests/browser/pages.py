"""What the browser tests do in a page: log in, wait for a condition; where screenshots go."""

from __future__ import annotations

import time
from pathlib import Path

from accounts.tests.factories import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


def log_in(page, base_url: str, username: str) -> None:
    """Log in through the login form (every test user has the factory's password)."""
    page.goto(f"{base_url}/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#dashboard")
    # The page's HTML (buttons included) is there before its module script has
    # wired them; a click before that is lost. The script publishes this last.
    wait_until(page, "Boolean(window.missionControl)", timeout=10)


def wait_until(page, expression: str, *, timeout: float = 5.0):
    """Poll a JavaScript expression from Python until it is truthy.

    Playwright's `wait_for_function` evaluates string predicates with `eval`
    inside the page, which the dashboard's CSP (rightly) refuses.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout}s: {expression}")
        page.wait_for_timeout(50)
