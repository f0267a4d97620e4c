"""Template context: the user's role, for showing steward-only navigation."""

from .access import is_steward


def roles(request):
    return {"is_steward": is_steward(request.user)}
