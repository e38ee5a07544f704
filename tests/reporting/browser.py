"""Headless Chromium driven by Selenium through the installed chromedriver.

Both come from the system (Debian: ``apt-get install chromium chromium-driver``). The driver's
path is always passed to Selenium, so Selenium Manager never runs and nothing is downloaded.
The page's console (errors, uncaught exceptions, failed loads) is read from chromedriver's
``browser`` log, its requests from the ``performance`` log (the DevTools Network events).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver",)
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run", "--no-default-browser-check",
    "--window-size=1280,1600",
)  # fmt: skip


def _which(names: tuple[str, ...]) -> str | None:
    return next((p for p in map(shutil.which, names) if p), None)


def find_chromium() -> tuple[str, str] | None:
    """Paths of an installed Chromium (or Chrome) and its chromedriver, or None if either is missing."""
    chromium, driver = _which(CHROMIUM_NAMES), _which(DRIVER_NAMES)
    return (chromium, driver) if chromium and driver else None


class Browser:
    """One headless Chromium with one page; collects console errors and failed requests."""

    def __init__(self, chromium: str, driver: str, profile: Path, timeout: float = 30.0) -> None:
        os.environ.setdefault("SE_OFFLINE", "true")  # should Selenium Manager ever run: no downloads
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        profile.mkdir(parents=True, exist_ok=True)
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        options.add_experimental_option("perfLoggingPrefs", {"enableNetwork": True, "enablePage": False})
        self.driver = webdriver.Chrome(service=Service(executable_path=driver), options=options)
        self.driver.set_page_load_timeout(timeout)
        self.driver.set_script_timeout(timeout)
        self._console: list[dict[str, Any]] = []
        self._network: list[dict[str, Any]] = []
        self.driver.get("about:blank")  # away from the new-tab page Chromium opens on, and its requests

    def open(self, url: str) -> None:
        """Navigate to ``url``; returns once the page has loaded (its load event fired).

        What the logs hold from before (the new-tab page Chromium starts on) is dropped, so
        :meth:`problems` reports this page only."""
        self._collect()
        self._console.clear()
        self._network.clear()
        self.driver.get(url)

    def evaluate(self, expression: str) -> Any:
        """The (JSON) value of a JavaScript expression evaluated in the page."""
        return self.driver.execute_script(f"return ({expression});")

    def element(self, selector: str):
        """The first element matching a CSS selector."""
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the first match (scrolled into view first);
        fails if another element covers it."""
        self.element(selector).click()

    def type(self, selector: str, text: str) -> None:
        """Replace the text of an input by typing (select all, delete, type ``text``): key by
        key, as a person would, so the page sees its ``input`` events."""
        from selenium.webdriver.common.keys import Keys

        box = self.element(selector)
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.BACKSPACE)
        if text:
            box.send_keys(text)

    def screenshot(self, path: Path) -> None:
        """Save a PNG of the whole page (not only the window) to ``path``."""
        data = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        path.write_bytes(base64.b64decode(data))

    def _collect(self) -> None:
        self._console += self.driver.get_log("browser")
        self._network += [json.loads(entry["message"])["message"] for entry in self.driver.get_log("performance")]

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions, failed requests, and requests off the file."""
        self._collect()
        found = [f"{entry.get('source', 'console')}: {entry['message']}" for entry in self._console if entry["level"] == "SEVERE"]
        for message in self._network:
            method, params = message.get("method"), message.get("params", {})
            if method == "Network.loadingFailed":
                found.append(f"request failed: {params.get('errorText')} {params.get('type')}")
            elif method == "Network.requestWillBeSent":
                url = params["request"]["url"]
                if not url.startswith(("file:", "data:", "about:")):
                    found.append(f"request off the page: {url}")
        return found

    def close(self) -> None:
        """End the browser and the chromedriver started here."""
        self.driver.quit()
