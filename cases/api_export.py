"""The CSV export in the REST API (GET /api/v1/cases/export.csv): the web export's file
(cases/export.py) for the cases the API's filters select, audited as the page does."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import renderers
from rest_framework.views import APIView

from . import export
from .api import FILTER_PARAMETERS, filtered_cases
from .models import AuditEvent


class CSVRenderer(renderers.BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        # Only errors reach a renderer (the export streams itself): one "detail" cell.
        return f"detail\r\n{data.get('detail', '')}\r\n".encode()


class CaseExportView(APIView):
    """The web export's CSV (cases/export.py), same filters, audited the same way."""

    renderer_classes = [renderers.JSONRenderer, CSVRenderer]

    @extend_schema(
        summary="Case history as CSV, one row per scan (same file as the web export)",
        parameters=FILTER_PARAMETERS,
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request):
        cases = filtered_cases(request)
        filters = {key: value for key, value in request.query_params.items() if value}
        AuditEvent.record(request.user, AuditEvent.Verb.EXPORT, filters=filters)
        return export.csv_response(export.case_rows(cases), export.export_filename())
