"""
The operator's pages in a real browser: Debian's headless Chromium, driven by
Selenium through Debian's chromedriver, against pytest-django's live server.

- `/api/docs/` renders Swagger UI's operations from files this project serves
  (drf-spectacular-sidecar), and the page asks nothing of any other host;
- an operator signs in to the admin and sees a saga the test created, on the
  saga list as it opens (no context chosen).

Without Chromium the tests skip, saying what to install; with
CLEAVE_REQUIRE_SERVICES=1 (CI) they fail instead.
"""

from __future__ import annotations

import json
import os
import uuid
from urllib.parse import urlsplit

import pytest

from cleave.sagas.models import SagaInstance
from cleave.testing import flows, services_required

pytestmark = [pytest.mark.e2e, flows]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# The host the pages are asked for: not a loopback name, so Swagger UI behaves as
# it would for a real shop (it hides its validator badge on localhost only).
HOST = "shop.test"


def _require_browser() -> None:
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


@pytest.fixture
def browser(tmp_path, settings):
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, HOST]
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
        f"--user-data-dir={tmp_path / 'profile'}",
        # every name but the shop's fails at once: the network here is closed, and
        # a page that reached out anyway is seen in the request log below
        f"--host-resolver-rules=MAP {HOST} 127.0.0.1, MAP * ~NOTFOUND",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def site(live_server) -> str:
    """The live server's URL under the shop's host name."""
    return f"http://{HOST}:{urlsplit(live_server.url).port}"


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


def test_the_api_docs_render_their_operations_from_this_server_alone(browser, live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    base = site(live_server)
    browser.get(f"{base}/api/docs/")

    WebDriverWait(browser, 30).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".opblock"))
    )
    operations = browser.find_elements(By.CSS_SELECTOR, ".opblock")
    assert len(operations) > 10
    paths = {
        element.text for element in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    }
    assert "/api/orders/checkout" in paths
    urls = requested_urls(browser)
    assert f"{base}/api/schema/" in urls
    assert [url for url in urls if not url.startswith(f"{base}/")] == []


def test_an_operator_signs_in_and_sees_a_saga_on_the_saga_list(
    browser, live_server, django_user_model
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    password = uuid.uuid4().hex
    django_user_model.objects.create_superuser("operator", "operator@example.com", password)
    saga = SagaInstance.objects.using("orders").create(
        saga_type="checkout", context="orders", correlation_id=uuid.uuid4().hex
    )
    base = site(live_server)

    browser.get(f"{base}/admin/login/?next=/admin/cleave/sagainstance/")
    browser.find_element(By.ID, "id_username").send_keys("operator")
    browser.find_element(By.ID, "id_password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    WebDriverWait(browser, 30).until(
        expected_conditions.url_contains("/admin/cleave/sagainstance/")
    )
    rows = WebDriverWait(browser, 30).until(
        expected_conditions.presence_of_element_located((By.ID, "result_list"))
    )
    assert str(saga.id) in rows.text
    assert "checkout" in rows.text
    assert [url for url in requested_urls(browser) if not url.startswith(f"{base}/")] == []
