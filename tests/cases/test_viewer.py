"""The scan viewer page (cases.viewer): access, audit, stepping through the case, overlay, DICOM
attributes and window presets."""

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from cases.models import AuditEvent, Scan
from tests.factories import PredictionFactory, ScanFactory, png_bytes

pytestmark = pytest.mark.django_db


def viewer_url(scan):
    return reverse("cases:viewer", args=[scan.pk])


@pytest.fixture
def scans(case):
    return [ScanFactory(case=case, status=Scan.Status.DONE) for _ in range(3)]


def test_owner_sees_the_scan_on_a_canvas_with_its_image_url(owner_client, scans):
    response = owner_client.get(viewer_url(scans[0]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="viewer-canvas"' in html
    assert f'data-image-url="{reverse("cases:scan_image", args=[scans[0].pk])}"' in html
    assert "js/viewer.js" in html and "css/viewer.css" in html


def test_teammate_may_view_too(client_for, teammate, scans):
    assert client_for(teammate).get(viewer_url(scans[0])).status_code == 200


def test_outsider_gets_404(client_for, outsider, scans):
    assert client_for(outsider).get(viewer_url(scans[0])).status_code == 404


def test_anonymous_is_sent_to_log_in(client, scans):
    response = client.get(viewer_url(scans[0]))
    assert response.status_code == 302 and "login" in response["Location"]


def test_retracted_scan_is_404(owner_client, scans):
    Scan.objects.filter(pk=scans[1].pk).update(retracted_at=timezone.now())
    assert owner_client.get(viewer_url(scans[1])).status_code == 404


def test_viewing_is_audited_as_a_case_view_of_that_scan(owner_client, owner, case, scans):
    owner_client.get(viewer_url(scans[1]))
    event = AuditEvent.objects.filter(verb=AuditEvent.Verb.CASE_VIEW).latest("id")
    assert event.actor == owner
    assert event.object_id == str(case.pk)
    assert event.detail["scan"] == scans[1].pk


def test_previous_and_next_follow_the_case_order_skipping_retracted(owner_client, case, scans):
    Scan.objects.filter(pk=scans[1].pk).update(retracted_at=timezone.now())
    first = owner_client.get(viewer_url(scans[0])).content.decode()
    assert f'data-next-url="{viewer_url(scans[2])}"' in first
    assert "data-previous-url" not in first and 'id="viewer-prev"' not in first
    last = owner_client.get(viewer_url(scans[2])).content.decode()
    assert f'data-previous-url="{viewer_url(scans[0])}"' in last
    assert "data-next-url" not in last
    assert "(2 of 2)" in last
    assert f'data-case-url="{reverse("cases:detail", args=[case.pk])}#scan-{scans[2].pk}"' in last


@pytest.mark.parametrize("status", [Scan.Status.CHECKING, Scan.Status.HELD])
def test_previous_and_next_skip_a_scan_whose_pixels_are_hidden_from_a_clinician(
    client_for, owner_client, steward, scans, status
):
    # Stepping onto it would be a 404 in the middle of the series; a steward steps onto it.
    Scan.objects.filter(pk=scans[1].pk).update(status=status)
    first = owner_client.get(viewer_url(scans[0])).content.decode()
    assert f'data-next-url="{viewer_url(scans[2])}"' in first and "(1 of 2)" in first
    assert owner_client.get(viewer_url(scans[1])).status_code == 404
    by_steward = client_for(steward).get(viewer_url(scans[0])).content.decode()
    assert f'data-next-url="{viewer_url(scans[1])}"' in by_steward


def test_overlay_is_offered_only_with_an_explanation(owner_client, case):
    plain = PredictionFactory(scan__case=case)
    explained = PredictionFactory(scan__case=case)
    explained.explanation.save("heat.png", ContentFile(png_bytes(mode="RGBA", colour=(250, 0, 0, 128))))
    html = owner_client.get(viewer_url(explained.scan)).content.decode()
    assert f'data-overlay-url="{reverse("cases:explanation_image", args=[explained.pk])}"' in html
    assert "low</span><span>→ high model attention" in html
    html = owner_client.get(viewer_url(plain.scan)).content.decode()
    assert "data-overlay-url" not in html and 'id="overlay-toggle"' not in html
    assert "glioma" in html  # the result beside the image


def test_dicom_scan_shows_its_attributes_and_opens_at_its_own_window(owner_client, case):
    scan = ScanFactory(
        case=case,
        modality=Scan.Modality.DICOM,
        acquisition={
            "attributes": {
                "Modality": "MR",
                "ScanningSequence": "SE",
                "RepetitionTime": "5000",
                "EchoTime": "93.5",
                "SeriesDescription": "stored by an old bug",
                "ProtocolName": "Quarrington protocol",
            },
            "window": {"center": "1100", "width": "1800", "preview_center": 142.5, "preview_width": 284.9},
        },
    )
    html = owner_client.get(viewer_url(scan)).content.decode()
    assert "<dt>TE (ms)</dt><dd>93.5</dd>" in html
    assert "<dt>Modality</dt><dd>MR</dd>" in html
    assert "<dt>Weighting (estimated from TR/TE/TI)</dt><dd>T2</dd>" in html
    # Only allow-listed keys are ever shown, whatever a row holds, and a description only when clean.
    assert "stored by an old bug" not in html and "Quarrington" not in html
    first_preset = html.index('class="wl-preset"')
    assert html.index('data-preset="dicom"', first_preset) < html.index('data-preset="default"')
    assert 'data-center="142.5" data-width="284.9" aria-pressed="true"' in html
    assert 'id="wl-center" min="0" max="255" step="0.5" value="142.5"' in html


def test_dicom_scan_shows_its_clean_series_description_before_the_estimate(owner_client, case):
    attributes = {"Modality": "MR", "SeriesDescription": "AX T2 FLAIR", "ScanningSequence": "SE"}
    attributes |= {"RepetitionTime": "5000", "EchoTime": "93.5"}
    scan = ScanFactory(case=case, modality=Scan.Modality.DICOM, acquisition={"attributes": attributes})
    html = owner_client.get(viewer_url(scan)).content.decode()
    assert '<span class="series-description">AX T2 FLAIR</span>' in html
    described = html.index("<dt>Series description</dt><dd>AX T2 FLAIR</dd>")
    assert html.index("<dt>Modality</dt>") < described < html.index("<dt>Weighting (estimated")


def test_image_scan_opens_at_the_default_preset(owner_client, scans):
    html = owner_client.get(viewer_url(scans[0])).content.decode()
    assert 'data-preset="dicom"' not in html
    assert 'data-preset="default" data-center="127.5" data-width="255" aria-pressed="true"' in html


def test_erased_scan_says_so_without_a_canvas(owner_client, scans):
    Scan.objects.filter(pk=scans[0].pk).update(image="", erased_at=timezone.now())
    response = owner_client.get(viewer_url(scans[0]))
    assert response.status_code == 200
    assert "image was erased" in response.content.decode()
    assert "viewer-canvas" not in response.content.decode()


def test_the_case_page_links_each_scan_to_the_viewer(owner_client, case, scans):
    html = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    for scan in scans:
        assert f'href="{viewer_url(scan)}"' in html


def test_case_page_thumbnails_load_lazily_at_their_final_size(owner_client, case):
    scan = ScanFactory(case=case, width=512, height=640)
    html = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    thumbnail = f'src="{reverse("cases:scan_image", args=[scan.pk])}" alt="Scan {scan.pk}"'
    assert f'{thumbnail} width="240" height="300" loading="lazy"' in html
