"""The headless Chromium the browser tests share: one launch (Debian's chromium, skipped when it is
missing) and the clinician's page that most tests drive."""

import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def chromium(monkeypatch, close_thread_connections):
    """A launched headless Chromium; each test opens its own context with the options it needs."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls here are plain sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    """A page that accepts downloads (the CSV export), 20 s for every wait."""
    page = chromium.new_context(accept_downloads=True).new_page()
    page.set_default_timeout(20_000)
    return page
