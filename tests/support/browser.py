"""
Debian's headless Chromium, driven by Selenium through Debian's chromedriver,
for the tests that look at pages as an operator does.

Every host name but the ones mapped (`hosts`) fails at once: the network here
is closed, and a page that reached out anyway shows in `requested_urls`.
Without Chromium a test skips, saying what to install; with
CLEAVE_REQUIRE_SERVICES=1 (CI) it fails instead.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cleave.testing import services_required

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# an operator's laptop: the admin's pages must fit this width
WINDOW = (1280, 900)


def require_browser() -> None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[test]')")
    if not missing:
        return
    message = (
        f"headless Chromium is not available ({', '.join(missing)} missing; "
        "apt-get install chromium chromium-driver)"
    )
    if services_required():
        pytest.fail(f"CLEAVE_REQUIRE_SERVICES=1 but {message}")
    pytest.skip(message)


@contextlib.contextmanager
def chromium(workdir: Path, *, hosts: tuple[str, ...] = ()) -> Iterator:
    """A headless Chromium; `hosts` resolve to the loopback, every other name to nothing."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # the loopback's own address is served as asked (a test's server on 127.0.0.1)
    rules = ", ".join(
        [*(f"MAP {host} 127.0.0.1" for host in hosts), "MAP * ~NOTFOUND", "EXCLUDE 127.0.0.1"]
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--user-data-dir={workdir / 'profile'}",
        f"--host-resolver-rules={rules}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, log_output=str(workdir / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver) -> list[str]:
    """
    Every URL on the network the pages asked for since the last call
    (Chromium's own chrome:// pages, data: and blob: URLs stay in the browser).
    """
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if urlsplit(url).scheme in ("http", "https", "ws", "wss", "ftp"):
                urls.append(url)
    return urls
