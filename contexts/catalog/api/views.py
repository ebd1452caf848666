"""
Catalog API: the public shop window.

Every endpoint is public. They keep the default authentication classes anyway,
so that calls from other contexts (service tokens) are recognised and exempt
from the anonymous throttle. Every answer carries the catalogue's revision in
its `ETag`, answers `If-None-Match` with 304 and is cached up to the next
write (`cleave.http.conditional`).
"""

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import generics, serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from cleave.core.errors import NotFound
from cleave.http.conditional import RevisedRead
from cleave.http.openapi import problem_answer

from .. import queries


@extend_schema_serializer(component_name="Product")
class ProductOutput(serializers.Serializer):
    id = serializers.UUIDField()
    sku = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    price = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    category = serializers.CharField(source="category_id")


@extend_schema_serializer(component_name="Category")
class CategoryOutput(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()


class ProductListView(RevisedRead, generics.ListAPIView):
    permission_classes = (AllowAny,)
    revision = queries.revision
    serializer_class = ProductOutput

    class Filters(serializers.Serializer):
        search = serializers.CharField(required=False, allow_blank=True, max_length=100)
        category = serializers.SlugField(required=False, allow_blank=True, max_length=64)

    @extend_schema(parameters=[Filters], summary="Browse active products")
    def get(self, request, *args, **kwargs):
        return self.revised(request, lambda: super(ProductListView, self).get(request))

    def get_queryset(self):
        filters = self.Filters(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return queries.product_list(**filters.validated_data)


class ProductDetailView(RevisedRead, APIView):
    permission_classes = (AllowAny,)
    revision = queries.revision

    @extend_schema(
        responses={
            200: ProductOutput,
            404: problem_answer(
                "No active product has this id.",
                NotFound("No product 0b7a9f3e-5c1d-4e2a-8f6b-9d3c2a1e4f5b."),
            ),
        },
        summary="A product",
    )
    def get(self, request, product_id):
        def answer():
            return Response(ProductOutput(queries.product_get(product_id=product_id)).data)

        return self.revised(request, answer)


class CategoryListView(RevisedRead, APIView):
    permission_classes = (AllowAny,)
    revision = queries.revision

    @extend_schema(responses={200: CategoryOutput(many=True)}, summary="All categories")
    def get(self, request):
        return self.revised(
            request, lambda: Response(CategoryOutput(queries.category_list(), many=True).data)
        )
