"""Retracting a wrong upload and closing the case, in headless Chromium: the confirmation page,
the scan leaving the case page, and a closed case's page (no upload form) whose script still runs."""

import pytest
from django.core.files.base import ContentFile

from cases.models import Scan
from tests.factories import PredictionFactory, ScanFactory, png_bytes

pytestmark = pytest.mark.browser


def test_retract_a_wrong_upload_then_close_the_case(page, live_server, owner, case):
    kept = PredictionFactory(scan=ScanFactory(case=case, status=Scan.Status.DONE, outcome="classified"))
    wrong = PredictionFactory(scan=ScanFactory(case=case, status=Scan.Status.DONE, outcome="classified"))
    kept.explanation.save("heat.png", ContentFile(png_bytes(colour=200)))
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "owner")
    page.fill("#id_password", "correct-horse-battery-staple")
    page.click("button:has-text('Log in')")
    page.goto(f"{live_server.url}/cases/{case.pk}/")

    page.click(f"#scan-{wrong.scan_id} a.retract")
    page.wait_for_selector("text=This cannot be undone.")
    page.click(f"button:has-text('Retract scan {wrong.scan_id}')")
    # The browser's own check: a reason is required before anything is sent.
    assert page.url.endswith(f"/cases/scans/{wrong.scan_id}/retract/")
    page.fill("#id_reason", "wrong patient's slice")
    page.click(f"button:has-text('Retract scan {wrong.scan_id}')")
    page.wait_for_selector(f"text=Scan {wrong.scan_id} retracted")
    assert page.locator(f"#scan-{wrong.scan_id}").count() == 0
    assert page.locator(f"#scan-{kept.scan_id}").count() == 1
    assert Scan.objects.get(pk=wrong.scan_id).retracted_by == owner

    page.select_option("#id_status", "closed")
    page.click("form[action$='/edit/'] button[type=submit]")
    page.wait_for_selector("#case-closed")
    assert page.locator("#upload-form").count() == 0
    assert page.locator(f"#scan-{kept.scan_id} a.retract").count() == 0
    # The page's script still runs without an upload form: the overlay slider moves the heatmap.
    page.reload()
    page.wait_for_selector("#case-closed")
    page.locator(f"#scan-{kept.scan_id} .heatmap-opacity").fill("20")
    opacity = page.locator(f"#scan-{kept.scan_id} .heatmap").evaluate("img => img.style.opacity")
    assert opacity == "0.2"
    assert errors == []
