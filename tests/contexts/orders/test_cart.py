from uuid import uuid4

from cleave.testing import customer_headers, flows
from contexts.orders.models import Cart

from .conftest import add

pytestmark = flows


def test_a_new_customer_gets_a_cart_from_the_user_created_event(shop):
    assert Cart.objects.filter(customer_id=shop.customer.id).exists()


def test_adding_a_product_snapshots_its_name_and_price(api, shop):
    item = add(api, shop, shop.tee, 2)
    assert item["sku"] == "TEE-1"
    assert item["unit_price"] == "19.90"
    assert item["line_total"] == "39.80"


def test_adding_the_same_product_again_raises_the_quantity(api, shop):
    add(api, shop, shop.tee, 1)
    add(api, shop, shop.tee, 2)
    cart = api.get("/api/orders/cart", headers=shop.headers).json()
    assert [(i["sku"], i["quantity"]) for i in cart["items"]] == [("TEE-1", 3)]
    assert cart["total"] == "59.70"
    assert cart["currency"] == "EUR"


def test_an_unknown_product_is_refused_with_problem_details(api, shop):
    response = api.post(
        "/api/orders/cart/items",
        {"product_id": str(uuid4()), "quantity": 1},
        format="json",
        headers=shop.headers,
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert "product_id" in response.json()["errors"]


def test_a_quantity_below_one_is_refused(api, shop):
    response = api.post(
        "/api/orders/cart/items",
        {"product_id": str(shop.tee.id), "quantity": 0},
        format="json",
        headers=shop.headers,
    )
    assert response.status_code == 400
    assert "quantity" in response.json()["errors"]


def test_changing_and_removing_an_item(api, shop):
    item = add(api, shop, shop.tee, 1)
    response = api.patch(
        f"/api/orders/cart/items/{item['id']}", {"quantity": 4}, format="json", headers=shop.headers
    )
    assert response.status_code == 200 and response.json()["quantity"] == 4
    response = api.delete(f"/api/orders/cart/items/{item['id']}", headers=shop.headers)
    assert response.status_code == 204
    assert api.get("/api/orders/cart", headers=shop.headers).json()["items"] == []


def test_another_customers_cart_item_is_not_found(api, shop):
    item = add(api, shop, shop.tee, 1)
    stranger = customer_headers(uuid4())
    response = api.patch(
        f"/api/orders/cart/items/{item['id']}", {"quantity": 4}, format="json", headers=stranger
    )
    assert response.status_code == 404
    assert api.delete(f"/api/orders/cart/items/{item['id']}", headers=stranger).status_code == 404


def test_the_cart_needs_a_customer_token(api):
    assert api.get("/api/orders/cart").status_code == 401
