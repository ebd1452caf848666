import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from cleave.core.errors import ApplicationError, Conflict, NotFound
from cleave.http.problems import status_for
from cleave.testing import published, unit
from contexts.inventory import commands, queries
from contexts.inventory.models import Reservation, StockItem
from tests.contexts.inventory.factories import StockItemFactory

pytestmark = unit


def stock(sku: str) -> StockItem:
    return StockItem.objects.using("inventory").get(sku=sku)


def reserve(*lines: tuple[str, int], **kwargs) -> Reservation:
    reservation, _ = commands.reservation_create(
        order_id=kwargs.pop("order_id", uuid.uuid4()),
        lines=[{"sku": sku, "quantity": quantity} for sku, quantity in lines],
        **kwargs,
    )
    return reservation


# --- reserve -----------------------------------------------------------------------


def test_reserving_holds_stock_and_publishes_inventory_reserved():
    StockItemFactory(sku="A", on_hand=10)
    order_id = uuid.uuid4()

    reservation, created = commands.reservation_create(
        order_id=order_id, lines=[{"sku": "A", "quantity": 3}]
    )

    assert created is True
    assert reservation.status == Reservation.Status.HELD
    assert (stock("A").on_hand, stock("A").reserved, stock("A").available) == (10, 3, 7)
    [event] = published("inventory", "inventory.reserved")
    assert event.data["reservation_id"] == str(reservation.id)
    assert event.data["order_id"] == str(order_id)
    assert event.data["lines"] == [{"sku": "A", "quantity": 3}]
    assert reservation.expires_at - reservation.created_at == timedelta(seconds=900)


def test_lines_of_the_same_sku_are_merged():
    StockItemFactory(sku="A", on_hand=10)
    StockItemFactory(sku="B", on_hand=10)

    reservation = reserve(("B", 1), ("A", 2), ("A", 3))

    lines = reservation.lines.using("inventory").values_list("sku", "quantity")
    assert sorted(lines) == [("A", 5), ("B", 1)]
    assert stock("A").reserved == 5


def test_a_short_line_reserves_nothing_at_all():
    StockItemFactory(sku="A", on_hand=10)
    StockItemFactory(sku="B", on_hand=2)
    StockItemFactory(sku="C", on_hand=10)

    with pytest.raises(commands.OutOfStock) as refused:
        reserve(("A", 1), ("B", 3), ("C", 1), ("D", 1))

    assert status_for(refused.value) == 409
    assert refused.value.code == "out-of-stock"
    assert refused.value.errors == {"lines": ["B", "D"]}
    assert [item.reserved for item in StockItem.objects.using("inventory")] == [0, 0, 0]
    assert not Reservation.objects.using("inventory").exists()
    assert published("inventory") == []


def test_the_last_units_can_be_reserved_but_not_one_more():
    StockItemFactory(sku="A", on_hand=5, reserved=3)

    reserve(("A", 2))

    with pytest.raises(commands.OutOfStock):
        reserve(("A", 1))
    assert (stock("A").reserved, stock("A").available) == (5, 0)


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([], "lines"),
        ([{"sku": "A", "quantity": 0}], "lines.0.quantity"),
        ([{"sku": "A", "quantity": -2}], "lines.0.quantity"),
        ([{"sku": "A", "quantity": True}], "lines.0.quantity"),
        ([{"sku": "A", "quantity": "1"}], "lines.0.quantity"),
        ([{"sku": "", "quantity": 1}], "lines.0.sku"),
        ([{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 1_000_000}], "lines.1.quantity"),
    ],
)
def test_invalid_lines_are_refused_as_bad_input(lines, field):
    StockItemFactory(sku="A", on_hand=10)

    with pytest.raises(ApplicationError) as refused:
        commands.reservation_create(order_id=uuid.uuid4(), lines=lines)

    assert status_for(refused.value) == 400
    assert field in refused.value.errors
    assert stock("A").reserved == 0


def test_a_repeated_idempotency_key_returns_the_first_reservation_and_holds_once():
    StockItemFactory(sku="A", on_hand=10)
    order_id = uuid.uuid4()
    lines = [{"sku": "A", "quantity": 4}]

    first, first_created = commands.reservation_create(
        order_id=order_id, lines=lines, idempotency_key="k-1"
    )
    again, again_created = commands.reservation_create(
        order_id=order_id, lines=lines, idempotency_key="k-1"
    )

    assert (first_created, again_created) == (True, False)
    assert again.id == first.id
    assert stock("A").reserved == 4
    assert len(published("inventory", "inventory.reserved")) == 1


def test_an_idempotency_key_reused_for_another_request_is_a_conflict():
    StockItemFactory(sku="A", on_hand=10)
    reserve(("A", 1), idempotency_key="k-1")

    with pytest.raises(Conflict) as refused:
        reserve(("A", 2), idempotency_key="k-1")

    assert refused.value.code == "idempotency-key-reused"
    assert stock("A").reserved == 1


def test_the_reservation_lifetime_comes_from_settings(settings):
    settings.CLEAVE_RESERVATION_TTL = 60
    StockItemFactory(sku="A", on_hand=10)

    reservation = reserve(("A", 1))

    assert reservation.expires_at - reservation.created_at == timedelta(seconds=60)


# --- commit and release ---------------------------------------------------------------


def test_committing_takes_the_stock_off_the_shelf():
    StockItemFactory(sku="A", on_hand=10)
    StockItemFactory(sku="B", on_hand=5)
    reservation = reserve(("A", 3), ("B", 5))

    committed = commands.reservation_commit(reservation_id=reservation.id)

    assert committed.status == Reservation.Status.COMMITTED
    # the reservation was read before the transaction: it comes back as stored
    stored = Reservation.objects.using("inventory").get(pk=reservation.id)
    for field in Reservation._meta.concrete_fields:
        assert getattr(committed, field.attname) == getattr(stored, field.attname), field.name
    assert [(line.sku, line.quantity) for line in committed.line_items] == [("A", 3), ("B", 5)]
    assert (stock("A").on_hand, stock("A").reserved, stock("A").available) == (7, 0, 7)
    assert (stock("B").on_hand, stock("B").reserved) == (0, 0)
    [event] = published("inventory", "inventory.committed")
    assert event.data == {
        "reservation_id": str(reservation.id),
        "order_id": str(reservation.order_id),
        "lines": [{"sku": "A", "quantity": 3}, {"sku": "B", "quantity": 5}],
    }


def test_committing_twice_changes_nothing_the_second_time():
    StockItemFactory(sku="A", on_hand=10)
    reservation = reserve(("A", 3))
    commands.reservation_commit(reservation_id=reservation.id)

    again = commands.reservation_commit(reservation_id=reservation.id)

    assert again.status == Reservation.Status.COMMITTED
    assert stock("A").on_hand == 7
    assert len(published("inventory", "inventory.committed")) == 1


def test_releasing_makes_the_stock_available_again():
    StockItemFactory(sku="A", on_hand=10)
    reservation = reserve(("A", 3))

    released = commands.reservation_release(reservation_id=reservation.id, reason="out_of_stock")

    assert released.status == Reservation.Status.RELEASED
    assert released.release_reason == "out_of_stock"
    assert (stock("A").on_hand, stock("A").reserved, stock("A").available) == (10, 0, 10)
    [event] = published("inventory", "inventory.released")
    assert event.data["reason"] == "out_of_stock"
    assert event.data["lines"] == [{"sku": "A", "quantity": 3}]


def test_releasing_twice_changes_nothing_the_second_time():
    StockItemFactory(sku="A", on_hand=10)
    other = reserve(("A", 2))
    reservation = reserve(("A", 3))
    commands.reservation_release(reservation_id=reservation.id)

    commands.reservation_release(reservation_id=reservation.id)

    assert stock("A").reserved == 2  # the other reservation is still held
    assert queries.reservation_get(reservation_id=other.id).status == "held"
    assert len(published("inventory", "inventory.released")) == 1


def test_a_released_reservation_cannot_be_committed():
    StockItemFactory(sku="A", on_hand=10)
    reservation = reserve(("A", 3))
    commands.reservation_release(reservation_id=reservation.id)

    with pytest.raises(Conflict) as refused:
        commands.reservation_commit(reservation_id=reservation.id)

    assert refused.value.code == "reservation-released"
    assert (stock("A").on_hand, stock("A").reserved) == (10, 0)


def test_a_committed_reservation_cannot_be_released():
    StockItemFactory(sku="A", on_hand=10)
    reservation = reserve(("A", 3))
    commands.reservation_commit(reservation_id=reservation.id)

    with pytest.raises(Conflict) as refused:
        commands.reservation_release(reservation_id=reservation.id)

    assert refused.value.code == "reservation-committed"
    assert (stock("A").on_hand, stock("A").reserved) == (7, 0)


def test_committing_or_releasing_an_unknown_reservation_is_not_found():
    with pytest.raises(NotFound):
        commands.reservation_commit(reservation_id=uuid.uuid4())
    with pytest.raises(NotFound):
        commands.reservation_release(reservation_id=uuid.uuid4())


def test_expired_held_reservations_are_released_and_others_left_alone():
    StockItemFactory(sku="A", on_hand=10)
    expired = reserve(("A", 1), ttl_seconds=1)
    committed = reserve(("A", 2), ttl_seconds=1)
    commands.reservation_commit(reservation_id=committed.id)
    current = reserve(("A", 3))

    released = commands.reservations_release_expired(now=timezone.now() + timedelta(seconds=5))

    assert released == 1
    assert queries.reservation_get(reservation_id=expired.id).release_reason == "expired"
    assert queries.reservation_get(reservation_id=committed.id).status == "committed"
    assert queries.reservation_get(reservation_id=current.id).status == "held"
    assert (stock("A").on_hand, stock("A").reserved) == (8, 3)


def test_the_periodic_job_releases_reservations_that_outlived_their_expiry():
    from cleave.runtime import periodic

    StockItemFactory(sku="A", on_hand=10)
    expired = reserve(("A", 4))
    Reservation.objects.using("inventory").filter(pk=expired.id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    job = periodic.get("inventory.release_expired")

    assert (job.context, job.run()) == ("inventory", 1)
    assert queries.reservation_get(reservation_id=expired.id).status == "released"
    assert stock("A").reserved == 0


# --- return (a refunded order's stock goes back on the shelf) ----------------------------


def test_returning_a_committed_reservation_puts_its_stock_back_on_the_shelf():
    StockItemFactory(sku="A", on_hand=10)
    reservation = reserve(("A", 3))
    commands.reservation_commit(reservation_id=reservation.id)

    returned = commands.reservation_return(reservation_id=reservation.id, reason="refunded")

    assert (returned.status, returned.release_reason) == ("returned", "refunded")
    assert (stock("A").on_hand, stock("A").reserved) == (10, 0)
    [event] = published("inventory", "inventory.returned")
    assert event.data["lines"] == [{"sku": "A", "quantity": 3}]
    assert event.data["reason"] == "refunded"


def test_returning_twice_puts_the_stock_back_once():
    StockItemFactory(sku="A", on_hand=10)
    reservation = reserve(("A", 3))
    commands.reservation_commit(reservation_id=reservation.id)

    commands.reservation_return(reservation_id=reservation.id)
    commands.reservation_return(reservation_id=reservation.id)

    assert stock("A").on_hand == 10
    assert len(published("inventory", "inventory.returned")) == 1


def test_returning_a_held_reservation_changes_nothing_and_release_still_works():
    StockItemFactory(sku="A", on_hand=10)
    reservation = reserve(("A", 3))

    assert commands.reservation_return(reservation_id=reservation.id).status == "held"
    assert commands.reservation_release(reservation_id=reservation.id).status == "released"
    assert (stock("A").on_hand, stock("A").reserved) == (10, 0)


def test_a_returned_reservation_can_be_neither_committed_nor_released_again():
    StockItemFactory(sku="A", on_hand=10)
    reservation = reserve(("A", 3))
    commands.reservation_commit(reservation_id=reservation.id)
    commands.reservation_return(reservation_id=reservation.id)

    assert commands.reservation_release(reservation_id=reservation.id).status == "returned"
    with pytest.raises(Conflict):
        commands.reservation_commit(reservation_id=reservation.id)
    assert (stock("A").on_hand, stock("A").reserved) == (10, 0)


def test_a_reservation_is_found_by_its_idempotency_key():
    StockItemFactory(sku="A", on_hand=10)
    reservation = reserve(("A", 1), idempotency_key="saga:1:reserve_inventory")

    found = queries.reservation_get_by_key(idempotency_key="saga:1:reserve_inventory")

    assert found.pk == reservation.pk
    with pytest.raises(NotFound):
        queries.reservation_get_by_key(idempotency_key="another")


# --- stock ---------------------------------------------------------------------------


def test_stock_set_creates_and_then_updates_a_sku():
    commands.stock_set(sku="NEW", on_hand=5)
    commands.stock_set(sku="NEW", on_hand=12)

    assert (stock("NEW").on_hand, stock("NEW").reserved) == (12, 0)


def test_stock_set_refuses_to_drop_below_what_is_reserved():
    StockItemFactory(sku="A", on_hand=10)
    reserve(("A", 4))

    with pytest.raises(Conflict) as refused:
        commands.stock_set(sku="A", on_hand=3)
    commands.stock_set(sku="A", on_hand=4)

    assert refused.value.code == "below-reserved"
    assert (stock("A").on_hand, stock("A").available) == (4, 0)


@pytest.mark.parametrize("on_hand", [-1, 1_000_000_001, 2.5, None])
def test_stock_set_refuses_an_impossible_quantity(on_hand):
    with pytest.raises(ApplicationError) as refused:
        commands.stock_set(sku="A", on_hand=on_hand)

    assert status_for(refused.value) == 400


def test_the_database_refuses_more_reserved_than_on_hand():
    StockItemFactory(sku="A", on_hand=2)

    with pytest.raises(IntegrityError), transaction.atomic(using="inventory"):
        StockItem.objects.using("inventory").filter(sku="A").update(reserved=3)

    assert stock("A").reserved == 0


def test_stock_get_of_an_unknown_sku_is_not_found():
    with pytest.raises(NotFound):
        queries.stock_get(sku="NOPE")
