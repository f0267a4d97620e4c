"""cases/pacs.py against a real Orthanc: STOW, QIDO and WADO round trip, and every way the PACS
can fail (down, hung, wrong credentials) as a PacsUnavailable that says which, in bounded time."""

import logging
import time

import numpy as np
import pytest

from cases.pacs import Pacs, PacsConfig, PacsUnavailable, with_retries
from ml.dicomseries import IDENTIFYING_TAGS, build_series

from .conftest import client_for


def test_a_stored_series_is_found_and_comes_back_pixel_identical(pacs, lgg_slices):
    series = build_series(lgg_slices)
    study_uid, series_uid = series[0].StudyInstanceUID, series[0].SeriesInstanceUID

    stored = pacs.store(series)

    assert sorted(stored) == sorted(ds.SOPInstanceUID for ds in series)
    study = pacs.find_study(study_uid)
    assert study["0020000D"]["Value"] == [study_uid]
    assert study["00201208"]["Value"] == [len(series)]  # NumberOfStudyRelatedInstances
    [found] = pacs.find_series(study_uid)
    assert found["0008103E"]["Value"] == ["FLAIR"]
    fetched = {ds.SOPInstanceUID: ds for ds in pacs.fetch_series(study_uid, series_uid)}
    assert len(fetched) == len(series)
    for sent in series:
        back = fetched[sent.SOPInstanceUID]
        assert back.InstanceNumber == sent.InstanceNumber
        assert back.ImagePositionPatient == sent.ImagePositionPatient
        assert np.array_equal(back.pixel_array, sent.pixel_array)
        assert back.PixelData == sent.PixelData


def test_an_unknown_study_is_none_not_an_error(pacs):
    assert pacs.find_study("1.2.826.0.1.3680043.8.498.999") is None
    assert pacs.find_series("1.2.826.0.1.3680043.8.498.999") == []


def test_a_pacs_that_is_down_is_refused_at_once(orthanc):
    pacs = client_for(orthanc, timeout=10)
    orthanc.stop()

    started = time.monotonic()
    with pytest.raises(PacsUnavailable) as raised:
        pacs.find_study("1.2.3")

    assert time.monotonic() - started < 2
    assert raised.value.reason == PacsUnavailable.REFUSED
    assert raised.value.transient
    assert f"127.0.0.1:{orthanc.port}" in str(raised.value)


def test_a_hung_pacs_times_out_within_the_timeout(orthanc, lgg_slices):
    pacs = client_for(orthanc, timeout=1.5)
    orthanc.freeze()
    try:
        for call in (lambda: pacs.find_study("1.2.3"), lambda: pacs.store(build_series(lgg_slices[:2]))):
            started = time.monotonic()
            with pytest.raises(PacsUnavailable) as raised:
                call()
            assert 1.4 < time.monotonic() - started < 5
            assert raised.value.reason == PacsUnavailable.TIMEOUT
            assert "1.5 s" in str(raised.value)
    finally:
        orthanc.thaw()


def test_wrong_credentials_are_an_auth_error_and_not_retried(orthanc):
    pacs = client_for(orthanc, password="not-the-password")
    waits = []

    with pytest.raises(PacsUnavailable) as raised:
        with_retries(lambda: pacs.find_study("1.2.3"), sleep=waits.append)

    assert raised.value.reason == PacsUnavailable.AUTH
    assert raised.value.status == 401
    assert not raised.value.transient
    assert waits == []


def test_a_study_sent_while_the_pacs_is_down_arrives_when_it_is_back(orthanc, lgg_slices):
    pacs = client_for(orthanc)
    series = build_series(lgg_slices[:3])
    orthanc.stop()
    waits = []

    def wait_then_recover(seconds):
        waits.append(seconds)
        if len(waits) == 2:
            orthanc.start()  # same port: the PACS is back

    stored = with_retries(lambda: pacs.store(series), attempts=4, backoff_s=0.01, sleep=wait_then_recover)

    assert len(waits) == 2
    assert waits[1] > waits[0] * 0.9  # backing off, not hammering (jitter halves at most)
    assert sorted(stored) == sorted(ds.SOPInstanceUID for ds in series)


def test_retries_give_up_after_the_last_attempt_with_the_reason(orthanc):
    pacs = client_for(orthanc)
    orthanc.stop()
    waits = []

    with pytest.raises(PacsUnavailable) as raised:
        with_retries(lambda: pacs.find_study("1.2.3"), attempts=3, backoff_s=1, sleep=waits.append)

    assert raised.value.reason == PacsUnavailable.REFUSED
    assert len(waits) == 2
    assert 0.5 <= waits[0] <= 1 and 1 <= waits[1] <= 2


def test_no_pacs_url_means_no_pacs(settings):
    settings.PACS_URL = ""

    with pytest.raises(PacsUnavailable) as raised:
        PacsConfig.from_settings()

    assert raised.value.reason == PacsUnavailable.NOT_CONFIGURED
    assert not raised.value.transient


def test_the_settings_configure_the_client(settings):
    settings.PACS_URL, settings.PACS_USER, settings.PACS_PASSWORD = "http://127.0.0.1:1/dicom-web", "u", "p"
    settings.PACS_TOKEN, settings.PACS_TIMEOUT = None, 7

    assert PacsConfig.from_settings() == PacsConfig("http://127.0.0.1:1/dicom-web", "u", "p", "", 7)


def test_an_identifying_study_reaches_the_pacs_with_its_identifiers(pacs, lgg_slices):
    # What the receiving side will be tested against: the PACS holds names, BrainScan must not.
    series = build_series(lgg_slices[:2], identifying=True)
    pacs.store(series)

    study = pacs.find_study(series[0].StudyInstanceUID)

    assert study["00100010"]["Value"] == [{"Alphabetic": IDENTIFYING_TAGS["PatientName"]}]
    assert study["00080050"]["Value"] == [IDENTIFYING_TAGS["AccessionNumber"]]
    [fetched, _] = sorted(
        pacs.fetch_series(series[0].StudyInstanceUID, series[0].SeriesInstanceUID),
        key=lambda ds: ds.InstanceNumber,
    )
    assert fetched.InstitutionName == IDENTIFYING_TAGS["InstitutionName"]


def test_the_pacs_traffic_logs_no_uid(pacs, lgg_slices, caplog):
    caplog.set_level(logging.DEBUG)
    series = build_series(lgg_slices[:2], identifying=True)
    study_uid, series_uid = series[0].StudyInstanceUID, series[0].SeriesInstanceUID

    pacs.store(series)
    pacs.find_study(study_uid)
    pacs.fetch_series(study_uid, series_uid)

    assert study_uid not in caplog.text and series_uid not in caplog.text


@pytest.mark.parametrize("broken", ["ChunkedEncodingError", "ContentDecodingError"])
def test_a_transfer_broken_half_way_is_transient_and_names_no_uid(settings, broken):
    # The PACS (or a proxy) dropped the connection while a series streamed in: worth trying again,
    # and the reason, kept on the pull and shown to users, says what failed in our words only.
    import requests

    pacs = Pacs(PacsConfig("http://127.0.0.1:1/dicom-web", "u", "p", "", 5))
    uid = "1.2.840.113619.2.55.3.604688119.971.1"

    def drops(**kwargs):
        raise getattr(requests.exceptions, broken)(
            f"Connection broken for {uid}: IncompleteRead(1024 bytes read)"
        )

    with pytest.raises(PacsUnavailable) as raised:
        pacs._call("fetch the series", drops, study_instance_uid=uid)

    assert raised.value.transient and raised.value.reason == PacsUnavailable.BROKEN
    assert "fetch the series" in str(raised.value) and uid not in str(raised.value)
