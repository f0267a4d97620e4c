"""A clinician's reading session in headless Chromium, issue 18's done-when walk: log in, the
worklist, the top case, an upload of ten real MRI slices with its live count, the viewer (zoom,
pan, window, overlay) and back, one confirmation and one correction that leave the reader where
they were, the rest confirmed, and the worklist showing the case reviewed. Each step is a function
(the viewer's come from tests/browser/viewer_steps.py) and saves a screenshot to
test-results/reading-flow/ (not committed)."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from cases.models import Case
from inference.models import Review
from tests.browser import viewer_steps
from tests.conftest import REPO_ROOT, real_mri_images
from tests.factories import CaseFactory

pytestmark = pytest.mark.browser

SHOTS = REPO_ROOT / "test-results" / "reading-flow"
# Resolves once every image has loaded (or failed): a promise, not a polled predicate, which the
# page's Content-Security-Policy (no 'unsafe-eval') may refuse to compile.
ALL_IMAGES_LOADED = """() => Promise.all([...document.images].filter(i => !i.complete).map(
  i => new Promise(r => {
    i.addEventListener("load", r, {once: true});
    i.addEventListener("error", r, {once: true});
  })
))"""


class Steps:
    """The session's steps, in order; each leaves a numbered screenshot."""

    def __init__(self, tab, base_url):
        self.page, self.base_url, self.shot = tab, base_url, 0
        SHOTS.mkdir(parents=True, exist_ok=True)

    def screenshot(self, name, full_page=True, height=None) -> Path:
        """A numbered shot: the whole page, the window only, or the page's top ``height`` pixels
        (docs/screenshots/case-page.png is one of those)."""
        self.shot += 1
        path = SHOTS / f"{self.shot:02d}-{name}.png"
        if full_page:
            # A full-page shot shows what a reader scrolling down would see: the thumbnails below
            # the window, lazy until then, are loaded first (the window's position is untouched).
            self.page.evaluate(
                "document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager')"
            )
            self.page.evaluate(ALL_IMAGES_LOADED)
        clip = (
            {"x": 0, "y": 0, "width": self.page.viewport_size["width"], "height": height} if height else None
        )
        self.page.screenshot(path=str(path), full_page=full_page, clip=clip)
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

    def open_viewer(self, scan_id) -> dict:
        self.page.click(f"#scan-{scan_id} a.open-viewer")
        state = viewer_steps.viewer_ready(self.page)
        self.screenshot("viewer", full_page=False)
        return state

    def read_in_viewer(self) -> dict:
        """Zoom (button, wheel), pan, window (sliders) and the overlay off and on, as observed."""
        tab, seen = self.page, {}
        seen["zoom"] = viewer_steps.zoom_with_button(tab) + viewer_steps.zoom_with_wheel(tab)
        self.screenshot("viewer-zoomed", full_page=False)
        seen["pan"] = viewer_steps.pan_by_drag(tab, 100, 60)
        self.screenshot("viewer-panned", full_page=False)
        seen["window"] = viewer_steps.set_window(tab, 100, 120)
        self.screenshot("viewer-windowed", full_page=False)
        seen["overlay off"] = viewer_steps.press(tab, "o")["overlay"]
        self.screenshot("viewer-overlay-hidden", full_page=False)
        seen["overlay on"] = viewer_steps.press(tab, "o")["overlay"]
        return seen

    def back_to_case(self, scan_id):
        with self.page.expect_navigation():
            self.page.keyboard.press("Escape")
        self.page.wait_for_selector(f"#scan-{scan_id}")
        self.screenshot("back-on-case-page")
        return self.page.url

    def _scroll_to(self, scan_id):
        # Put the scan in the middle of the window, as a reader scrolling down would.
        self.page.evaluate(
            "id => { const s = document.getElementById(id); window.scrollTo(0, s.getBoundingClientRect().top"
            " + window.scrollY - 150); }",
            f"scan-{scan_id}",
        )
        return self.page.evaluate("window.scrollY")

    def _top_of(self, scan_id):
        return self.page.evaluate(
            "id => document.getElementById(id).getBoundingClientRect().top", f"scan-{scan_id}"
        )

    def _saved(self, scan_id, before, top=None):
        """Wait for the save; the reader's place is kept: the window did not scroll, or (``top``
        given) the scan stayed where it was in the window (the page scrolls by what grew above it,
        as the flag line does once every scan is reviewed). The id of the focused element."""
        self.page.wait_for_selector(f"#scan-{scan_id} .review-status:has-text('Review saved')")
        if top is None:
            after = self.page.evaluate("window.scrollY")
            assert abs(after - before) <= 2, f"the page moved from {before} to {after}"
        else:
            moved = self._top_of(scan_id)
            assert abs(moved - top) <= 2, f"scan {scan_id} moved from {top} to {moved} in the window"
        return self.page.evaluate("document.activeElement.id")

    def confirm(self, scan_id) -> str:
        before = self._scroll_to(scan_id)
        self.page.click(f"#scan-{scan_id} .confirm-form button")
        focused = self._saved(scan_id, before)
        self.screenshot("confirmed")
        return focused

    def confirm_in_place(self, scan_id) -> str:
        """Confirm without a screenshot; the scan keeps its place in the window."""
        before = self._scroll_to(scan_id)
        top = self._top_of(scan_id)
        self.page.click(f"#scan-{scan_id} .confirm-form button")
        return self._saved(scan_id, before, top=top)

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

    def back_to_worklist(self, name="worklist-after-review"):
        self.page.click("nav >> text=Cases")
        self.page.wait_for_selector("table.worklist")
        self.screenshot(name)

    def row_of(self, case_id):
        return self.page.locator(f"table.worklist tr[data-case='{case_id}']")


def test_worklist_upload_live_count_confirm_correct_and_back(
    page,
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

    # The viewer, from the first scan's thumbnail, and back to that scan with Escape.
    opened = steps.open_viewer(ids[0])
    assert page.url.endswith(f"/cases/scans/{ids[0]}/viewer/") and opened["overlay"] == "true"
    seen = steps.read_in_viewer()
    button_before, button_after, wheel_before, wheel_after = seen["zoom"]
    assert button_after > button_before and wheel_after > wheel_before
    (x0, y0), (x1, y1) = seen["pan"]
    assert (x1 - x0, y1 - y0) == (pytest.approx(100, abs=2), pytest.approx(60, abs=2))
    assert (seen["window"]["center"], seen["window"]["windowWidth"]) == ("100", "120")
    assert (seen["overlay off"], seen["overlay on"]) == ("false", "true")
    assert steps.back_to_case(ids[0]).endswith(f"/cases/{top.pk}/#scan-{ids[0]}")
    confirmed = page.text_content(f"#scan-{ids[0]} .result .label").strip()
    assert steps.confirm(ids[0]) == f"scan-{ids[1]}"  # focus moved to the next unreviewed scan
    labels = ["glioma", "meningioma", "notumor", "pituitary"]
    predicted = page.text_content(f"#scan-{ids[1]} .result .label").strip()
    other = next(label for label in labels if label != predicted)
    assert steps.correct(ids[1], other, "browser test: second opinion") == f"scan-{ids[2]}"
    steps.screenshot("case-page-top", height=1700)
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

    steps.back_to_worklist("worklist-some-reviewed")
    row = steps.row_of(top.pk)
    assert row.locator(".review-state").get_attribute("data-state") == "some"
    assert f"Some (3/{len(ids)})" in row.text_content()

    # The rest confirmed: the worklist shows the case reviewed, with the clinicians' verdict.
    row.locator("a").first.click()
    page.wait_for_selector("#scans .scan")
    for position, scan_id in enumerate(ids[3:], start=3):
        following = f"scan-{ids[position + 1]}" if position + 1 < len(ids) else None
        focused = steps.confirm_in_place(scan_id)
        assert following is None or focused == following
    steps.screenshot("all-reviewed")
    steps.back_to_worklist()
    row = steps.row_of(top.pk)
    assert row.locator(".review-state").get_attribute("data-state") == "all"
    assert row.locator(".verdict").text_content().startswith("Reviewed: ")
    assert Review.objects.count() == len(ids)
    assert errors == []
