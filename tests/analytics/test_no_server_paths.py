"""No analytics page shows a clinician where anything lives on the server: dataset folders,
model directories, media or repository paths."""

import json
import re
import shutil

import pytest
from django.conf import settings
from django.urls import reverse

from analytics.importer import import_folder, import_reviewed_scans
from analytics.models import DatasetStats
from analytics.stats import compute_dataset_stats
from cases.models import Consent
from tests.conftest import REPO_ROOT
from tests.factories import CaseFactory, ModelVersionFactory, PredictionFactory, ReviewFactory, ScanFactory

pytestmark = pytest.mark.django_db


def server_paths(tmp_path):
    """Every prefix a server path could be shown with."""
    roots = {REPO_ROOT, REPO_ROOT.parent, settings.MEDIA_ROOT, settings.ML_MODELS_ROOT, tmp_path}
    literal = "|".join(re.escape(str(root)) for root in roots)
    return re.compile(rf"{literal}|/work/|/home/|/tmp/|/var/|/srv/|/data/|\.\./shared|[A-Z]:\\\\")


@pytest.fixture
def every_page(small_folder, tmp_path, owner, steward, team):
    done = import_folder(small_folder, "Brain tumour MRI").dataset
    compute_dataset_stats(done.pk)
    vanished = tmp_path / "vanished"
    shutil.copytree(small_folder, vanished, symlinks=True)
    failed = import_folder(vanished, "Vanished").dataset
    shutil.rmtree(vanished)
    with pytest.raises(FileNotFoundError):
        compute_dataset_stats(failed.pk)
    assert str(tmp_path) in DatasetStats.objects.get(dataset=failed).error  # what must not be shown
    reviewed = import_reviewed_scans("Reviewed scans").dataset
    compute_dataset_stats(reviewed.pk)

    card = json.loads(sorted(settings.ML_MODELS_ROOT.glob("brain-tumour/*/model.json"))[-1].read_text())
    version = ModelVersionFactory(name=card["name"], version=card["version"], card=card, is_active=True)
    case = CaseFactory(team=team, created_by=owner)
    Consent.record(case, Consent.Scope.ANALYTICS, Consent.State.GRANTED, steward)
    prediction = PredictionFactory(scan=ScanFactory(case=case), model_version=version)
    ReviewFactory(prediction=prediction, reviewer=owner, label="meningioma")
    return [
        reverse("analytics:index"),
        *(reverse("analytics:dataset", args=[d.pk]) for d in (done, failed, reviewed)),
        reverse("analytics:dataset", args=[done.pk]) + "?a=glioma&b=pituitary",
        reverse("analytics:model", args=[version.pk]),
        reverse("analytics:field"),
    ]


def test_no_analytics_page_shows_a_server_path_to_a_clinician(owner_client, every_page, tmp_path):
    pattern = server_paths(tmp_path)
    for url in every_page:
        response = owner_client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        assert not pattern.findall(page), (url, pattern.findall(page))
    assert (
        "Computing the statistics failed; a data steward can see why"
        in owner_client.get(every_page[2]).content.decode()
    )


def test_the_overview_without_datasets_names_no_folder(owner_client, tmp_path):
    page = owner_client.get(reverse("analytics:index")).content.decode()
    assert "No reference dataset yet" in page
    assert not server_paths(tmp_path).findall(page)


def test_stewards_still_see_the_folder_and_the_error(client_for, steward, every_page, small_folder):
    client = client_for(steward)
    assert str(small_folder.resolve()) in client.get(every_page[1]).content.decode()
    assert "No such file" in client.get(every_page[2]).content.decode()
