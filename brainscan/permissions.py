"""Rights that hold for the whole API (the default permission classes): a module of its own, as
DRF reads its settings when rest_framework.views is first imported."""

from rest_framework.permissions import BasePermission

from cases.roles import PACS_GROUP, is_pacs_account

PACS_ACCOUNT_REFUSED = (
    f"This is a PACS account (role {PACS_GROUP!r}): it pushes studies to /dicomweb/studies and "
    "nothing else. Use a person's account here."
)


class NotPacsAccount(BasePermission):
    """A PACS's token, kept in the PACS's database, reads no case and changes nothing."""

    code = "pacs_account"
    message = PACS_ACCOUNT_REFUSED

    def has_permission(self, request, view):
        return not is_pacs_account(request.user)
