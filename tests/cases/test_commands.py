"""Management commands: adduser (clinician, steward, PACS account) and ensure_admin (never blocks
on a prompt)."""

import io
import stat

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from cases.access import is_steward
from cases.models import Membership
from cases.roles import is_pacs_account

pytestmark = pytest.mark.django_db


def test_adduser_creates_a_clinician_in_a_team(tmp_path):
    password = tmp_path / "pw"
    password.write_text("a-long-enough-passphrase\n")
    call_command(
        "adduser", "dr_who", role="clinician", team="Neuro A", password_file=password, stdout=io.StringIO()
    )
    user = get_user_model().objects.get(username="dr_who")
    assert user.check_password("a-long-enough-passphrase") and not is_steward(user)
    assert Membership.objects.get(user=user).team.name == "Neuro A"


def test_adduser_steward_manages_users_in_admin(tmp_path):
    password = tmp_path / "pw"
    password.write_text("a-long-enough-passphrase")
    call_command("adduser", "dana", role="steward", password_file=password, stdout=io.StringIO())
    user = get_user_model().objects.get(username="dana")
    assert is_steward(user) and user.is_staff and user.has_perm("auth.change_user")


def test_adduser_refuses_weak_password_and_missing_team(tmp_path):
    password = tmp_path / "pw"
    password.write_text("password")
    with pytest.raises(CommandError, match="Password rejected"):
        call_command("adduser", "x", role="steward", password_file=password)
    with pytest.raises(CommandError, match="needs a team"):
        call_command("adduser", "y", role="clinician", password_file=password)
    assert not get_user_model().objects.exists()


def test_adduser_pacs_makes_an_account_without_password_in_one_team(monkeypatch):
    # No terminal, and none needed: a PACS account is never asked for a password.
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    stdout = io.StringIO()
    call_command("adduser", "orthanc-push", role="pacs", team="Neuro A", stdout=stdout)
    user = get_user_model().objects.get(username="orthanc-push")
    assert is_pacs_account(user) and not user.has_usable_password()
    assert not user.is_staff and not is_steward(user)
    assert list(user.groups.values_list("name", flat=True)) == ["pacs"]
    assert Membership.objects.get(user=user).team.name == "Neuro A"
    assert "drf_create_token orthanc-push" in stdout.getvalue()


def test_adduser_pacs_needs_a_team_and_takes_no_password(tmp_path):
    password = tmp_path / "pw"
    password.write_text("a-long-enough-passphrase")
    with pytest.raises(CommandError, match="needs a team"):
        call_command("adduser", "orthanc-push", role="pacs")
    with pytest.raises(CommandError, match="has no password"):
        call_command("adduser", "orthanc-push", role="pacs", team="Neuro A", password_file=password)
    assert not get_user_model().objects.exists()


def test_adduser_without_terminal_or_password_file_does_not_block(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CommandError, match="--password-file"):
        call_command("adduser", "z", role="steward")


def test_ensure_admin_creates_once_with_private_password_file(tmp_path):
    out = tmp_path / "admin-password.txt"
    stdout = io.StringIO()
    call_command("ensure_admin", password_out=out, stdout=stdout)
    password = out.read_text().strip()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert password in stdout.getvalue()
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password) and is_steward(admin)
    call_command("ensure_admin", password_out=out, stdout=io.StringIO())
    assert get_user_model().objects.count() == 1 and out.read_text().strip() == password
