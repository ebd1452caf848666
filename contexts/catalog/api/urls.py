from django.urls import path

from . import views

urlpatterns = [
    path("products", views.ProductListView.as_view(), name="products"),
    path("products/<uuid:product_id>", views.ProductDetailView.as_view(), name="product"),
    path("categories", views.CategoryListView.as_view(), name="categories"),
]
