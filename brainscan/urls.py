"""Top-level URLconf: accounts, the apps' pages, admin, and the REST API under /api/v1/."""

from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from cases.api import CaseViewSet, ScanViewSet
from cases.api_export import CaseExportView
from cases.api_pacs import CasePullView, StudyImportViewSet
from cases.api_series_review import SeriesViewSet
from cases.dicomweb import StowView
from cases.forms import LoginForm
from inference.api import ModelVersionViewSet

from .api import TokenView

handler404 = "brainscan.api.not_found"
handler500 = "brainscan.api.server_error"

router = DefaultRouter()
router.include_root_view = False
router.register("cases", CaseViewSet, basename="case")
router.register("scans", ScanViewSet, basename="scan")
router.register("series", SeriesViewSet, basename="series")
router.register("models", ModelVersionViewSet, basename="modelversion")
router.register("pulls", StudyImportViewSet, basename="studyimport")

api_urlpatterns = [
    path("auth/token/", TokenView.as_view(), name="token"),
    # Before the router, whose case-detail route would otherwise be tried first.
    path("cases/export.csv", CaseExportView.as_view(), name="case-export"),
    path("cases/<str:id>/pull/", CasePullView.as_view(), name="case-pull"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # Its script is a file of its own (?script), not inline: the CSP allows no inline script.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    *router.urls,
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="cases:list", permanent=False)),
    # Before django's own: the form that refuses a PACS account.
    path("accounts/login/", LoginView.as_view(authentication_form=LoginForm), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("cases/", include("cases.urls")),
    path("models/", include("inference.urls")),
    path("analytics/", include("analytics.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_urlpatterns, "api"))),
    # DICOMweb STOW-RS: a PACS pushes studies here (token-authenticated service account).
    path("dicomweb/studies", StowView.as_view(), name="stow"),
]
