from django.urls import path

from . import views

urlpatterns = [
    path("charges", views.ChargeView.as_view(), name="charges"),
    path("charges/void", views.VoidView.as_view(), name="charges-void"),
    path("<uuid:payment_id>", views.PaymentDetailView.as_view(), name="payment"),
    path("<uuid:payment_id>/refund", views.RefundView.as_view(), name="refund"),
]
