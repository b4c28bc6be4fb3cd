"""Headless Chromium for the dashboard's browser tests: Debian's ``chromium`` driven through its
``chromium-driver`` by Selenium. Nothing is downloaded; the flags keep the browser off the
network (no updates, sync, QUIC or background requests) and give it a fresh profile.

Missing browser: the tests are skipped with the reason, except under CI (``CI`` set), where
that is a failure (``.ci/run`` installs both packages).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--disable-dev-shm-usage",
    "--hide-scrollbars", "--force-device-scale-factor=1",
)  # fmt: skip


def binaries() -> tuple[str, str] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    return (chromium, driver) if chromium and driver else None


def require_browser() -> tuple[str, str]:
    found = binaries()
    if found is None:
        why = "Chromium not found (Debian: apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI must run the browser tests")
        pytest.skip(why)
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail("selenium is not installed (pip install -e '.[test]')")
    return found


def new_driver(width: int = 1280, height: int = 900) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = require_browser()
    profile = tempfile.mkdtemp(prefix="feedwatch-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(driver), options=opts)
    browser.set_page_load_timeout(30)
    browser._feedwatch_profile = profile  # removed by close()
    return browser


def close(browser: Any) -> None:
    try:
        browser.quit()
    finally:
        shutil.rmtree(browser._feedwatch_profile, ignore_errors=True)


def console_errors(browser: Any) -> list[str]:
    """Console errors since the last call (CSP violations and failed loads are errors)."""
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
