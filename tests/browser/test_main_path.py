"""The clinician's main path in headless Chromium: log in, create a case, upload, see the
result appear without reloading, export the CSV, find the patient's cases again."""

import csv
import io
import re

import pytest

from inference.registry import sync_registry
from tests.conftest import model_available, real_mri_images
from tests.factories import CaseFactory

pytestmark = pytest.mark.browser


def test_log_in_create_case_upload_see_result_export_find_patient(
    page, live_server, running_worker, team, owner
):
    has_model, _ = model_available()
    if has_model:
        sync_registry()
    image = real_mri_images(1, classes=("pituitary",))[0]

    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "owner")
    page.fill("#id_password", "correct-horse-battery-staple")
    page.click("button:has-text('Log in')")
    page.wait_for_selector("h1:has-text('Cases')")

    page.click("text=New case")
    page.fill("#id_notes", "browser test")
    page.fill("#id_patient_reference", "MRN 555-01")
    page.click("button:has-text('Create case')")
    pseudonym = page.text_content("#pseudonym").strip()

    page.set_input_files("#upload-files", str(image))
    page.click("#upload-form button[type=submit]")
    # The scans panel refreshes itself from the server-rendered fragment until the scan is done.
    page.wait_for_selector("#scans [data-pending='false'] .scan", timeout=180_000)
    if has_model:
        label = page.text_content("#scans .result .label").strip()
        assert label in {"glioma", "meningioma", "notumor", "pituitary"}
        assert page.locator("#scans .probs tr").count() == 4
    else:
        assert "No model is active for Tumour (MRI) yet" in page.text_content("#scans .rerun .result")
        label = ""

    page.click("nav >> text=Cases")
    with page.expect_download() as download_info:
        page.click("#export-link")
    download = download_info.value
    assert download.suggested_filename.startswith("brainscan-cases-")
    with open(download.path()) as exported:
        rows = list(csv.DictReader(io.StringIO(exported.read())))
    assert [row["pseudonym"] for row in rows] == [pseudonym]
    assert rows[0]["predicted_label"] == label

    # Another patient's case, then "Find patient's cases" with the reference as typed by hand.
    someone_else = CaseFactory(team=team, created_by=owner)
    page.reload()
    assert page.locator(f"text={someone_else.pseudonym}").count() == 1
    page.fill("form[action$='/find-patient/'] input[name=patient_reference]", "mrn 555-01 ")
    page.click('button:has-text("Find patient\'s cases")')
    page.wait_for_selector("text=Showing one patient's cases")
    # Only the keyed hash reaches the address bar.
    assert re.search(r"\?patient=[0-9a-f]{64}$", page.url) and "mrn" not in page.url.lower()
    listed = [cell.strip() for cell in page.locator("table.cases tbody td:first-child").all_text_contents()]
    assert listed == [pseudonym]
