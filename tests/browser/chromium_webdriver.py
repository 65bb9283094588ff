"""Just enough W3C WebDriver to drive headless Chromium through Debian's ``chromedriver``.

Plain HTTP (httpx) to the driver, no Selenium: the protocol is a dozen JSON endpoints, and
this keeps the browser tests free of one more dependency.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from vapi_chargeback.localrun import free_port

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
START_TIMEOUT_S = 30.0
T = TypeVar("T")


class WebDriverError(RuntimeError):
    """The driver answered with a WebDriver error (``error`` + ``message``)."""


def find_browser() -> tuple[str, str] | None:
    """Paths of (chromium, chromedriver), or ``None`` when either is not installed."""
    browser = next((path for name in CHROMIUM_CANDIDATES if (path := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


class Element:
    def __init__(self, browser: Browser, element_id: str) -> None:
        self.browser = browser
        self.id = element_id

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.browser.call(method, f"/element/{self.id}{path}", body)

    def type(self, text: str) -> None:
        self._call("POST", "/value", {"text": text})

    def click(self) -> None:
        self._call("POST", "/click", {})

    def attribute(self, name: str) -> str | None:
        value = self._call("GET", f"/attribute/{name}")
        return None if value is None else str(value)

    @property
    def text(self) -> str:
        return str(self._call("GET", "/text"))


class Browser:
    """One WebDriver session; every method is one protocol command."""

    def __init__(self, driver_url: str, session_id: str, downloads: Path) -> None:
        self.base = f"{driver_url}/session/{session_id}"
        self.http = httpx.Client(timeout=60.0)
        self.downloads = downloads
        """Where clicked downloads land."""

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, f"{self.base}{path}", json=body)
        value = response.json().get("value")
        if response.status_code >= 400:
            error = value or {}
            raise WebDriverError(f"{error.get('error')}: {error.get('message', '')[:500]}")
        return value

    def get(self, url: str) -> None:
        self.call("POST", "/url", {"url": url})

    @property
    def url(self) -> str:
        return str(self.call("GET", "/url"))

    @property
    def title(self) -> str:
        return str(self.call("GET", "/title"))

    def find(self, css: str) -> Element:
        value = self.call("POST", "/element", {"using": "css selector", "value": css})
        return Element(self, value[ELEMENT])

    def find_all(self, css: str) -> list[Element]:
        values = self.call("POST", "/elements", {"using": "css selector", "value": css})
        return [Element(self, value[ELEMENT]) for value in values]

    def run(self, script: str, *args: Any) -> Any:
        return self.call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def run_async(self, script: str, *args: Any) -> Any:
        """``script`` gets a callback as its last argument and must call it with the result."""
        return self.call("POST", "/execute/async", {"script": script, "args": list(args)})

    def switch_to_frame(self, element: Element | None) -> None:
        frame = {ELEMENT: element.id} if element is not None else None
        self.call("POST", "/frame", {"id": frame})

    def resize(self, width: int, height: int) -> None:
        self.call("POST", "/window/rect", {"width": width, "height": height})

    def downloaded(self, name: str, timeout: float = 30.0) -> bytes:
        """The bytes of ``name`` once Chromium has finished writing it to ``downloads``."""
        target = self.downloads / name
        partial = self.downloads / f"{name}.crdownload"
        self.wait_for(
            f"download of {name}", lambda: target.exists() and not partial.exists(), timeout
        )
        return target.read_bytes()

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.call("GET", "/screenshot")))

    def wait_for(self, what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
        """Poll ``probe`` until it returns something truthy; WebDriver errors count as "not yet"."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                result = probe()
                if result:
                    return result
            except WebDriverError as error:
                last = error
            time.sleep(0.2)
        raise TimeoutError(f"waited {timeout:.0f} s for {what}; url {self.url}; last error {last}")


@contextmanager
def chromium(
    browser_binary: str, driver_binary: str, log: Path, downloads: Path
) -> Iterator[Browser]:
    """chromedriver on a free loopback port and one headless Chromium session.

    Clicked downloads are saved to ``downloads`` without asking.
    """
    port = free_port()
    driver_url = f"http://127.0.0.1:{port}"
    with log.open("wb") as sink:
        driver = subprocess.Popen(
            [driver_binary, f"--port={port}", "--allowed-ips=127.0.0.1"],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        browser: Browser | None = None
        try:
            _wait_ready(driver_url, driver)
            capabilities = {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": browser_binary,
                    "args": [
                        "--headless=new",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-dev-shm-usage",
                        "--window-size=1440,1000",
                        "--force-device-scale-factor=1",
                    ],
                    "prefs": {
                        "download.default_directory": str(downloads),
                        "download.prompt_for_download": False,
                    },
                },
            }
            created = httpx.post(
                f"{driver_url}/session",
                json={"capabilities": {"alwaysMatch": capabilities}},
                timeout=60.0,
            ).json()["value"]
            if "sessionId" not in created:
                raise WebDriverError(f"no session: {created}")
            browser = Browser(driver_url, created["sessionId"], downloads)
            yield browser
        finally:
            if browser is not None:
                try:
                    browser.http.delete(browser.base)
                finally:
                    browser.http.close()
            driver.terminate()
            driver.wait(timeout=15)


def _wait_ready(driver_url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chromedriver exited with {process.returncode}")
        try:
            if httpx.get(f"{driver_url}/status", timeout=1.0).json()["value"]["ready"]:
                return
        except (httpx.TransportError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"chromedriver did not answer on {driver_url} in {START_TIMEOUT_S} s")
