"""
Pagination of the API's lists: `{count, next, previous, results}`, `?page=`
and `?page_size=` from 1 to 100.
"""

from __future__ import annotations

from rest_framework import exceptions, pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """
    `{"count", "next", "previous", "results"}`, `?page=N`, `?page_size=` from 1 to 100.

    A page past the end (or not a number, or given empty) is a 404, as in DRF
    for all but the empty one, which DRF reads as the first page; a `page_size`
    that is not a whole number from 1 to 100 is a 400, where DRF would quietly
    use the default.
    """

    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_number(self, request, paginator):
        # DRF takes `?page=` (empty) for page 1; it is not a page number
        page_number = request.query_params.get(self.page_query_param, 1)
        if page_number in self.last_page_strings:
            page_number = paginator.num_pages
        return page_number

    def get_page_size(self, request):
        given = request.query_params.get(self.page_size_query_param)
        if given is None:
            return self.page_size
        valid = (
            given.isascii()
            and given.isdigit()
            # int() of thousands of digits raises rather than refuses
            and len(given) <= len(str(self.max_page_size))
            and 1 <= int(given) <= self.max_page_size
        )
        if not valid:
            raise exceptions.ValidationError(
                {self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}."]}
            )
        return int(given)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
            elif parameter["name"] == self.page_query_param:
                parameter["schema"].update(minimum=1)
        return parameters
