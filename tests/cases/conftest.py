"""Fixtures of the cases tests: one lgg-flair patient's slices (a whole small series)."""

import pytest

from ml.dicomseries import patient_slices

from .series_data import LGG_FLAIR, PATIENT


@pytest.fixture(scope="session")
def lgg_slices():
    if not LGG_FLAIR.is_dir():
        pytest.skip(f"lgg-flair slices not found at {LGG_FLAIR}")
    return patient_slices(LGG_FLAIR, PATIENT)
