"""manage.py bench_load (the load step of `make bench`): what it refuses before touching anything.
Its figures are measured by `make bench`, never in a timed test."""

import pytest
from django.core.management import CommandError, call_command

from cases.models import Case, Team

pytestmark = pytest.mark.django_db


def test_without_apachebench_it_says_how_to_get_it_and_creates_nothing(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(CommandError, match="apache2-utils"):
        call_command("bench_load")
    assert not Case.objects.exists() and not Team.objects.exists()


@pytest.mark.parametrize(
    "arguments", [["--requests", "0"], ["--chunk", "8"], ["--uploads", "-1"], ["--max-requests", "0"]]
)
def test_bad_counts_are_refused(arguments):
    with pytest.raises(CommandError):
        call_command("bench_load", *arguments)
    assert not Case.objects.exists()
