"""Django admin for user accounts (roles changed by superusers only), teams and memberships."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from .access import is_steward
from .models import Membership, Team

User = get_user_model()
# Who holds which rights: only a superuser changes these, for any account.
ROLE_FIELDS = ["is_superuser", "is_staff", "groups", "user_permissions"]


def has_rights_above_clinician(user) -> bool:
    return user.is_superuser or user.is_staff or is_steward(user)


admin.site.unregister(User)


@admin.register(User)
class UserAccountAdmin(UserAdmin):
    """Only a superuser changes roles (superuser, staff, groups, permissions). A data steward adds
    accounts and manages clinicians' (details, active flag, password), and may only view an account
    with more rights than a clinician, their own included. Every change is audited (cases.audit)."""

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += [*ROLE_FIELDS, "last_login", "date_joined"]
        return readonly

    def has_change_permission(self, request, obj=None):
        if not super().has_change_permission(request, obj):
            return False
        return obj is None or request.user.is_superuser or not has_rights_above_clinician(obj)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name"]
    inlines = [MembershipInline]
