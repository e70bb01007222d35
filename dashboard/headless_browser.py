"""Headless Chromium driving the served dashboard through Playwright (the system's browser; none is downloaded)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")  # Debian's `chromium` package (make test installs it)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 900}
SETTLE_TIMEOUT_MS = 60_000
RUNNING = '[data-testid="stStatusWidget"]'  # shown while a script run is in progress
MAIN = '[data-testid="stMain"]'  # the scrolling area that holds a page
QUIET_MS = 1000  # no script run for this long: the page is done
RELAYOUT_MS = 1000  # charts redraw for a new window size


def chromium_path() -> Path | None:
    """The Chromium to drive: CHROMIUM_PATH if set, else Debian's, else one on PATH; None when there is none."""
    named = os.environ.get("CHROMIUM_PATH")
    for candidate in ([Path(named)] if named else []) + [CHROMIUM]:
        if candidate.is_file():
            return candidate
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return Path(found) if found else None


def launch_chromium(playwright, executable: Path):
    """A headless Chromium from Playwright's sync API."""
    return playwright.chromium.launch(executable_path=str(executable), headless=True, args=CHROMIUM_ARGS)


def settle(page, *, timeout_ms: int = SETTLE_TIMEOUT_MS) -> None:
    """Wait until the page has drawn its title and no script run has been in progress for QUIET_MS (the running
    indicator shows up a moment after a run starts, so one look is not enough)."""
    page.wait_for_selector(f"{MAIN} h1", timeout=timeout_ms)
    for _ in range(timeout_ms // QUIET_MS):
        page.wait_for_selector(RUNNING, state="detached", timeout=timeout_ms)
        page.wait_for_timeout(QUIET_MS)
        if page.locator(RUNNING).count() == 0:
            return
    raise TimeoutError(f"the page was still running after {timeout_ms} ms")


def upload_file(page, path: str | Path) -> None:
    """Put ``path`` into the page's (first) file uploader."""
    page.locator('input[type="file"]').first.set_input_files(str(path))


def full_page_screenshot(page, path: str | Path) -> None:
    """Screenshot all of the page: Streamlit scrolls inside its main area, so the window is first made as tall as
    that area's content (then put back)."""
    viewport = page.viewport_size
    height = page.evaluate(f"() => document.querySelector('{MAIN}')?.scrollHeight ?? 0")
    page.set_viewport_size({"width": viewport["width"], "height": max(viewport["height"], int(height))})
    try:
        page.wait_for_timeout(RELAYOUT_MS)
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(viewport)
