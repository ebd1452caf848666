from django.urls import path

from . import views

urlpatterns = [
    path("stock/<str:sku>", views.StockDetailView.as_view(), name="stock"),
    path("reservations", views.ReservationCreateView.as_view(), name="reservations"),
    path(
        "reservations/<uuid:reservation_id>",
        views.ReservationDetailView.as_view(),
        name="reservation",
    ),
    path(
        "reservations/<uuid:reservation_id>/commit",
        views.ReservationCommitView.as_view(),
        name="reservation-commit",
    ),
    path(
        "reservations/<uuid:reservation_id>/return",
        views.ReservationReturnView.as_view(),
        name="reservation-return",
    ),
    path(
        "reservations/<uuid:reservation_id>/release",
        views.ReservationReleaseView.as_view(),
        name="reservation-release",
    ),
]
