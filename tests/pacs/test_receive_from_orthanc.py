"""Orthanc itself pushes a study to BrainScan: its DICOMweb plugin has BrainScan (a live server)
as a STOW-RS server, with its PACS account's token; the study arrives in a case."""

import pytest
import requests
from rest_framework.authtoken.models import Token

from cases.models import Case, Scan
from ml.dicomseries import build_series
from tests.services import OrthancServer, orthanc_missing

from .conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def orthanc_to_brainscan(tmp_path, live_server, pacs_account):
    missing = orthanc_missing()
    if missing:
        pytest.skip(missing)
    server = OrthancServer(tmp_path)
    server.dicomweb_servers["brainscan"] = {
        "Url": f"{live_server.url}/dicomweb/",
        "HttpHeaders": {"Authorization": f"Token {Token.objects.create(user=pacs_account).key}"},
        # The test server reads a request body by its Content-Length only.
        "ChunkedTransfers": False,
    }
    server.start()
    yield server
    server.stop()


def send(orthanc, study_uid):
    auth = (orthanc.user, orthanc.password)
    [found] = requests.post(f"{orthanc.url}/tools/lookup", data=study_uid, auth=auth, timeout=10).json()
    return requests.post(
        f"{orthanc.dicomweb_url}/servers/brainscan/stow",
        json={"Resources": [found["ID"]]},
        auth=auth,
        timeout=60,
    )


def test_orthanc_pushes_a_study_and_it_arrives_in_a_case(orthanc_to_brainscan, lgg_slices, team):
    series = build_series(lgg_slices[:4], identifying=True)
    client_for(orthanc_to_brainscan).store(series)

    answer = send(orthanc_to_brainscan, series[0].StudyInstanceUID)

    assert answer.status_code == 200, answer.text
    [case] = Case.objects.all()
    assert case.team == team
    assert sorted(case.scans.values_list("series_instance", flat=True)) == [s.number for s in lgg_slices[:4]]
    assert set(case.scans.values_list("status", flat=True)) == {Scan.Status.CHECKING}
