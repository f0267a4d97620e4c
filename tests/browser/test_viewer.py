"""The scan viewer in headless Chromium: zoom (button, wheel, pinch), pan (drag), window/level
(sliders, preset, Shift-drag), invert, the explanation overlay (key o), the next scan by keyboard,
back to the case; a DICOM slice at its own window with its acquisition attributes. The steps live in
tests/browser/viewer_steps.py; each saves a screenshot under test-results/viewer/.
"""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from cases.models import Scan
from cases.uploads import clean_upload, store_scans
from inference import pipeline
from tests.browser.test_csp import RECORD_VIOLATIONS
from tests.browser.viewer_steps import (
    canvas_fingerprint,
    choose_preset,
    classified_scans,
    log_in,
    next_scan_by_keyboard,
    open_viewer,
    pan_by_drag,
    pinch_zoom,
    press,
    set_window,
    settled,
    shot,
    toggle_invert,
    window_by_drag,
    zoom_with_button,
    zoom_with_wheel,
)
from tests.conftest import real_mri_images
from tests.dicom_files import IDENTIFYING, mri_dicom

pytestmark = pytest.mark.browser


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 900}, has_touch=True)
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    page.set_default_timeout(20_000)
    return page


def test_read_a_scan_in_the_viewer(page, live_server, case, owner):
    first, second = classified_scans(case)
    log_in(page, live_server.url)

    state = open_viewer(page, live_server.url, first.pk)
    assert state["overlay"] == "true" and state["center"] == "127.5" and state["windowWidth"] == "255"
    fitted = float(state["zoom"])
    # Fit: the whole scan is in view and fills the stage's height or width.
    stage = page.locator("#viewer").bounding_box()
    assert min(first.width * fitted / stage["width"], first.height * fitted / stage["height"]) <= 1.001
    assert max(first.width * fitted / stage["width"], first.height * fitted / stage["height"]) > 0.98
    shot(page, "01-opened")
    pixels = canvas_fingerprint(page)

    before, after = zoom_with_button(page)
    assert after == pytest.approx(before * 1.25, rel=0.01)
    shot(page, "02-zoom-button")
    before, after = zoom_with_wheel(page)
    assert after > before * 1.3
    assert canvas_fingerprint(page) != pixels
    shot(page, "03-zoom-wheel")

    before, after = pinch_zoom(page)
    assert after > before * 1.5  # fingers 40 px apart, then 160: about four times
    shot(page, "03b-pinch")

    before, after = pan_by_drag(page, 120, 80)
    assert after[0] == pytest.approx(before[0] + 120, abs=2)
    assert after[1] == pytest.approx(before[1] + 80, abs=2)
    shot(page, "04-pan")

    press(page, "f")  # back to the whole scan for the window/level steps
    plain = canvas_fingerprint(page)
    state = set_window(page, 90, 60)
    assert (state["center"], state["windowWidth"]) == ("90", "60")
    narrow = canvas_fingerprint(page)
    assert narrow["hash"] != plain["hash"]
    shot(page, "05-window-sliders")
    state = choose_preset(page, "contrast")
    assert (state["center"], state["windowWidth"]) == ("128", "80")
    assert page.get_attribute(".wl-preset[data-preset=contrast]", "aria-pressed") == "true"
    assert canvas_fingerprint(page)["hash"] not in (plain["hash"], narrow["hash"])
    shot(page, "06-preset-contrast")
    state = choose_preset(page, "default")
    state = window_by_drag(page, 40, 30)
    assert float(state["windowWidth"]) == pytest.approx(255 + 40, abs=1)
    assert float(state["center"]) == pytest.approx(127.5 - 30, abs=1)
    assert (
        float(state["zoom"]) == pytest.approx(fitted)
        and page.get_attribute(".wl-preset[data-preset=default]", "aria-pressed") == "false"
    )
    shot(page, "07-window-drag")
    choose_preset(page, "default")

    dark = canvas_fingerprint(page)
    state = toggle_invert(page)
    assert state["invert"] == "true"
    # Mostly black background turns mostly white.
    assert canvas_fingerprint(page)["mean"] > dark["mean"] + 60
    shot(page, "08-inverted")
    toggle_invert(page)

    with_overlay = canvas_fingerprint(page)
    state = press(page, "o")
    assert state["overlay"] == "false"
    assert page.text_content("#overlay-toggle") == "Overlay hidden"
    without = canvas_fingerprint(page)
    assert without["hash"] != with_overlay["hash"]
    shot(page, "09-overlay-hidden")
    assert press(page, "o")["overlay"] == "true"
    page.fill("#overlay-opacity", "100")
    settled(page)
    assert canvas_fingerprint(page)["hash"] != with_overlay["hash"]
    shot(page, "10-overlay-opaque")

    assert page.evaluate("window.__csp") == []  # nothing refused by the Content-Security-Policy
    url = next_scan_by_keyboard(page)
    assert url.endswith(f"/cases/scans/{second.pk}/viewer/")
    assert "(2 of 2)" in page.text_content("h1")
    shot(page, "11-next-scan")

    with page.expect_navigation():
        page.keyboard.press("Escape")
    assert page.url.endswith(f"/cases/{case.pk}/#scan-{second.pk}")
    # Back on the case page: each thumbnail links to the viewer and has its final size already.
    thumbnail = page.locator(f"#scan-{second.pk} a.open-viewer img").first
    assert thumbnail.get_attribute("loading") == "lazy"
    assert int(thumbnail.get_attribute("height")) == round(240 * second.height / second.width)
    page.wait_for_function(  # lazy, but in view: it loads
        "img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle()
    )
    shot(page, "12-case-page")


def test_dicom_slice_opens_at_its_own_window_with_its_attributes(page, live_server, case, owner, monkeypatch):
    monkeypatch.setattr("inference.tasks.enqueue_classification", lambda pk: None)
    data = mri_dicom(real_mri_images(1, classes=("meningioma",))[0], window=(900, 1400))
    (scan,) = store_scans(case, owner, [clean_upload(SimpleUploadedFile("slice.dcm", data))])
    assert pipeline.check_text(scan.pk) == Scan.Status.QUEUED  # the worker's first step: shown once read
    window = Scan.objects.get(pk=scan.pk).acquisition["window"]
    log_in(page, live_server.url)

    state = open_viewer(page, live_server.url, scan.pk)
    assert float(state["center"]) == pytest.approx(window["preview_center"])
    assert float(state["windowWidth"]) == pytest.approx(window["preview_width"])
    assert page.get_attribute(".wl-preset[data-preset=dicom]", "aria-pressed") == "true"
    assert page.text_content(".wl-preset[data-preset=dicom]").strip() == "DICOM (C 900 / W 1400)"
    panel = page.text_content("#acquisition")
    assert "TE (ms)" in panel and "93.5" in panel and "*tse2d1_15" in panel
    body = page.text_content("body")
    assert not [value for value in IDENTIFYING.values() if value.split("^")[0] in body]
    assert state["overlay"] == "none"  # not classified yet: no explanation to overlay
    shot(page, "20-dicom")
    page.eval_on_selector(".viewer-panel", "el => { el.scrollTop = el.scrollHeight; }")
    shot(page, "21-dicom-attributes")
