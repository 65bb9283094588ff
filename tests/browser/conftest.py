"""Session fixtures for the browser tests: Chromium, and an api-server with statements."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from chromium_webdriver import Browser, chromium, find_browser
from statements_site import ApiServer
from statements_site import api_server as start_api_server


@pytest.fixture(scope="session")
def browser_binaries() -> tuple[str, str]:
    """Chromium and chromedriver; missing, they skip the tests locally and fail them in CI."""
    found = find_browser()
    if found is None:
        message = (
            "Chromium and chromedriver are needed for the browser tests:"
            " apt-get install -y chromium chromium-driver"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with start_api_server(tmp_path_factory.mktemp("site")) as server:
        yield server


@pytest.fixture(scope="session")
def browser(
    browser_binaries: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Browser]:
    log = tmp_path_factory.mktemp("chromedriver") / "chromedriver.log"
    downloads = tmp_path_factory.mktemp("downloads")
    with chromium(*browser_binaries, log=log, downloads=downloads) as session:
        yield session
