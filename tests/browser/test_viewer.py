"""The scan viewer in headless Chromium: zoom (button, wheel), pan (drag), window/level (sliders,
preset, Shift-drag), invert, the explanation overlay (key o), the next scan by keyboard, back to the case.

The step functions take a Playwright page and return what they observed, so the end-to-end
reading-flow test can call them too. Each step saves a screenshot under test-results/viewer/.
"""

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from cases.models import Scan
from cases.uploads import clean_upload, store_scans
from ml.serve import heatmap_png
from tests.browser.test_csp import RECORD_VIOLATIONS
from tests.conftest import REPO_ROOT, real_mri_images
from tests.dicom_files import IDENTIFYING, mri_dicom
from tests.factories import PredictionFactory, ScanFactory

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = REPO_ROOT / "test-results" / "viewer"

# A cheap fingerprint of what the canvas shows: FNV-1a over a strided sample, and the mean.
CANVAS_FINGERPRINT = """() => {
  const c = document.getElementById("viewer-canvas");
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let h = 2166136261, sum = 0, n = 0;
  for (let i = 0; i < d.length; i += 4 * 7) {
    h = Math.imul(h ^ d[i], 16777619) >>> 0;
    h = Math.imul(h ^ d[i + 1], 16777619) >>> 0;
    sum += d[i] + d[i + 1] + d[i + 2]; n += 3;
  }
  return {hash: h, mean: sum / n};
}"""


def shot(page, name: str, folder: Path = SCREENSHOTS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def viewer_state(page) -> dict:
    return page.eval_on_selector("#viewer", "el => ({...el.dataset})")


def canvas_fingerprint(page) -> dict:
    return page.evaluate(CANVAS_FINGERPRINT)


def _settled(page):
    # Drawing happens on the next animation frame: wait for two, then read.
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def open_viewer(page, base_url: str, scan_pk: int) -> dict:
    page.goto(f"{base_url}/cases/scans/{scan_pk}/viewer/")
    page.wait_for_selector("#viewer[data-state=ready]")
    if page.get_attribute("#viewer", "data-overlay-url"):
        page.wait_for_selector("#viewer[data-overlay-ready=true]")
    _settled(page)
    return viewer_state(page)


def zoom_with_button(page) -> tuple[float, float]:
    before = float(viewer_state(page)["zoom"])
    page.click("#zoom-in")
    page.wait_for_function(f"Number(document.getElementById('viewer').dataset.zoom) > {before}")
    _settled(page)
    return before, float(viewer_state(page)["zoom"])


def zoom_with_wheel(page, notches: int = 3) -> tuple[float, float]:
    before = float(viewer_state(page)["zoom"])
    box = page.locator("#viewer").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.4)
    for _ in range(notches):
        page.mouse.wheel(0, -100)
    page.wait_for_function(f"Number(document.getElementById('viewer').dataset.zoom) > {before}")
    _settled(page)
    return before, float(viewer_state(page)["zoom"])


def pan_by_drag(page, dx: int = 120, dy: int = 80) -> tuple[tuple[float, float], tuple[float, float]]:
    state = viewer_state(page)
    before = (float(state["panX"]), float(state["panY"]))
    box = page.locator("#viewer").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx / 2, y + dy / 2, steps=4)
    page.mouse.move(x + dx, y + dy, steps=4)
    page.mouse.up()
    _settled(page)
    state = viewer_state(page)
    return before, (float(state["panX"]), float(state["panY"]))


def window_by_drag(page, dx: int = 40, dy: int = 30) -> dict:
    """Shift-drag: right widens the window, down lowers the level (darker image: up is brighter)."""
    box = page.locator("#viewer").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.keyboard.down("Shift")
    page.mouse.down()
    page.mouse.move(x + dx, y + dy, steps=5)
    page.mouse.up()
    page.keyboard.up("Shift")
    _settled(page)
    return viewer_state(page)


def pinch_zoom(page, spread: int = 120) -> tuple[float, float]:
    """Two fingers moving apart (touch events through the DevTools protocol, as a tablet sends)."""
    before = float(viewer_state(page)["zoom"])
    box = page.locator("#viewer").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = page.context.new_cdp_session(page)

    def touch(kind, gap):
        points = [{"x": x - gap, "y": y, "id": 0}, {"x": x + gap, "y": y, "id": 1}]
        points = [] if kind == "touchEnd" else points
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    touch("touchStart", 20)
    for step in range(1, 7):
        touch("touchMove", 20 + spread * step / 12)
    touch("touchEnd", 0)
    _settled(page)
    return before, float(viewer_state(page)["zoom"])


def set_window(page, center: float, width: float) -> dict:
    page.fill("#wl-center", str(center))
    page.fill("#wl-width", str(width))
    _settled(page)
    return viewer_state(page)


def choose_preset(page, key: str) -> dict:
    page.click(f".wl-preset[data-preset={key}]")
    _settled(page)
    return viewer_state(page)


def toggle_invert(page) -> dict:
    page.click("#invert")
    _settled(page)
    return viewer_state(page)


def press(page, key: str) -> dict:
    page.locator("#viewer").focus()
    page.keyboard.press(key)
    _settled(page)
    return viewer_state(page)


def next_scan_by_keyboard(page) -> str:
    page.locator("#viewer").focus()
    with page.expect_navigation():
        page.keyboard.press("j")
    page.wait_for_selector("#viewer[data-state=ready]")
    _settled(page)
    return page.url


@pytest.fixture
def page(monkeypatch, close_thread_connections):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 900}, has_touch=True)
        context.add_init_script(RECORD_VIOLATIONS)
        page = context.new_page()
        page.set_default_timeout(20_000)
        yield page
        browser.close()


def classified_scans(case, count=2):
    """Real MRI slices stored as PNG, classified, each with a Grad-CAM-like coarse explanation."""
    scans = []
    for index, path in enumerate(real_mri_images(count, classes=("glioma", "pituitary"))):
        grey = np.asarray(Image.open(path).convert("L"))
        buffer = io.BytesIO()
        Image.fromarray(grey).save(buffer, format="PNG")
        scan = ScanFactory(
            case=case,
            image=ContentFile(buffer.getvalue(), name="scan.png"),
            width=grey.shape[1],
            height=grey.shape[0],
            status=Scan.Status.DONE,
            outcome=Scan.Outcome.CLASSIFIED,
        )
        # A 7x7 map like the model's last convolution: one hot spot off centre.
        yy, xx = np.mgrid[:7, :7]
        cam = np.exp(-((yy - 2 - index) ** 2 + (xx - 4) ** 2) / 2.0)
        prediction = PredictionFactory(scan=scan)
        prediction.explanation.save("heat.png", ContentFile(heatmap_png(cam, grey)))
        scans.append(scan)
    return scans


def log_in(page, base_url, username="owner"):
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "correct-horse-battery-staple")
    page.click("button:has-text('Log in')")
    page.wait_for_selector("h1:has-text('Cases')")


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
    _settled(page)
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
