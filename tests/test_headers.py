"""The Content-Security-Policy on every answer, and templates that keep to it (the browser test,
tests/browser/test_csp.py, checks the pages themselves)."""

import re

import pytest
from django.urls import reverse

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.django_db


def test_pages_api_and_errors_carry_the_strict_policy(client, owner_client, settings):
    answers = [
        client.get(reverse("login")),
        owner_client.get(reverse("cases:list")),
        owner_client.get("/cases/999999/"),
        owner_client.get("/api/v1/cases/"),
        client.get("/api/v1/docs/"),
    ]
    for response in answers:
        assert response["Content-Security-Policy"] == settings.CONTENT_SECURITY_POLICY
    policy = dict(part.strip().split(" ", 1) for part in settings.CONTENT_SECURITY_POLICY.split(";"))
    assert policy["script-src"] == policy["style-src"] == policy["default-src"] == "'self'"
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"


def test_analytics_pages_allow_inline_styles_only(owner_client, settings):
    response = owner_client.get(reverse("analytics:index"))
    assert response["Content-Security-Policy"] == settings.CONTENT_SECURITY_POLICY_CHARTS
    assert "script-src 'self';" in response["Content-Security-Policy"]


def test_no_template_has_an_inline_script_or_style():
    inline = []
    for template in sorted((REPO_ROOT / "templates").rglob("*.html")):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            if "src=" not in tag and 'type="application/json"' not in tag:
                inline.append(f"{template.name}: {tag}")
        inline += [f"{template.name}: {m}" for m in re.findall(r"<style\b|\sstyle=|\son[a-z]+=", text)]
    assert inline == []
