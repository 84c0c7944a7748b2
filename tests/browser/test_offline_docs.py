"""/docs renders in a real headless Chromium with every asset served by kobliat itself."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import httpx
import pytest

from tests.support.serve import serving

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def chromium() -> str:
    """The machine's Chromium (Debian's `chromium` package); required in CI."""
    if CHROMIUM is None:
        if os.environ.get("KOBLIAT_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is required but not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `kobliat serve` on an embedded SQLite file; yields its base URL."""
    workdir = tmp_path_factory.mktemp("docs")
    with serving(
        workdir, {"KOBLIAT_DATABASE_URL": f"sqlite:///{workdir / 'kobliat.db'}"}
    ) as server:
        yield server.base


def _render(chromium: str, url: str, ready_selector: str) -> tuple[list[str], list[str], str]:
    """Open `url`; return (URLs requested, URLs refused because they left the server, page text)."""
    from playwright.sync_api import Route, sync_playwright

    base = url.split("/", 3)[:3]
    origin = "/".join(base)
    requested: list[str] = []
    refused: list[str] = []

    def only_local(route: Route) -> None:
        target = route.request.url
        requested.append(target)
        if target.startswith(origin + "/") or target.startswith("data:"):
            route.continue_()
        else:
            refused.append(target)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.route("**/*", only_local)
            page.goto(url)
            page.wait_for_selector(ready_selector, timeout=60_000)
            text = page.inner_text("body")
        finally:
            browser.close()
    return requested, refused, text


def test_swagger_ui_renders_every_operation_from_local_assets(chromium: str, served: str) -> None:
    requested, refused, text = _render(chromium, f"{served}/docs", ".opblock-summary")
    assert refused == []
    assert any(url.endswith(".js") for url in requested)
    assert f"{served}/openapi.json" in requested
    for path in ("/conversations", "/customers", "/events", "/webhooks/whatsapp"):
        assert path in text


def test_redoc_is_not_served(served: str) -> None:
    assert httpx.get(f"{served}/redoc").status_code == 404
