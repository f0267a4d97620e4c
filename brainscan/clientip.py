"""The client's address: REMOTE_ADDR, or X-Forwarded-For only when it comes from a trusted proxy.

Audit events, the login lock-out and the API throttles all name the client by this one rule, so
a spoofed X-Forwarded-For sent straight to gunicorn changes nothing.
"""

import ipaddress

from django.conf import settings


def _address(text):
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address):
    return address is not None and any(address in network for network in settings.TRUSTED_PROXIES)


def client_ip(request):
    """The first address, counted from the right of X-Forwarded-For, that is not a trusted proxy."""
    remote = request.META.get("REMOTE_ADDR", "")
    if not _trusted(_address(remote)):
        return remote or None
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([part for part in forwarded.split(",") if part.strip()]):
        address = _address(hop)
        if address is None:
            # A malformed hop: stop trusting the chain here and name the proxy that connected.
            return remote
        if not _trusted(address):
            return str(address)
    return remote
