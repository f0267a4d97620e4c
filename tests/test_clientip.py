"""The client address rule shared by audit, lock-out and throttles."""

import ipaddress

import pytest
from django.test import RequestFactory

from brainscan.clientip import client_ip


@pytest.fixture
def proxies(settings):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32")]


def _request(remote, forwarded=None):
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **meta)


def test_forwarded_header_from_an_untrusted_client_is_ignored(proxies):
    assert client_ip(_request("203.0.113.9", "198.51.100.1")) == "203.0.113.9"


def test_forwarded_header_from_a_trusted_proxy_names_the_client(proxies):
    assert client_ip(_request("10.1.2.3", "198.51.100.1")) == "198.51.100.1"


def test_a_spoofed_hop_left_of_the_real_client_is_not_believed(proxies):
    # The client sent "X-Forwarded-For: 1.2.3.4"; the proxy appended the real address.
    assert client_ip(_request("127.0.0.1", "1.2.3.4, 198.51.100.7")) == "198.51.100.7"


def test_chain_of_trusted_proxies_is_walked_from_the_right(proxies):
    assert client_ip(_request("127.0.0.1", "198.51.100.7, 10.9.9.9")) == "198.51.100.7"


def test_a_malformed_hop_stops_at_the_proxy(proxies):
    assert client_ip(_request("10.1.2.3", "not-an-ip")) == "10.1.2.3"


def test_without_trusted_proxies_the_header_is_ignored(settings):
    settings.TRUSTED_PROXIES = []
    assert client_ip(_request("127.0.0.1", "198.51.100.1")) == "127.0.0.1"
