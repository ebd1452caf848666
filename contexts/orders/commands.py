"""Write side of the orders context: carts, checkout, order outcomes."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal, InvalidOperation
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from cleave import sagas
from cleave.calls.client import ServiceClient
from cleave.core.errors import Conflict, DependencyFailed, Invalid, NotFound, invalid
from cleave.messaging.publish import publish
from cleave.messaging.replay import redact
from cleave.sagas.models import SagaInstance
from contracts import catalog, orders

from . import queries
from .apps import ALIAS
from .models import MAX_QUANTITY, MIN_QUANTITY, Cart, CartItem, Order, OrderLine

CHECKOUT_SAGA = "checkout"

logger = logging.getLogger(__name__)


def _log_after_commit(message: str, *args, **extra) -> None:
    """A business fact, logged at INFO once it is committed (never for a rolled-back one)."""
    transaction.on_commit(lambda: logger.info(message, *args, extra=extra), using=ALIAS)


class EmptyCart(Invalid):
    code = "empty-cart"
    title = "The cart is empty"


def cart_ensure(*, customer_id: UUID) -> Cart:
    """Return the customer's cart, creating it on first use."""
    cart = Cart.objects.filter(customer_id=customer_id).first()
    if cart is not None:
        return cart
    try:
        with transaction.atomic(using=ALIAS):
            return Cart.objects.create(
                id=queries.cart_id_for(customer_id=customer_id), customer_id=customer_id
            )
    except IntegrityError:  # created concurrently (e.g. by the user.created handler)
        return Cart.objects.get(customer_id=customer_id)


def _product(product_id: UUID) -> dict:
    """Read a product from the catalog's published API."""
    response = ServiceClient("catalog", caller="orders").call(
        catalog.PRODUCT_GET, product_id=product_id
    )
    if response.status_code == 404:
        raise Invalid(
            f"No product {product_id}.",
            code="unknown-product",
            errors={"product_id": [f"No product {product_id}."]},
        )
    response.raise_for_status()
    data = response.json()
    try:
        data["price"] = Decimal(str(data["price"]))
    except (KeyError, InvalidOperation) as exc:
        raise DependencyFailed("The catalog returned an unusable price.") from exc
    return data


def cart_quantity(quantity: int, *, in_cart: int = 0) -> int:
    """
    The quantity asked for a cart line, refused (Invalid, naming `quantity`)
    outside MIN_QUANTITY..MAX_QUANTITY, or when it would take the `in_cart`
    the line holds already past MAX_QUANTITY.
    """
    if not MIN_QUANTITY <= quantity <= MAX_QUANTITY:
        bounds = f"from {MIN_QUANTITY} to {MAX_QUANTITY}"
        raise invalid("quantity", f"Must be {bounds}.", detail=f"Quantity must be {bounds}.")
    if in_cart + quantity > MAX_QUANTITY:
        raise invalid(
            "quantity",
            f"A cart holds at most {MAX_QUANTITY} of one product.",
            detail=f"A cart holds at most {MAX_QUANTITY} of one product ({in_cart} are in it).",
        )
    return quantity


def cart_add_item(*, customer_id: UUID, product_id: UUID, quantity: int) -> CartItem:
    """Add a product to the cart (or raise its quantity), at the catalog's current price."""
    cart_quantity(quantity)
    product = _product(product_id)
    cart = cart_ensure(customer_id=customer_id)
    with transaction.atomic(using=ALIAS):
        item = CartItem.objects.select_for_update().filter(cart=cart, product_id=product_id).first()
        if item is None:
            item = CartItem.objects.create(
                cart=cart,
                product_id=product_id,
                sku=product["sku"],
                name=product["name"],
                unit_price=product["price"],
                currency=product.get("currency") or settings.CLEAVE_CURRENCY,
                quantity=quantity,
            )
        else:
            # checked on the locked line: concurrent additions cannot pass it together
            cart_quantity(quantity, in_cart=item.quantity)
            item.quantity += quantity
            item.unit_price = product["price"]
            item.save(update_fields=["quantity", "unit_price"])
    return item


def _own_item(customer_id: UUID, item_id: UUID) -> CartItem:
    item = (
        CartItem.objects.select_for_update()
        .filter(pk=item_id, cart__customer_id=customer_id)
        .first()
    )
    if item is None:
        raise NotFound(f"No item {item_id} in your cart.")
    return item


def cart_update_item(*, customer_id: UUID, item_id: UUID, quantity: int) -> CartItem:
    cart_quantity(quantity)
    with transaction.atomic(using=ALIAS):
        item = _own_item(customer_id, item_id)
        item.quantity = quantity
        item.save(update_fields=["quantity"])
    return item


def cart_remove_item(*, customer_id: UUID, item_id: UUID) -> None:
    with transaction.atomic(using=ALIAS):
        _own_item(customer_id, item_id).delete()


def _line_payload(line: OrderLine) -> dict:
    return {
        "product_id": line.product_id,
        "sku": line.sku,
        "name": line.name,
        "unit_price": line.unit_price,
        "quantity": line.quantity,
        "line_total": line.line_total,
    }


def order_checkout(
    *, customer_id: UUID, payment_method: str, idempotency_key: str | None = None
) -> tuple[Order, bool]:
    """
    Turn the cart into a pending order and start the checkout saga.

    Returns (order, created), the order as it is once committed. The same
    `idempotency_key` from the same customer returns the first order and
    starts nothing, also to requests that race the first: they wait for the
    cart's lock, which the first holds until it commits, and then find its
    order under the key (and not the cart it emptied, which would answer
    `empty-cart`).
    """
    if idempotency_key:
        existing = _order_by_key(customer_id, idempotency_key)
        if existing is not None:
            return _replayed(existing, payment_method=payment_method), False
    try:
        with transaction.atomic(using=ALIAS):
            cart = Cart.objects.select_for_update().filter(customer_id=customer_id).first()
            if idempotency_key:
                # asked again under the lock: a racer with the key committed meanwhile
                existing = _order_by_key(customer_id, idempotency_key)
                if existing is not None:
                    return _replayed(existing, payment_method=payment_method), False
            items = list(cart.items.all()) if cart else []
            if not items:
                raise EmptyCart("Add products to the cart before checking out.")
            currencies = {item.currency for item in items}
            if len(currencies) != 1:
                raise Invalid("The cart mixes currencies.", code="mixed-currencies")
            saga_id = uuid.uuid4()
            order = Order.objects.create(
                customer_id=customer_id,
                total=sum((item.line_total for item in items), Decimal("0")),
                currency=currencies.pop(),
                payment_method=payment_method,
                idempotency_key=idempotency_key or None,
                saga_id=saga_id,
            )
            lines = OrderLine.objects.bulk_create(
                [
                    OrderLine(
                        order=order,
                        product_id=item.product_id,
                        sku=item.sku,
                        name=item.name,
                        unit_price=item.unit_price,
                        quantity=item.quantity,
                        line_total=item.line_total,
                    )
                    for item in items
                ]
            )
            CartItem.objects.filter(cart=cart).delete()
            publish(
                orders.ORDER_PLACED,
                {
                    "order_id": order.id,
                    "customer_id": customer_id,
                    "lines": [_line_payload(line) for line in lines],
                    "total": order.total,
                    "currency": order.currency,
                },
            )
            # placing the order (this transaction) is the saga's first step
            sagas.start(
                CHECKOUT_SAGA,
                saga_id=saga_id,
                completed_steps=1,
                data={
                    "order_id": str(order.id),
                    "customer_id": str(customer_id),
                    "payment_method": payment_method,
                    "amount": str(order.total),
                    "currency": order.currency,
                    "lines": [{"sku": line.sku, "quantity": line.quantity} for line in lines],
                },
            )
            _log_after_commit(
                "Order %s placed: %s %s",
                order.id,
                order.total,
                order.currency,
                order_id=str(order.id),
            )
    except IntegrityError:
        # the same key raced in from a second request: answer with the winner
        existing = _order_by_key(customer_id, idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return _replayed(existing, payment_method=payment_method), False
    # as it is now: the saga's next steps may have run when the order was committed
    order.refresh_from_db()
    return order, True


def _replayed(order: Order, *, payment_method: str) -> Order:
    """The order first placed with an Idempotency-Key, if the request is the same; else Conflict."""
    if order.payment_method != payment_method:
        raise Conflict(
            "This Idempotency-Key was already used for a checkout with another payment method.",
            code="idempotency-key-reused",
        )
    return order


def _order_by_key(customer_id: UUID, key: str) -> Order | None:
    return Order.objects.filter(customer_id=customer_id, idempotency_key=key).first()


def _locked_order(order_id: UUID) -> Order:
    order = Order.objects.select_for_update().filter(pk=order_id).first()
    if order is None:
        raise NotFound(f"No order {order_id}.")
    return order


def order_placed(*, order_id: UUID) -> tuple[Order, list[OrderLine]]:
    """
    An order and its lines as placed: what never changes once it is placed.

    A caller about to confirm the order reads them here, before opening the
    transaction that `order_confirm()` joins, so that transaction holds its
    write lock only to decide and publish.
    """
    lines = list(OrderLine.objects.filter(order_id=order_id).select_related("order"))
    order = lines[0].order if lines else Order.objects.filter(pk=order_id).first()
    if order is None:
        raise NotFound(f"No order {order_id}.")
    return order, lines


def order_confirm(
    *,
    order_id: UUID,
    payment_id: UUID,
    reservation_id: UUID,
    placed: tuple[Order, list[OrderLine]] | None = None,
) -> Order:
    """
    Mark a pending order confirmed and publish `order.confirmed` (idempotent).

    `placed`: what `order_placed()` returned for this order, read beforehand;
    read here, before this command's transaction, when not given.
    """
    order, lines = placed if placed is not None else order_placed(order_id=order_id)
    with transaction.atomic(using=ALIAS):
        now = timezone.now()
        # conditional, so it takes the row lock and decides in one statement
        confirmed = Order.objects.filter(pk=order_id, status=Order.Status.PENDING).update(
            status=Order.Status.CONFIRMED,
            payment_id=payment_id,
            reservation_id=reservation_id,
            confirmed_at=now,
            updated_at=now,
        )
        if not confirmed:
            current = Order.objects.filter(pk=order_id).first()
            if current is None:
                raise NotFound(f"No order {order_id}.")
            if current.status == Order.Status.CONFIRMED:
                return current
            raise Conflict(f"Order {order_id} is {current.status}; it cannot be confirmed.")
        # the order as the update left it
        order.status = Order.Status.CONFIRMED
        order.payment_id = payment_id
        order.reservation_id = reservation_id
        order.confirmed_at = order.updated_at = now
        publish(
            orders.ORDER_CONFIRMED,
            {
                "order_id": order.id,
                "customer_id": order.customer_id,
                "lines": [_line_payload(line) for line in lines],
                "total": order.total,
                "currency": order.currency,
                "payment_id": payment_id,
            },
        )
        _log_after_commit("Order %s confirmed", order.id, order_id=str(order.id))
    return order


def order_cancel(
    *,
    order_id: UUID,
    reason: str,
    payment_id: UUID | None = None,
    reservation_id: UUID | None = None,
    after_refund: bool = False,
) -> Order:
    """
    Mark an order cancelled with `reason` and publish `order.cancelled` (idempotent).

    Only a pending order can be cancelled, unless `after_refund`: the checkout
    saga's compensation of a confirmed order, whose payment it has refunded.
    """
    if reason not in Order.CancellationReason.values:
        raise ValueError(f"Unknown cancellation reason {reason!r}")
    with transaction.atomic(using=ALIAS):
        order = _locked_order(order_id)
        if order.status == Order.Status.CANCELLED:
            return order
        if order.status != Order.Status.PENDING and not after_refund:
            raise Conflict(f"Order {order_id} is {order.status}; it cannot be cancelled.")
        order.status = Order.Status.CANCELLED
        order.cancellation_reason = reason
        order.payment_id = payment_id or order.payment_id
        order.reservation_id = reservation_id or order.reservation_id
        order.cancelled_at = timezone.now()
        order.save(
            update_fields=[
                "status",
                "cancellation_reason",
                "payment_id",
                "reservation_id",
                "cancelled_at",
                "updated_at",
            ],
        )
        publish(
            orders.ORDER_CANCELLED,
            {
                "order_id": order.id,
                "customer_id": order.customer_id,
                "reason": reason,
                "total": order.total,
                "currency": order.currency,
            },
        )
        _log_after_commit(
            "Order %s cancelled: %s", order.id, reason, order_id=str(order.id), reason=reason
        )
    return order


def order_request_cancel(*, customer_id: UUID, order_id: UUID) -> Order:
    """
    A customer asks to cancel their order (reason `customer_request`).

    A pending order's checkout saga is asked to compensate: at its next step
    it releases the stock, voids the payment and cancels the order (if the
    request races the confirmation, the confirmed order is refunded). A
    confirmed order is refused (Conflict): refunds go through an operator.
    Asking again changes nothing.
    """
    reason = Order.CancellationReason.CUSTOMER_REQUEST
    with transaction.atomic(using=ALIAS):
        order = (
            Order.objects.select_for_update().filter(pk=order_id, customer_id=customer_id).first()
        )
        if order is None:
            raise NotFound(f"No order {order_id}.")
        if order.status == Order.Status.CONFIRMED:
            raise Conflict(
                f"Order {order_id} is confirmed and can no longer be cancelled here; "
                "ask customer service for a refund.",
                code="order-confirmed",
            )
        if order.status == Order.Status.CANCELLED:
            if order.cancellation_reason == reason:
                return order
            raise Conflict(
                f"Order {order_id} was already cancelled ({order.cancellation_reason}).",
                code="order-cancelled",
            )
        order = _cancel_pending(order, reason)
    if order.status == Order.Status.PENDING:
        # as it is now: its saga may have compensated when the request was committed
        order.refresh_from_db()
    return order


def _cancel_pending(order: Order, reason: str) -> Order:
    """Cancel a pending order: through its checkout saga, which compensates first."""
    if order.saga_id is None:  # an order placed before sagas: nothing is held for it
        return order_cancel(order_id=order.id, reason=reason)
    # False when the saga is already compensating: the order ends cancelled anyway
    sagas.request_cancel(ALIAS, order.saga_id, reason)
    return order


def order_refund(
    *, order_id: UUID, reason: str = Order.CancellationReason.CUSTOMER_REQUEST
) -> Order:
    """
    Refund and cancel a confirmed order (an operator's action).

    The completed checkout saga is compensated: committed stock goes back on
    the shelf, the payment is refunded, the order is cancelled with `reason`.
    A pending order is cancelled through its running saga instead.
    """
    if reason not in Order.CancellationReason.values:
        raise Invalid(
            f"Unknown cancellation reason {reason!r}.", errors={"reason": ["Unknown reason."]}
        )
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        raise NotFound(f"No order {order_id}.")
    if order.status == Order.Status.CANCELLED:
        return order
    if order.saga_id is None:
        raise Conflict(f"Order {order_id} has no checkout saga to compensate.", code="no-saga")
    try:
        sagas.compensate(ALIAS, order.saga_id, reason)
    except SagaInstance.DoesNotExist:
        raise Conflict(
            f"Order {order_id}'s checkout saga was pruned (`sagas prune`): "
            "it can no longer be refunded through it.",
            code="saga-pruned",
        ) from None
    order.refresh_from_db()
    return order


# --- the customer's lifecycle (users' events) -----------------------------------------


def customer_checkouts_cancel(*, customer_id: UUID, reason: str) -> int:
    """
    Cancel the customer's checkouts still running (a blocked or deleted
    customer): each saga is asked to compensate, and its order ends
    cancelled with `reason`. Confirmed orders are kept. Returns how many.
    """
    pending = list(Order.objects.filter(customer_id=customer_id, status=Order.Status.PENDING))
    for order in pending:
        _cancel_pending(order, reason)
    return len(pending)


def customer_forget(*, customer_id: UUID) -> UUID:
    """
    A deleted customer: their cart goes, and their orders stay as the
    financial record under a pseudonym (a new random id, the same for all
    their orders: nothing leads back to them), without the payment method or
    idempotency keys they gave; the events this context published about them
    carry the pseudonym too. Returns the pseudonym.
    """
    pseudonym = uuid.uuid4()
    with transaction.atomic(using=ALIAS):
        Cart.objects.filter(customer_id=customer_id).delete()
        Order.objects.filter(customer_id=customer_id).update(
            customer_id=pseudonym, payment_method="", idempotency_key=None
        )
        redact(
            ALIAS,
            type_prefix="order.",
            match={"customer_id": str(customer_id)},
            replace={"customer_id": str(pseudonym)},
        )
    return pseudonym
