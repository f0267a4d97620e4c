"""URLs of the analytics pages."""

from django.urls import path

from . import views

app_name = "analytics"
urlpatterns = [
    path("", views.index, name="index"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset"),
    path("datasets/<int:pk>/files/<str:key>", views.dataset_file, name="dataset_file"),
    path("datasets/<int:pk>/montage/", views.dataset_resample, name="dataset_resample"),
    path("datasets/<int:pk>/recompute/", views.dataset_recompute, name="dataset_recompute"),
    path("models/<int:pk>/", views.model_detail, name="model"),
    path("field/", views.field, name="field"),
]
