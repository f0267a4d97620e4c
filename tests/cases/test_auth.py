"""Login, failed logins locking out (django-axes), audit of both, password change; a PACS account
never logs in."""

import pytest
from django.urls import reverse

from cases.models import AuditEvent

pytestmark = pytest.mark.django_db


def login(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


def test_login_and_failed_login_are_audited(client, owner):
    assert login(client, "owner", "wrong").status_code == 200
    assert login(client, "owner", "correct-horse-battery-staple").status_code == 302
    # The fixture's account set-up (user_create, user_change) is audited too; then the logins.
    events = AuditEvent.objects.exclude(verb__in=[AuditEvent.Verb.USER_CREATE, AuditEvent.Verb.USER_CHANGE])
    verbs = list(events.order_by("id").values_list("verb", flat=True))
    assert verbs == ["login_failed", "login"]
    assert "wrong" not in str(AuditEvent.objects.values_list("detail", flat=True))


def test_repeated_failures_lock_the_account_even_with_the_right_password(client, owner, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(client, "owner", "wrong")
    response = login(client, "owner", "correct-horse-battery-staple")
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_pacs_account_without_a_password_cannot_log_in_and_its_tries_count(client, pacs_account, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = login(client, "orthanc-push", "a-guess")
        assert response.status_code == 200 and "_auth_user_id" not in client.session
    login(client, "orthanc-push", "a-guess")
    # Locked out like any account: the lockout still holds for it.
    assert login(client, "orthanc-push", "anything").status_code == 429


def test_a_pacs_account_with_a_password_is_refused_with_the_reason(client, pacs_account):
    # Say a steward set one in the admin: the account still only pushes studies.
    pacs_account.set_password("a-long-enough-passphrase")
    pacs_account.save()

    response = login(client, "orthanc-push", "a-long-enough-passphrase")

    assert response.status_code == 200 and "_auth_user_id" not in client.session
    page = response.content.decode()
    assert "This is a PACS account (role &#x27;pacs&#x27;)" in page and "did not match" not in page
    assert not AuditEvent.objects.filter(verb=AuditEvent.Verb.LOGIN).exists()


def test_weak_password_change_is_refused(client_for, owner):
    client = client_for(owner)
    response = client.post(
        reverse("password_change"),
        {
            "old_password": "correct-horse-battery-staple",
            "new_password1": "12345678",
            "new_password2": "12345678",
        },
    )
    assert response.status_code == 200 and b"too short" in response.content
