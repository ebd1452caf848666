"""The API's pages: `?page=` and `?page_size=` refused unless they are what they say."""

from __future__ import annotations

import pytest

from cleave.testing import unit
from contexts.catalog.demo import seed


@pytest.fixture
def shop():
    seed()


@unit
@pytest.mark.parametrize("page", ["", "0", "AAA", "99"])
def test_a_page_that_is_not_one_is_not_found(api, shop, page):
    response = api.get("/api/catalog/products", {"page": page})

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


@unit
def test_the_first_and_the_last_page_are_found(api, shop):
    first = api.get("/api/catalog/products", {"page_size": 5})
    last = api.get("/api/catalog/products", {"page_size": 5, "page": "last"})

    assert first.status_code == 200 and first.json()["previous"] is None
    assert last.status_code == 200 and last.json()["next"] is None
