"""URLs of the clinician pages."""

from django.urls import path

from . import viewer, views, views_pacs, views_series

app_name = "cases"
urlpatterns = [
    path("", views.case_list, name="list"),
    path("new/", views.case_create, name="create"),
    path("find-patient/", views.find_patient, name="find_patient"),
    path("export.csv", views.export_csv, name="export"),
    path("preferences/", views.preferences, name="preferences"),
    path("<int:pk>/", views.case_detail, name="detail"),
    path("<int:pk>/edit/", views.case_update, name="update"),
    path("<int:pk>/scans/", views.scan_upload, name="upload"),
    path("<int:pk>/scans/fragment/", views.case_scans_fragment, name="scans_fragment"),
    path("<int:pk>/pull/", views_pacs.case_pull, name="pull"),
    path("scans/<int:pk>/image.png", views.scan_image, name="scan_image"),
    path("scans/<int:pk>/viewer/", viewer.scan_viewer, name="viewer"),
    path("scans/<int:pk>/retract/", views.scan_retract, name="retract"),
    path("scans/<int:pk>/rerun/", views.scan_rerun, name="rerun"),
    path("predictions/<int:pk>/explanation.png", views.explanation_image, name="explanation_image"),
    path("predictions/<int:pk>/review/", views.review_create, name="review"),
    path("series-verdicts/<int:pk>/review/", views_series.series_review_create, name="series_review"),
]
