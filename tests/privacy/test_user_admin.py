"""User accounts in Administration: only a superuser changes roles (superuser, staff, groups,
permissions); a data steward manages clinicians' accounts and cannot raise anyone's rights, their
own included. Every change of roles, groups, active flag or password is audited: who, whom, what."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from cases.access import is_steward
from cases.models import AuditEvent
from cases.roles import ensure_groups

pytestmark = pytest.mark.django_db

User = get_user_model()
NEW_PASSWORD = "a-long-new-passphrase-42"


def account_form(user, **changes):
    """The change form as the browser posts it, with ``changes`` ticked or typed on top."""
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on" if user.is_active else "",
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value != ""}


def change_url(user):
    return reverse("admin:auth_user_change", args=[user.pk])


@pytest.fixture
def user_changes(steward, owner):
    """The USER_CHANGE events about one account recorded by the test itself, not by the
    fixtures' own set-up (adding the role groups is audited too)."""
    first = (AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1

    def changes(user):
        events = AuditEvent.objects.filter(
            verb=AuditEvent.Verb.USER_CHANGE, object_id=str(user.pk), id__gte=first
        )
        return list(events.order_by("id"))

    return changes


def test_steward_cannot_make_themselves_superuser(user_changes, client_for, steward):
    client = client_for(steward)
    page = client.get(change_url(steward))
    assert page.status_code == 200
    assert b'name="is_superuser"' not in page.content and b'name="_save"' not in page.content
    superuser_group = Group.objects.create(name="everything")
    response = client.post(
        change_url(steward),
        account_form(
            steward,
            is_staff="on",
            is_superuser="on",
            groups=[superuser_group.pk],
            user_permissions=[Permission.objects.get(codename="delete_auditevent").pk],
        ),
    )
    assert response.status_code == 403
    steward.refresh_from_db()
    assert not steward.is_superuser
    assert list(steward.groups.values_list("name", flat=True)) == ["steward"]
    assert not steward.user_permissions.exists()
    assert user_changes(steward) == []


def test_steward_cannot_raise_a_clinicians_rights(user_changes, client_for, steward, owner):
    response = client_for(steward).post(
        change_url(owner),
        account_form(
            owner,
            first_name="Olive",
            is_staff="on",
            is_superuser="on",
            groups=[ensure_groups()[1].pk],
            user_permissions=[Permission.objects.get(codename="change_user").pk],
        ),
    )
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.first_name == "Olive"
    assert not owner.is_superuser and not owner.is_staff and not is_steward(owner)
    assert list(owner.groups.values_list("name", flat=True)) == ["clinician"]
    assert not owner.user_permissions.exists()
    assert user_changes(owner) == []


def test_steward_cannot_change_a_superusers_or_another_stewards_account(client_for, steward, admin_user):
    other = User.objects.create_user("other-steward", password=NEW_PASSWORD, is_staff=True)
    other.groups.add(ensure_groups()[1])
    client = client_for(steward)
    for account in (admin_user, other):
        before = account.password
        assert client.post(change_url(account), account_form(account, is_active="")).status_code == 403
        password_url = reverse("admin:auth_user_password_change", args=[account.pk])
        response = client.post(password_url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
        assert response.status_code == 403
        account.refresh_from_db()
        assert account.is_active and account.password == before


def test_steward_deactivates_a_clinician_and_it_is_audited(user_changes, client_for, steward, owner):
    response = client_for(steward).post(
        change_url(owner), account_form(owner, is_active=""), REMOTE_ADDR="192.0.2.8"
    )
    assert response.status_code == 302
    owner.refresh_from_db()
    assert not owner.is_active
    [event] = user_changes(owner)
    assert event.actor == steward and event.client_ip == "192.0.2.8"
    assert event.detail == {"user": "owner", "changes": {"is_active": [True, False]}}


def test_steward_resets_a_clinicians_password_and_it_is_audited(user_changes, client_for, steward, owner):
    url = reverse("admin:auth_user_password_change", args=[owner.pk])
    response = client_for(steward).post(url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password(NEW_PASSWORD)
    [event] = user_changes(owner)
    assert event.actor == steward and event.detail == {"user": "owner", "changes": {"password": "changed"}}
    assert NEW_PASSWORD not in str(event.detail) and owner.password not in str(event.detail)


def test_a_users_own_password_change_is_audited(user_changes, client_for, owner):
    response = client_for(owner).post(
        reverse("password_change"),
        {
            "old_password": "correct-horse-battery-staple",
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302
    [event] = user_changes(owner)
    assert event.actor == owner and event.detail["changes"] == {"password": "changed"}


def test_superuser_changes_roles_and_each_change_is_audited(user_changes, client_for, admin_user, owner):
    steward_group = ensure_groups()[1]
    response = client_for(admin_user).post(
        change_url(owner), account_form(owner, is_staff="on", groups=[steward_group.pk])
    )
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.is_staff and is_steward(owner)
    details = [event.detail["changes"] for event in user_changes(owner)]
    assert {"is_staff": [False, True]} in details
    assert {"groups": {"added": ["steward"]}} in details
    assert {"groups": {"removed": ["clinician"]}} in details
    assert {event.actor for event in user_changes(owner)} == {admin_user}


def test_group_changes_from_either_side_and_clear_are_audited(owner, teammate):
    clinician, steward_group = ensure_groups()
    steward_group.user_set.add(owner, teammate)
    owner.groups.clear()
    changes = [(event.detail["user"], event.detail["changes"]) for event in AuditEvent.objects.order_by("id")]
    changes = [change for change in changes if "groups" in change[1] and change[0] in ("owner", "teammate")]
    assert changes[-3:] == [
        ("owner", {"groups": {"added": ["steward"]}}),
        ("teammate", {"groups": {"added": ["steward"]}}),
        ("owner", {"groups": {"removed": ["clinician", "steward"]}}),
    ]
    assert AuditEvent.objects.filter(verb=AuditEvent.Verb.USER_CHANGE, actor=None).exists()


def test_creating_an_account_is_audited(client_for, steward):
    response = client_for(steward).post(
        reverse("admin:auth_user_add"),
        {
            "username": "newbie",
            "usable_password": "true",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302
    newbie = User.objects.get(username="newbie")
    assert not newbie.is_staff and not newbie.is_superuser and not newbie.groups.exists()
    event = AuditEvent.objects.get(verb=AuditEvent.Verb.USER_CREATE, object_id=str(newbie.pk))
    assert event.actor == steward
    assert event.detail["changes"] == {
        "is_active": True,
        "is_staff": False,
        "is_superuser": False,
        "password": "set",
    }


def test_a_password_hash_upgraded_at_login_is_not_a_change(user_changes, settings, client, owner):
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    old_hash = User.objects.get(pk=owner.pk).password
    assert old_hash.startswith("md5$")
    response = client.post(
        reverse("login"), {"username": "owner", "password": "correct-horse-battery-staple"}
    )
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.password.startswith("pbkdf2_sha256$")
    assert user_changes(owner) == []


def test_the_audit_log_names_the_account(client_for, admin_user, owner):
    client = client_for(admin_user)
    client.post(change_url(owner), account_form(owner, is_active=""))
    listing = client.get(reverse("admin:cases_auditevent_changelist"), {"verb__exact": "user_change"})
    assert '<td class="field-subject">user owner</td>' in listing.content.decode()
