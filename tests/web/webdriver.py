"""A minimal W3C WebDriver client over HTTP (`requests`), driving headless Chromium through
Debian's chromedriver: enough to load a page, read elements and click, without a new dependency.

`browser_or_skip()` finds chromium and chromedriver; when absent the test skips saying how to
install them, or fails under BILLHOOK_REQUIRE_SERVICES=1 (CI installs them: see .ci/run).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time

import requests

from cli.embedded_redis import free_port
from tests.conftest import service_missing

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C web element key


def browser_or_skip() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        service_missing("headless Chromium: `apt-get install -y chromium chromium-driver`")
    return chromium, driver


class WebDriverError(AssertionError):
    pass


class Browser:
    def __init__(self, chromium: str, driver: str):
        self._profile = tempfile.TemporaryDirectory(prefix="billhook-chromium-")
        port = free_port()
        self._driver = subprocess.Popen(
            [driver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._base = f"http://127.0.0.1:{port}"
        try:
            self._start(chromium)
        except BaseException:
            self._stop_driver()
            raise

    def _start(self, chromium: str) -> None:
        self._wait_for_driver()
        options = {
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",  # CI runs as root
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                f"--user-data-dir={self._profile.name}",
            ],
        }
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _wait_for_driver(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                requests.get(self._base + "/status", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise WebDriverError("chromedriver did not start")

    def _call(self, method: str, path: str, body: dict | None = None):
        response = requests.request(method, self._base + path, json=body, timeout=60)
        value = response.json().get("value")
        if response.status_code >= 400:
            raise WebDriverError(f"{method} {path}: {value}")
        return value

    def _session_call(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def get(self, url: str) -> None:
        self._session_call("POST", "/url", {"url": url})

    @property
    def url(self) -> str:
        return self._session_call("GET", "/url")

    def find(self, css: str) -> str:
        return self._session_call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def find_all(self, css: str) -> list[str]:
        return [e[ELEMENT] for e in self._session_call("POST", "/elements", {"using": "css selector", "value": css})]

    def text(self, element: str) -> str:
        return self._session_call("GET", f"/element/{element}/text")

    def attribute(self, element: str, name: str) -> str | None:
        return self._session_call("GET", f"/element/{element}/attribute/{name}")

    def click(self, element: str) -> None:
        self._session_call("POST", f"/element/{element}/click", {})

    def page_text(self) -> str:
        return self.text(self.find("body"))

    def wait_until(self, predicate, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = predicate()
            except WebDriverError:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise WebDriverError("timed out waiting in the browser")
            time.sleep(0.05)

    def quit(self) -> None:
        try:
            self._call("DELETE", f"/session/{self.session}")
        finally:
            self._stop_driver()

    def _stop_driver(self) -> None:
        self._driver.terminate()
        try:
            self._driver.wait(10)
        except subprocess.TimeoutExpired:
            self._driver.kill()
            self._driver.wait()
        self._profile.cleanup()
