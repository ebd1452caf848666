from django.urls import path

from . import views

urlpatterns = [
    path("", views.RegisterView.as_view(), name="register"),
    path("token", views.TokenView.as_view(), name="token"),
    path("token/refresh", views.TokenRefreshView.as_view(), name="token-refresh"),
    path("me", views.MeView.as_view(), name="me"),
    path("me/password", views.PasswordView.as_view(), name="password"),
    path("verify", views.VerifyView.as_view(), name="verify"),
    path("verify/resend", views.VerifyResendView.as_view(), name="verify-resend"),
    path("customers", views.CustomerListView.as_view(), name="customers"),
    path("customers/<uuid:customer_id>", views.CustomerDetailView.as_view(), name="customer"),
]
