"""The admin site (steward tools), answering signed-in non-staff users with 404.

Django's admin sends every non-staff request to its login page; for a clinician who is
already signed in that only advertises the tools. Outsiders get 404 everywhere else in
BrainScan, so they do here too. Anonymous visitors still get the login page.
"""

from functools import update_wrapper

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import Http404


class BrainScanAdminSite(admin.AdminSite):
    site_header = "BrainScan administration"

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        def guarded(request, *args, **kwargs):
            if request.user.is_authenticated and not self.has_permission(request):
                raise Http404
            return inner(request, *args, **kwargs)

        return update_wrapper(guarded, view)


class BrainScanAdminConfig(AdminConfig):
    default_site = "brainscan.admin.BrainScanAdminSite"
