import uuid

import pytest

from cleave.testing import service_headers, unit
from tests.contexts.catalog.factories import CategoryFactory, ProductFactory

pytestmark = unit

PRODUCTS = "/api/catalog/products"


def test_products_are_listed_in_pages_with_their_public_fields(api):
    category = CategoryFactory(slug="kitchen", name="Kitchen")
    product = ProductFactory(
        sku="KIT-1",
        name="Pan",
        description="Cast iron.",
        price="39.95",
        category=category,
    )

    response = api.get(PRODUCTS)

    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["next"], body["previous"]) == (1, None, None)
    assert body["results"] == [
        {
            "id": str(product.id),
            "sku": "KIT-1",
            "name": "Pan",
            "description": "Cast iron.",
            "price": "39.95",
            "currency": "EUR",
            "category": "kitchen",
        }
    ]


def test_inactive_products_are_not_listed(api):
    ProductFactory(sku="ON-1", active=True)
    ProductFactory(sku="OFF-1", active=False)

    body = api.get(PRODUCTS).json()

    assert [p["sku"] for p in body["results"]] == ["ON-1"]


def test_the_list_pages_by_twenty(api):
    category = CategoryFactory()
    ProductFactory.create_batch(25, category=category)

    first = api.get(PRODUCTS).json()
    second = api.get(PRODUCTS, {"page": 2}).json()

    assert first["count"] == 25
    assert len(first["results"]) == 20
    assert first["next"].endswith("page=2")
    assert len(second["results"]) == 5
    assert second["next"] is None
    assert {p["sku"] for p in first["results"]}.isdisjoint(p["sku"] for p in second["results"])


def test_a_page_past_the_end_is_a_404_problem(api):
    response = api.get(PRODUCTS, {"page": 9})

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_page_size_chooses_from_one_to_a_hundred(api):
    ProductFactory.create_batch(3, category=CategoryFactory())

    assert len(api.get(PRODUCTS, {"page_size": "2"}).json()["results"]) == 2
    assert len(api.get(PRODUCTS, {"page_size": "100"}).json()["results"]) == 3


@pytest.mark.parametrize("size", ["0", "101", "-1", "two", "2.5", "٣", "9" * 5000])
def test_a_page_size_out_of_range_or_not_a_number_is_a_400_problem(api, size):
    response = api.get(PRODUCTS, {"page_size": size})

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert list(response.json()["errors"]) == ["page_size"]


@pytest.mark.parametrize("term", ["CHEF", "forged", "kit-knf"])
def test_search_matches_name_description_or_sku_ignoring_case(api, term):
    ProductFactory(sku="KIT-KNF-001", name="Chef's Knife", description="Forged steel.")
    ProductFactory(sku="BOO-1", name="Book", description="Paper.")

    body = api.get(PRODUCTS, {"search": term}).json()

    assert [p["sku"] for p in body["results"]] == ["KIT-KNF-001"]


def test_category_filter_keeps_that_category_only(api):
    ProductFactory(sku="A-1", category=CategoryFactory(slug="apparel"))
    ProductFactory(sku="B-1", category=CategoryFactory(slug="books"))

    body = api.get(PRODUCTS, {"category": "books"}).json()

    assert [p["sku"] for p in body["results"]] == ["B-1"]


def test_a_malformed_category_filter_is_a_400_problem(api):
    response = api.get(PRODUCTS, {"category": "not a slug"})

    assert response.status_code == 400
    assert response.json()["type"].endswith("validation-error")
    assert "category" in response.json()["errors"]


def test_a_product_is_shown_by_id(api):
    product = ProductFactory(sku="OUT-1", price="249.00")

    response = api.get(f"{PRODUCTS}/{product.id}")

    assert response.status_code == 200
    assert response.json()["sku"] == "OUT-1"
    assert response.json()["price"] == "249.00"


def test_an_unknown_or_inactive_product_is_a_404_problem(api):
    inactive = ProductFactory(active=False)

    for product_id in (uuid.uuid4(), inactive.id):
        response = api.get(f"{PRODUCTS}/{product_id}")

        assert response.status_code == 404
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["status"] == 404


def test_a_malformed_product_id_is_a_404(api):
    response = api.get(f"{PRODUCTS}/not-a-uuid")

    assert response.status_code == 404


def test_categories_are_listed_by_name(api):
    CategoryFactory(slug="outdoor", name="Outdoor")
    CategoryFactory(slug="apparel", name="Apparel")

    response = api.get("/api/catalog/categories")

    assert response.status_code == 200
    assert response.json() == [
        {"slug": "apparel", "name": "Apparel"},
        {"slug": "outdoor", "name": "Outdoor"},
    ]


def test_other_contexts_may_read_the_catalog_with_a_service_token(api):
    ProductFactory(sku="S-1")

    response = api.get(PRODUCTS, headers=service_headers("catalog:read", service="inventory"))

    assert response.status_code == 200
    assert response.json()["count"] == 1


# --- conditional reads: ETag, 304, never stale ------------------------------------------------

CATEGORIES = "/api/catalog/categories"


def test_public_reads_carry_a_tag_and_answer_304_while_nothing_changed(api):
    product = ProductFactory(sku="TAG-1")

    for url in (PRODUCTS, f"{PRODUCTS}/{product.id}", CATEGORIES):
        first = api.get(url)
        assert first.status_code == 200, url
        assert first["Cache-Control"] == "public, no-cache"
        assert "Accept" in first["Vary"]
        tag = first["ETag"]
        assert tag.startswith('"') and tag.endswith('"')

        again = api.get(url, HTTP_IF_NONE_MATCH=tag)

        assert again.status_code == 304, url
        assert again.content == b""
        assert again["ETag"] == tag
        assert api.get(url, HTTP_IF_NONE_MATCH=f'"other", W/{tag}').status_code == 304
        assert api.get(url, HTTP_IF_NONE_MATCH='"other"').status_code == 200


def test_a_tag_names_the_query_as_well(api):
    ProductFactory(sku="Q-1", name="Mug")

    everything = api.get(PRODUCTS)["ETag"]
    mugs = api.get(PRODUCTS, {"search": "mug"})["ETag"]

    assert everything != mugs
    assert api.get(PRODUCTS, {"search": "mug"}, HTTP_IF_NONE_MATCH=everything).status_code == 200


def test_a_price_change_is_seen_at_once_with_a_new_tag(api):
    product = ProductFactory(sku="P-1", price="10.00")
    url = f"{PRODUCTS}/{product.id}"
    before = api.get(url)
    listed = api.get(PRODUCTS)
    assert before.json()["price"] == "10.00"

    product.price = "12.50"
    product.save()  # as the admin saves it

    after = api.get(url, HTTP_IF_NONE_MATCH=before["ETag"])
    assert after.status_code == 200
    assert after.json()["price"] == "12.50"
    assert after["ETag"] != before["ETag"]
    relisted = api.get(PRODUCTS, HTTP_IF_NONE_MATCH=listed["ETag"])
    assert relisted.status_code == 200
    assert relisted.json()["results"][0]["price"] == "12.50"


@pytest.mark.parametrize("change", ["create", "withdraw", "delete", "category"])
def test_every_write_to_the_catalogue_makes_a_new_revision(api, change):
    from contexts.catalog import commands, queries

    product = ProductFactory(sku="W-1")
    before = queries.revision()
    if change == "create":
        commands.product_create(
            sku="W-2", name="New", price="1.00", category_slug=product.category_id
        )
    elif change == "withdraw":
        product.active = False
        product.save()
    elif change == "delete":
        product.delete()
    else:
        commands.category_create(slug="fresh", name="Fresh")

    assert queries.revision() != before


def test_answers_are_served_from_the_cache_until_the_next_write(api, django_assert_num_queries):
    ProductFactory(sku="C-1")
    api.get(PRODUCTS)

    with django_assert_num_queries(1, using="catalog"):  # the revision, nothing else
        cached = api.get(PRODUCTS)

    assert cached.json()["count"] == 1
    ProductFactory(sku="C-2")
    assert api.get(PRODUCTS).json()["count"] == 2


def test_errors_are_neither_tagged_nor_cached(api):
    missing = api.get(f"{PRODUCTS}/{uuid.uuid4()}")
    bad_page = api.get(PRODUCTS, {"page": "9"})

    assert missing.status_code == 404 and "ETag" not in missing
    assert bad_page.status_code == 404 and "ETag" not in bad_page
