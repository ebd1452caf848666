import http.server
import socket
import threading
from uuid import uuid4

import pytest

from cleave.testing import customer_headers, flows
from contexts.orders.models import Cart
from tests.contexts.orders.conftest import add, post_item

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
    response = post_item(api, shop, uuid4())
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert "product_id" in response.json()["errors"]


def test_a_quantity_below_one_is_refused(api, shop):
    response = post_item(api, shop, shop.tee.id, 0)
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


def test_reading_a_cart_that_does_not_exist_yet_writes_nothing(api, shop):
    from contexts.orders.queries import cart_id_for

    newcomer = uuid4()  # no user.created handled for them yet (a split's event in flight)
    headers = customer_headers(newcomer)

    cart = api.get("/api/orders/cart", headers=headers).json()

    assert cart["items"] == [] and cart["total"] == "0.00"
    assert cart["id"] == str(cart_id_for(customer_id=newcomer))
    assert not Cart.objects.using("orders").filter(customer_id=newcomer).exists()
    # the cart made later has the id the customer was shown
    assert post_item(api, shop, shop.tee.id, headers=headers).status_code == 201
    assert str(Cart.objects.using("orders").get(customer_id=newcomer).id) == cart["id"]


def test_the_cart_needs_a_customer_token(api):
    assert api.get("/api/orders/cart").status_code == 401


@pytest.fixture
def failing_catalog(monkeypatch):
    """The catalog as a separate service that answers every call with a 500."""

    class Failing(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"detail": "boom"}'
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("CATALOG_SERVICE_URL", f"http://127.0.0.1:{server.server_port}")
    yield
    server.shutdown()
    server.server_close()


def test_an_unreachable_catalog_is_a_503_problem_not_a_500(api, shop, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("CATALOG_SERVICE_URL", f"http://127.0.0.1:{port}")

    response = post_item(api, shop, shop.tee.id)

    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response["Retry-After"] == "5"
    assert response.json()["type"].endswith("/dependency-unavailable")
    assert "catalog" in response.json()["detail"]
    assert api.get("/api/orders/cart", headers=shop.headers).json()["items"] == []


def test_a_failing_catalog_is_a_502_problem_not_a_500(api, shop, failing_catalog):
    response = post_item(api, shop, shop.tee.id)

    assert response.status_code == 502, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("/dependency-failed")
    assert "boom" not in response.content.decode()  # the other service's body stays inside


@pytest.mark.parametrize("quantity", ["2", 1.0, "٢", True], ids=repr)
def test_a_quantity_must_be_a_json_integer(api, shop, quantity):
    added = post_item(api, shop, shop.tee.id, quantity)
    item = add(api, shop, shop.mug, 1)
    changed = api.patch(
        f"/api/orders/cart/items/{item['id']}",
        {"quantity": quantity},
        format="json",
        headers=shop.headers,
    )

    for response in (added, changed):
        assert response.status_code == 400
        assert response["Content-Type"] == "application/problem+json"
        assert "quantity" in response.json()["errors"]
    cart = api.get("/api/orders/cart", headers=shop.headers).json()
    assert [(i["sku"], i["quantity"]) for i in cart["items"]] == [("MUG-1", 1)]


def test_repeated_additions_stop_at_the_most_one_request_may_ask(api, shop):
    from contexts.orders.models import MAX_QUANTITY

    add(api, shop, shop.tee, MAX_QUANTITY - 1)
    add(api, shop, shop.tee, 1)

    response = post_item(api, shop, shop.tee.id, 1)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"] == {
        "quantity": [f"A cart holds at most {MAX_QUANTITY} of one product."]
    }
    cart = api.get("/api/orders/cart", headers=shop.headers).json()
    assert [(i["sku"], i["quantity"]) for i in cart["items"]] == [("TEE-1", MAX_QUANTITY)]


def test_every_cart_command_keeps_a_line_within_the_bounds_the_api_documents():
    from cleave.core.errors import Invalid
    from contexts.orders.commands import cart_quantity
    from contexts.orders.models import MAX_QUANTITY, MIN_QUANTITY

    assert cart_quantity(MIN_QUANTITY) == MIN_QUANTITY
    assert cart_quantity(1, in_cart=MAX_QUANTITY - 1) == 1
    for quantity, in_cart in ((MIN_QUANTITY - 1, 0), (MAX_QUANTITY + 1, 0), (1, MAX_QUANTITY)):
        with pytest.raises(Invalid) as refused:
            cart_quantity(quantity, in_cart=in_cart)
        assert list(refused.value.errors) == ["quantity"]
