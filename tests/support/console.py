"""
The operator's story in a real browser, the same against the monolith and
against a split behind its gateway: after the customer story
(tests/support/story.py) placed an approved and a declined order, an
operator signs in and, from the admin alone,

1. finds nothing that needs attention;
2. follows the approved order to its saga, the saga to the payment, the
   payment to the customer; the declined order to its compensated saga;
3. sees a handler that keeps failing (a table of analytics renamed, as a
   migration gone wrong would) dead-lettered on the "needs attention" page,
   opens it from there, and, once the table is back, redrives it from its
   page: the page is empty again and the event counted.

Each page is saved as a screenshot in `shots` (docs/operations.md shows them:
set CLEAVE_SCREENSHOTS to a directory to keep them).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.browser import WINDOW
from tests.support.story import OPERATOR, StoryResult, analytics_summary, eventually

TIMEOUT = 90.0

# the environment of the installation under test: a handler that fails is
# dead-lettered after its second attempt, a technical failure too
FAILING_FAST = {"CLEAVE_EVENT_MAX_ATTEMPTS": "2", "CLEAVE_EVENT_UNAVAILABLE_WINDOW": "0"}


@dataclass
class Fault:
    """Something an operator would have to mend: `cause()` makes it, `mend()` ends it."""

    cause: Callable[[], None]
    mend: Callable[[], None]


def operator_console_story(
    driver, base: str, story: StoryResult, *, fault: Fault, shots: Path, mode: str
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    shots.mkdir(parents=True, exist_ok=True)

    def shot(name: str) -> None:
        driver.save_screenshot(str(shots / f"admin-{mode}-{name}.png"))

    def text() -> str:
        return driver.find_element(By.TAG_NAME, "body").text

    def follow(selector: str) -> None:
        """Click the first link matching `selector` (a CSS selector on its href)."""
        links = driver.find_elements(By.CSS_SELECTOR, f"#content {selector}")
        assert links, f"no link {selector} on {driver.current_url}:\n{text()[:3000]}"
        driver.get(links[0].get_attribute("href"))  # the href itself: no overlay in the way

    def fits() -> None:
        width = driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= WINDOW[0], f"{driver.current_url} is {width} px wide"

    def attention_until(ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while True:
            driver.get(f"{base}/admin/attention/")
            if ready():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {TIMEOUT}s: {what}\n{text()[:4000]}")
            time.sleep(1)

    def healthy() -> bool:
        return bool(driver.find_elements(By.ID, "healthy"))

    # signing in through the login page, as an operator does
    driver.get(f"{base}/admin/login/?next=/admin/")
    username, password = OPERATOR
    driver.find_element(By.ID, "id_username").send_keys(username)
    driver.find_element(By.ID, "id_password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(driver, 30).until(
        expected_conditions.presence_of_element_located((By.ID, "logout-form")),
        message="signed in",
    )
    for section in ("users", "catalog", "inventory", "orders", "payments", "analytics"):
        assert section in text().lower(), section  # (the admin's styles write them in capitals)
    shot("index")

    # 1. nothing needs attention once the stories settled
    follow("a[href$='/admin/attention/']")
    attention_until(healthy, "the needs-attention page says all clear")
    assert "All clear" in text()
    shot("attention-healthy")

    # 2. order -> saga -> payment -> customer, by links alone
    approved, declined = story.confirmed_order, story.declined_order
    driver.get(f"{base}/admin/")
    follow("a[href$='/admin/orders/order/']")  # the index's Orders
    assert approved["id"] in text() and declined["id"] in text()
    shot("orders")
    follow(f"a[href*='/admin/orders/order/{approved['id']}/change/']")
    assert "confirmed" in text().lower()
    fits()
    shot("order")
    follow("a[href*='/admin/cleave/sagainstance/'][href*='/change/']")
    assert "completed" in text().lower()
    assert approved["id"] in text()
    fits()
    shot("saga")
    follow(f"a[href*='/admin/payments/payment/{approved['payment_id']}/']")
    assert "captured" in text().lower()
    fits()
    shot("payment")
    follow(f"a[href*='/admin/users/customer/{story.customer_id}/']")
    assert "ada@example.com" in text()
    shot("customer")

    driver.get(f"{base}/admin/orders/order/")
    follow(f"a[href*='/admin/orders/order/{declined['id']}/change/']")
    assert "payment declined" in text().lower().replace("_", " ")
    follow("a[href*='/admin/cleave/sagainstance/'][href*='/change/']")
    assert "compensated" in text().lower()

    # 3. a handler fails until its event is dead-lettered; the operator mends and redrives
    eventually(
        lambda: _equal(
            analytics_summary(base)["users_registered"], 2
        ),  # Ada and Eve: nothing in flight
        what="analytics counting the story's customers",
    )
    fault.cause()
    registered = requests.post(
        f"{base}/api/users/",
        json={
            "email": f"grace-{uuid.uuid4().hex[:6]}@example.com",
            "password": "another good secret",
            "name": "Grace",
        },
        timeout=10,
    )
    assert registered.status_code == 201, registered.text

    def dead_lettered() -> bool:
        return bool(driver.find_elements(By.ID, "kind-dead_letter"))

    attention_until(dead_lettered, "the dead letter on the needs-attention page")
    table = driver.find_element(By.ID, "kind-dead_letter")
    assert "user.created" in table.text and "analytics" in table.text, table.text
    fits()
    shot("attention-dead-letter")
    fault.mend()
    follow("#kind-dead_letter a.act")
    assert "user.created" in text()
    shot("dead-letter")
    driver.find_element(By.XPATH, "//button[normalize-space()='Redrive']").click()
    WebDriverWait(driver, 30).until(
        expected_conditions.text_to_be_present_in_element(
            (By.CSS_SELECTOR, ".messagelist"), "Redrove 1 dead letter(s)"
        ),
        message="the redrive's message",
    )
    attention_until(healthy, "the page all clear after the redrive")

    def counted() -> None:
        assert analytics_summary(base)["users_registered"] == 3  # Ada, Eve, and Grace at last

    eventually(counted, what="analytics counting the redriven registration")


def _equal(found, expected) -> None:
    assert found == expected, found
