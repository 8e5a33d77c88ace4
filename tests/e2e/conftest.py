"""Browser fixtures for the picker's end-to-end tests: the system Chromium, headless.

The server is the real product from the shared `live_server` fixture (tests/conftest.py).
THUMBS_TEST_E2E_BASE_URL points the tests at an already running server instead (e.g. `npm run preview`
with the frontend's mock API, or a `thumbs demo` you started yourself). The older name
THUMBS_E2E_BASE_URL never arrived: tests/conftest.py drops every THUMBS_* variable but THUMBS_TEST_*
at import, so the tests started their own server anyway.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def base_url(request: pytest.FixtureRequest) -> str:
    override = os.environ.get("THUMBS_TEST_E2E_BASE_URL")
    if override:
        return override.rstrip("/")
    return str(request.getfixturevalue("live_server").base_url)


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    from tests.conftest import require_binary

    require_binary(CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
