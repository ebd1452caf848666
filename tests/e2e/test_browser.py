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

import uuid
from urllib.parse import urlsplit

import pytest

from cleave.sagas.models import SagaInstance
from cleave.testing import flows
from tests.support.browser import chromium, requested_urls

pytestmark = [pytest.mark.e2e, flows]

# The host the pages are asked for: not a loopback name, so Swagger UI behaves as
# it would for a real shop (it hides its validator badge on localhost only).
HOST = "shop.test"


@pytest.fixture
def browser(tmp_path, settings):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, HOST]
    with chromium(tmp_path, hosts=(HOST,)) as driver:
        yield driver


def site(live_server) -> str:
    """The live server's URL under the shop's host name."""
    return f"http://{HOST}:{urlsplit(live_server.url).port}"


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
