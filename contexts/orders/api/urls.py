from django.urls import path

from . import views

urlpatterns = [
    path("", views.OrderListView.as_view(), name="order-list"),
    path("cart", views.CartView.as_view(), name="cart"),
    path("cart/items", views.CartItemsView.as_view(), name="cart-items"),
    path("cart/items/<uuid:item_id>", views.CartItemView.as_view(), name="cart-item"),
    path("checkout", views.CheckoutView.as_view(), name="checkout"),
    path("<uuid:order_id>", views.OrderDetailView.as_view(), name="order-detail"),
    path("<uuid:order_id>/cancel", views.OrderCancelView.as_view(), name="order-cancel"),
]
