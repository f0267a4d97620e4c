"""A disposable Orthanc per test, a client for it, and one lgg-flair patient's slices."""

import pytest

from cases.pacs import Pacs, PacsConfig
from ml.dicomseries import patient_slices
from tests.conftest import SHARED_DATASETS
from tests.services import OrthancServer, orthanc_missing

LGG_FLAIR = SHARED_DATASETS / "lgg-flair"
# 20 slices, 6 of them with tumour: a whole small volume.
PATIENT = "TCGA_CS_4942"


@pytest.fixture(scope="session")
def lgg_slices():
    if not LGG_FLAIR.is_dir():
        pytest.skip(f"lgg-flair slices not found at {LGG_FLAIR}")
    return patient_slices(LGG_FLAIR, PATIENT)


@pytest.fixture
def orthanc(tmp_path):
    missing = orthanc_missing()
    if missing:
        pytest.skip(missing)
    server = OrthancServer(tmp_path)
    server.start()
    yield server
    server.stop()


def client_for(orthanc, *, timeout=5.0, password=None) -> Pacs:
    return Pacs(
        PacsConfig(
            url=orthanc.dicomweb_url,
            user=orthanc.user,
            password=orthanc.password if password is None else password,
            timeout=timeout,
        )
    )


@pytest.fixture
def pacs(orthanc):
    return client_for(orthanc)
