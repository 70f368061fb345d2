"""A real browser for the report tests: headless Chromium (Debian's `chromium` package) driven by Playwright.

Playwright's own browser download is not used: `executable_path` points it at the system's Chromium
(`$FAKEVLM_CHROMIUM`, else `chromium`, `chromium-browser`, `google-chrome` on PATH). Without Playwright or a
Chromium the browser tests skip, saying which is missing; CI installs both (`.ci/run`).

`Visit` opens a page with everything that could betray an unsafe report recorded: every request the page
makes, console messages, uncaught errors, dialogs (alert/confirm/prompt: dismissed and recorded), and
Content-Security-Policy violations (from the `securitypolicyviolation` event, installed before any script
of the page runs). The context is offline, so nothing could be fetched even if the page tried.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__violations.push(e.violatedDirective + " " + e.blockedURI));
"""


def chromium_path() -> str | None:
    env = os.environ.get("FAKEVLM_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


@dataclass
class Visit:
    page: object
    url: str
    requests: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    @property
    def console_errors(self) -> list[str]:
        return [text for kind, text in self.console if kind == "error"]

    def violations(self) -> list[str]:
        return self.page.evaluate("window.__violations")  # type: ignore[attr-defined]

    def assert_clean(self) -> None:
        """Nothing fetched but the page itself, no console error, no uncaught error, no dialog, no CSP report."""
        assert self.requests == [self.url]
        assert self.console_errors == [] and self.errors == [] and self.dialogs == []
        assert self.violations() == []


def _missing(why: str):
    """Skip, saying what is missing; fail instead where a browser is required ($FAKEVLM_REQUIRE_BROWSER: CI)."""
    if os.environ.get("FAKEVLM_REQUIRE_BROWSER", "") not in ("", "0"):
        pytest.fail(f"FAKEVLM_REQUIRE_BROWSER is set but {why}")
    pytest.skip(why)


def launch():
    """(playwright, browser), or a skip saying what is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("browser tests need Playwright (pip install playwright; it is in the test extra)")
    executable = chromium_path()
    if executable is None:
        _missing("browser tests need Chromium (apt-get install chromium, or set FAKEVLM_CHROMIUM)")
    manager = sync_playwright().start()
    try:
        # --no-sandbox: CI runs as root, where Chromium refuses its sandbox
        browser = manager.chromium.launch(executable_path=executable, args=["--no-sandbox"])
    except Exception:
        manager.stop()
        raise
    return manager, browser


def visit(browser, path: Path, *, width: int = 1280, height: int = 1000) -> Visit:
    context = browser.new_context(offline=True, viewport={"width": width, "height": height})
    page = context.new_page()
    page.add_init_script(_WATCH)
    url = path.resolve().as_uri()
    seen = Visit(page=page, url=url)
    page.on("request", lambda request: seen.requests.append(request.url))
    page.on("console", lambda message: seen.console.append((message.type, message.text)))
    page.on("pageerror", lambda error: seen.errors.append(str(error)))

    def on_dialog(dialog) -> None:
        seen.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")
    return seen
