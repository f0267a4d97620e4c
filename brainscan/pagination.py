"""The API's page numbers. Its own module: REST_FRAMEWORK settings import it while DRF's
generic views are still loading, so it must not import them (brainscan.api does)."""

from rest_framework import exceptions
from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    """Page numbers as DRF reads them, except that an empty or repeated ``page`` is a 400: DRF
    would quietly serve page 1 or the last value given."""

    def get_page_number(self, request, paginator):
        values = request.query_params.getlist(self.page_query_param)
        if len(values) > 1 or values == [""]:
            raise exceptions.ValidationError(
                {self.page_query_param: ["Give one page number, or leave the parameter out."]}
            )
        return super().get_page_number(request, paginator)
