"""STOW-RS: a PACS pushes a study to POST /dicomweb/studies (cases/dicomweb.py) with a PACS
account's token (role pacs; a person's is refused): it opens a case in the account's team through
the upload path, answers PS3.18 DICOM JSON, and any bad part, limit or failure half-way stores
nothing."""

import pydicom
import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from cases import pacs_import, uploads
from cases.models import AuditEvent, Case, Scan, StudyImport, hash_patient_reference
from cases.roles import pacs_group
from inference.pipeline import check_text
from ml.dicomseries import IDENTIFYING_TAGS, build_multiframe, build_series
from tests.factories import MembershipFactory, TeamFactory, UserFactory

from .receiving import files_since, part10, rows_as_text, source_uids, stored_files, stow_body

pytestmark = pytest.mark.django_db
URL = "/dicomweb/studies"
REFERENCED, FAILED, FAILURE_REASON = "00081199", "00081198", "00081197"
SOP_INSTANCE = "00081155"


@pytest.fixture
def new_files():
    before = stored_files()
    return lambda: files_since(before)


@pytest.fixture
def token(pacs_account):
    return Token.objects.create(user=pacs_account).key


def push(parts, token=None, **overrides):
    body, content_type = stow_body(parts)
    headers = {"HTTP_AUTHORIZATION": f"Token {token}"} if token else {}
    headers["HTTP_ACCEPT"] = "application/dicom+json"
    return Client().post(URL, body, content_type=overrides.pop("content_type", content_type), **headers)


def instances(sequence) -> list[str]:
    return [item[SOP_INSTANCE]["Value"][0] for item in sequence["Value"]]


def test_a_pushed_series_opens_a_case_in_the_accounts_team_with_its_scans_queued(
    token, team, pacs_account, lgg_slices
):
    series = build_series(lgg_slices[:5], identifying=True)

    response = push([part10(ds) for ds in series], token)

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/dicom+json"
    answer = response.json()
    assert instances(answer[REFERENCED]) == [ds.SOPInstanceUID for ds in series]
    assert FAILED not in answer
    [case] = Case.objects.all()
    assert case.team == team and case.created_by == pacs_account
    assert case.patient_ref_hash == hash_patient_reference(IDENTIFYING_TAGS["PatientID"])
    [received] = case.series.all()
    assert received.description == "FLAIR"
    assert [s.series_instance for s in received.slices()] == [item.number for item in lgg_slices[:5]]
    # Queued for the worker, whose first step reads each slice for burned-in text.
    assert {s.status for s in case.scans.all()} == {Scan.Status.CHECKING}
    [record] = StudyImport.objects.all()
    assert (record.source, record.status, record.case, record.scan_count) == ("push", "done", case, 5)
    assert AuditEvent.objects.filter(verb=AuditEvent.Verb.UPLOAD, object_id=str(case.pk)).exists()


def test_a_study_pushed_in_two_requests_lands_in_one_case_and_a_repeat_adds_nothing(token, lgg_slices):
    series = build_series(lgg_slices[:4])

    assert push([part10(ds) for ds in series[:2]], token).status_code == 200
    assert push([part10(ds) for ds in series[2:]], token).status_code == 200
    again = push([part10(ds) for ds in series], token)

    assert again.status_code == 200
    assert instances(again.json()[REFERENCED]) == [ds.SOPInstanceUID for ds in series]
    [case] = Case.objects.all()
    assert case.scans.count() == 4 and case.series.count() == 1


def test_a_pushed_study_keeps_none_of_its_identifiers(token, lgg_slices, new_files):
    series = build_series(lgg_slices[:3], identifying=True)

    assert push([part10(ds) for ds in series], token).status_code == 200

    identifying = [v for v in IDENTIFYING_TAGS.values() if len(v) > 2] + [*source_uids(series)]
    files = new_files()
    assert len(files) == 3
    for path in files:
        content = path.read_bytes()
        assert not [value for value in identifying if value.encode() in content]
        assert pydicom.dcmread(path).PatientSex == ""
    rows = rows_as_text()
    assert not [value for value in identifying if value in rows]


def test_a_bad_part_refuses_the_push_and_stores_nothing(token, team, lgg_slices, new_files):
    series = build_series(lgg_slices[:3])
    truncated = part10(series[1])[:-500]

    response = push([part10(series[0]), truncated, part10(series[2])], token)

    assert response.status_code == 409
    failed = response.json()[FAILED]["Value"]
    assert [item[FAILURE_REASON]["Value"][0] for item in failed] == [0x0110, 0xC000, 0x0110]
    assert "could not be decoded" in failed[1]["00000902"]["Value"][0]
    assert REFERENCED not in response.json()
    assert not Case.objects.exists() and not Scan.objects.exists() and not StudyImport.objects.exists()
    assert not new_files()
    refusal = AuditEvent.objects.get(verb=AuditEvent.Verb.PACS_PUSH_REJECTED)
    assert refusal.detail == {"reason": "invalid_objects", "objects": 3, "refused": 1}
    assert refusal.object_id == str(team.pk)


def test_a_picture_that_is_not_dicom_is_a_refused_part(token, lgg_slices):
    response = push([part10(build_series(lgg_slices[:1])[0]), lgg_slices[0].path.read_bytes()], token)

    assert response.status_code == 409
    assert "not a DICOM" in response.json()[FAILED]["Value"][1]["00000902"]["Value"][0]
    assert not Scan.objects.exists()


def test_a_failure_half_way_through_storing_leaves_no_case_no_scan_and_no_file(
    token, lgg_slices, new_files, monkeypatch
):
    first = build_series(lgg_slices[:2])
    second = build_series(lgg_slices[2:4], salt="another study")
    store = uploads.store_scans
    calls = []

    def fail_on_the_second_study(case, user, images):
        calls.append(case)
        if len(calls) == 2:
            raise OSError("disk full")
        return store(case, user, images)

    monkeypatch.setattr(uploads, "store_scans", fail_on_the_second_study)

    response = push([part10(ds) for ds in first + second], token)

    assert response.status_code == 500 and response.json()["code"] == "server_error"
    assert len(calls) == 2
    assert not Case.objects.exists() and not Scan.objects.exists() and not StudyImport.objects.exists()
    assert not new_files()


def test_two_studies_in_one_push_open_two_cases(token, lgg_slices):
    first = build_series(lgg_slices[:2])
    second = build_series(lgg_slices[2:4], salt="another study")

    assert push([part10(ds) for ds in first + second], token).status_code == 200

    assert Case.objects.count() == 2 and Scan.objects.count() == 4


def test_too_many_slices_is_refused_before_anything_is_read(token, settings, lgg_slices):
    settings.UPLOAD_MAX_SLICES = 2

    response = push([part10(ds) for ds in build_series(lgg_slices[:3])], token)

    assert response.status_code == 413
    reasons = {item[FAILURE_REASON]["Value"][0] for item in response.json()[FAILED]["Value"]}
    assert reasons == {0xA700}
    assert not Scan.objects.exists()


def test_a_body_over_stow_max_bytes_is_413(token, settings, lgg_slices):
    settings.STOW_MAX_BYTES = 10_000

    response = push([part10(ds) for ds in build_series(lgg_slices[:1])], token)

    assert response.status_code == 413
    assert "STOW_MAX_BYTES" in response.json()["detail"]
    assert not Case.objects.exists()


@pytest.mark.parametrize(
    "content_type",
    ["application/dicom", 'multipart/related; type="application/dicom+xml"; boundary=x', "application/json"],
)
def test_another_content_type_is_415(token, lgg_slices, content_type):
    response = push([part10(build_series(lgg_slices[:1])[0])], token, content_type=content_type)

    assert response.status_code == 415
    assert not Case.objects.exists()


def test_a_body_that_is_not_multipart_is_400(token):
    body = b"--x\r\nContent-Type: application/dicom\r\n\r\nDICM"  # no closing boundary
    response = Client().post(
        URL,
        body,
        content_type='multipart/related; type="application/dicom"; boundary=x',
        HTTP_AUTHORIZATION=f"Token {token}",
    )

    assert response.status_code == 400
    assert "closing boundary" in response.json()["detail"]


def test_no_token_is_401_and_a_session_is_not_enough(lgg_slices, owner):
    parts = [part10(build_series(lgg_slices[:1])[0])]

    anonymous = push(parts)
    body, content_type = stow_body(parts)
    session = Client()
    session.force_login(owner)
    signed_in = session.post(URL, body, content_type=content_type)

    assert anonymous.status_code == signed_in.status_code == 401
    assert anonymous["WWW-Authenticate"] == "Token"
    assert not Case.objects.exists()


def test_an_account_in_several_teams_or_none_is_403(pacs_account, token, lgg_slices):
    parts = [part10(build_series(lgg_slices[:1])[0])]
    MembershipFactory(user=pacs_account, team=TeamFactory(name="Neuro B"))
    lonely = UserFactory(username="no-team", password=None)
    lonely.groups.add(pacs_group())

    several = push(parts, token)
    none = push(parts, Token.objects.create(user=lonely).key)

    assert several.status_code == none.status_code == 403
    assert "exactly one team" in several.json()["detail"]
    assert not Case.objects.exists()


def test_a_clinicians_token_is_refused_with_the_role_to_use_stores_nothing_and_is_audited(
    owner, lgg_slices, new_files
):
    parts = [part10(build_series(lgg_slices[:1])[0])]

    response = push(parts, Token.objects.create(user=owner).key)

    assert response.status_code == 403
    refused = response.json()
    assert refused["code"] == "not_pacs_account"
    assert "role 'pacs'" in refused["detail"] and "adduser NAME --role pacs" in refused["detail"]
    assert not Case.objects.exists() and not Scan.objects.exists() and not StudyImport.objects.exists()
    assert new_files() == []
    refusal = AuditEvent.objects.get(verb=AuditEvent.Verb.PACS_PUSH_REJECTED)
    assert refusal.actor == owner and refusal.detail == {"reason": "not_pacs_account"}


def test_a_push_into_a_closed_case_is_refused(token, lgg_slices):
    series = build_series(lgg_slices[:2])
    assert push([part10(series[0])], token).status_code == 200
    case = Case.objects.get()
    case.status = Case.Status.CLOSED
    case.save()

    response = push([part10(series[1])], token)

    assert response.status_code == 409
    failed = response.json()[FAILED]["Value"]
    assert "closed" in failed[0]["00000902"]["Value"][0]
    assert case.scans.count() == 1


def test_a_push_that_takes_longer_than_the_upload_budget_is_503_and_stores_nothing(
    token, settings, lgg_slices, monkeypatch
):
    settings.UPLOAD_MAX_SECONDS = 20
    clock = iter(range(0, 1000, 15))  # each reading of the clock: 15 s later
    monkeypatch.setattr(pacs_import, "monotonic", lambda: next(clock))

    response = push([part10(ds) for ds in build_series(lgg_slices[:3])], token)

    assert response.status_code == 503 and response["Retry-After"] == "60"
    failed = response.json()[FAILED]["Value"]
    assert {item[FAILURE_REASON]["Value"][0] for item in failed} == {0xA700}
    assert "too busy" in failed[0]["00000902"]["Value"][0]
    assert not Case.objects.exists() and not Scan.objects.exists()


def test_a_slice_that_declares_burned_in_text_is_held_for_a_steward(token, lgg_slices):
    series = build_series(lgg_slices[:2])
    series[1].BurnedInAnnotation = "YES"

    assert push([part10(ds) for ds in series], token).status_code == 200

    # Stored for the worker's text check, which holds the slice unread on its header's word.
    assert set(Scan.objects.values_list("status", flat=True)) == {Scan.Status.CHECKING}
    for scan in Scan.objects.all():
        check_text(scan.pk)
    statuses = dict(Scan.objects.values_list("series_instance", "status"))
    assert statuses == {lgg_slices[0].number: Scan.Status.QUEUED, lgg_slices[1].number: Scan.Status.HELD}
    assert Scan.objects.get(status=Scan.Status.HELD).hold_reason


def test_a_multi_frame_object_arrives_as_one_scan_per_frame(token, lgg_slices):
    multiframe = build_multiframe(lgg_slices[:4])

    response = push([part10(multiframe)], token)

    assert response.status_code == 200
    assert instances(response.json()[REFERENCED]) == [multiframe.SOPInstanceUID]
    [case] = Case.objects.all()
    assert case.scans.count() == 4 and case.series.count() == 1


def test_a_content_length_that_is_no_number_is_refused_not_a_500(token):
    body, content_type = stow_body([b"x"])
    response = Client().post(
        URL, body, content_type=content_type, HTTP_AUTHORIZATION=f"Token {token}", CONTENT_LENGTH="\u00b2"
    )
    assert response.status_code == 400
    assert not StudyImport.objects.exists()
