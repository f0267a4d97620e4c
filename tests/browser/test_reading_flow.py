"""A clinician's reading session in headless Chromium: worklist, the top case, an upload of ten
real MRI slices with its live count, one confirmation and one correction that leave the reader
where they were, and the worklist showing the case's review state. Each step is a function (the
viewer's steps slot in after open_top_case) and saves a screenshot to test-results/reading-flow/."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from cases.models import Case
from inference.models import Review
from tests.browser.test_main_path import page  # noqa: F401  (the headless Chromium fixture)
from tests.conftest import REPO_ROOT, real_mri_images
from tests.factories import CaseFactory

pytestmark = pytest.mark.browser

SHOTS = REPO_ROOT / "test-results" / "reading-flow"


class Steps:
    """The session's steps, in order; each leaves a numbered screenshot."""

    def __init__(self, tab, base_url):
        self.page, self.base_url, self.shot = tab, base_url, 0
        SHOTS.mkdir(parents=True, exist_ok=True)

    def screenshot(self, name) -> Path:
        self.shot += 1
        path = SHOTS / f"{self.shot:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def log_in(self, username="owner"):
        self.page.goto(f"{self.base_url}/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", "correct-horse-battery-staple")
        self.page.click("button:has-text('Log in')")
        self.page.wait_for_selector("h1:has-text('Cases')")
        self.screenshot("worklist")

    def open_top_case(self) -> int:
        top = self.page.locator("table.worklist tbody tr").first
        case_id = int(top.get_attribute("data-case"))
        top.locator("a").first.click()
        self.page.wait_for_selector("#upload-form")
        self.screenshot("case-page")
        return case_id

    def upload(self, files):
        self.page.set_input_files("#upload-files", [str(f) for f in files])
        self.page.click("#upload-form button[type=submit]")
        self.page.wait_for_selector("#uploads .upload.stored", timeout=60_000)
        self.page.wait_for_selector("#scans .scan")
        self.screenshot("uploaded")

    def watch_live_count(self, total) -> list[str]:
        """The "n of m classified" line, sampled until it reaches m: the counts it showed."""
        status = self.page.locator("#uploads .upload-status").first
        self.page.wait_for_function(
            "total => { const s = document.querySelector('#uploads .upload-status');"
            " window.__counts = window.__counts || []; if (s) window.__counts.push(s.dataset.classified);"
            " return s && Number(s.dataset.classified) === total; }",
            arg=total,
            polling=200,
            timeout=240_000,
        )
        seen = self.page.evaluate("window.__counts")
        assert status.text_content().startswith(f"{total} of {total} classified")
        self.page.wait_for_selector("#scans [data-pending='false']")
        self.screenshot("classified")
        return seen

    def _scroll_to(self, scan_id):
        # Put the scan in the middle of the window, as a reader scrolling down would.
        self.page.evaluate(
            "id => { const s = document.getElementById(id); window.scrollTo(0, s.getBoundingClientRect().top"
            " + window.scrollY - 150); }",
            f"scan-{scan_id}",
        )
        return self.page.evaluate("window.scrollY")

    def _saved(self, scan_id, before):
        self.page.wait_for_selector(f"#scan-{scan_id} .review-status:has-text('Review saved')")
        after = self.page.evaluate("window.scrollY")
        assert abs(after - before) <= 2, f"the page moved from {before} to {after}"
        return self.page.evaluate("document.activeElement.id")

    def confirm(self, scan_id) -> str:
        before = self._scroll_to(scan_id)
        self.page.click(f"#scan-{scan_id} .confirm-form button")
        focused = self._saved(scan_id, before)
        self.screenshot("confirmed")
        return focused

    def confirm_by_key(self, scan_id) -> str:
        """``c`` on the focused scan (j/k brought it to the top of the window)."""
        assert self.page.evaluate("document.activeElement.id") == f"scan-{scan_id}"
        before = self.page.evaluate("window.scrollY")
        self.page.keyboard.press("c")
        focused = self._saved(scan_id, before)
        self.screenshot("confirmed-by-key")
        return focused

    def correct(self, scan_id, label, comment) -> str:
        before = self._scroll_to(scan_id)
        article = self.page.locator(f"#scan-{scan_id}")
        article.locator("summary:has-text('Correct')").click()
        article.get_by_label("Correct label").select_option(label)
        article.get_by_label("Comment").fill(comment)
        self.screenshot("correcting")
        before = self.page.evaluate("window.scrollY")
        article.locator("button:has-text('Save correction')").click()
        focused = self._saved(scan_id, before)
        self.screenshot("corrected")
        return focused

    def back_to_worklist(self):
        self.page.click("nav >> text=Cases")
        self.page.wait_for_selector("table.worklist")
        self.screenshot("worklist-after-review")

    def row_of(self, case_id):
        return self.page.locator(f"table.worklist tr[data-case='{case_id}']")


def test_worklist_upload_live_count_confirm_correct_and_back(
    page,  # noqa: F811
    live_server,
    classifying_worker,
    team,
    owner,
):
    slices = real_mri_images(10)
    # The top of the worklist: an unreviewed case flagged by the AI, older than the others.
    top = CaseFactory(team=team, created_by=owner, flag=Case.Flag.TUMOUR_SUSPECTED)
    Case.objects.filter(pk=top.pk).update(created_at=timezone.now() - timedelta(hours=5))
    CaseFactory(team=team, created_by=owner)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_viewport_size({"width": 1280, "height": 900})
    steps = Steps(page, live_server.url)

    steps.log_in()
    assert steps.open_top_case() == top.pk
    steps.upload(slices)
    counts = steps.watch_live_count(10)
    assert counts and counts[-1] == "10"

    scans = page.locator("#scans .scan[data-reviewable='true']")
    assert scans.count() >= 4, "fewer than four slices were read as brain MRI"
    ids = [int(scans.nth(i).get_attribute("id").split("-")[1]) for i in range(scans.count())]
    confirmed = page.text_content(f"#scan-{ids[0]} .result .label").strip()
    assert steps.confirm(ids[0]) == f"scan-{ids[1]}"  # focus moved to the next unreviewed scan
    labels = ["glioma", "meningioma", "notumor", "pituitary"]
    predicted = page.text_content(f"#scan-{ids[1]} .result .label").strip()
    other = next(label for label in labels if label != predicted)
    assert steps.correct(ids[1], other, "browser test: second opinion") == f"scan-{ids[2]}"
    # Keys: k goes back one scan, j forward again.
    page.keyboard.press("k")
    assert page.evaluate("document.activeElement.id") == f"scan-{ids[1]}"
    page.keyboard.press("j")
    assert page.evaluate("document.activeElement.id") == f"scan-{ids[2]}"
    assert steps.confirm_by_key(ids[2]) == f"scan-{ids[3]}"

    third = page.text_content(f"#scan-{ids[2]} .result .label").strip()
    decisions = sorted(Review.objects.values_list("decision", "label"))
    assert decisions == sorted([("confirmed", confirmed), ("corrected", other), ("confirmed", third)])
    assert "browser test: second opinion" in page.text_content(f"#scan-{ids[1]} .reviews")

    steps.back_to_worklist()
    row = steps.row_of(top.pk)
    assert row.locator(".review-state").get_attribute("data-state") == "some"
    assert f"Some (3/{len(ids)})" in row.text_content()
    assert errors == []
