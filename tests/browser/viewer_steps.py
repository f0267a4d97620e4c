"""Steps of reading a scan in the viewer, for Playwright pages: each acts as a reader would and
returns what it observed (the viewer mirrors its state in data-* attributes of #viewer). Used by
tests/browser/test_viewer.py and by the end-to-end reading-flow test. shot() saves screenshots
under test-results/viewer/ (not committed).
"""

import io
from pathlib import Path

import numpy as np
from django.core.files.base import ContentFile
from PIL import Image

from cases.models import Scan
from ml.serve import heatmap_png
from tests.conftest import REPO_ROOT, real_mri_images
from tests.factories import PredictionFactory, ScanFactory

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


# A function, not an expression: Playwright compiles a polled expression in the page with eval,
# which the Content-Security-Policy refuses (an EvalError whenever the first check was false).
ZOOMED_PAST = "before => Number(document.getElementById('viewer').dataset.zoom) > before"


def shot(page, name: str, folder: Path = SCREENSHOTS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def viewer_state(page) -> dict:
    return page.eval_on_selector("#viewer", "el => ({...el.dataset})")


def canvas_fingerprint(page) -> dict:
    return page.evaluate(CANVAS_FINGERPRINT)


def settled(page):
    # Drawing happens on the next animation frame: wait for two, then read.
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def open_viewer(page, base_url: str, scan_pk: int) -> dict:
    page.goto(f"{base_url}/cases/scans/{scan_pk}/viewer/")
    return viewer_ready(page)


def viewer_ready(page) -> dict:
    """Wait until the viewer has drawn its scan (and its overlay, if it has one); its state."""
    page.wait_for_selector("#viewer[data-state=ready]")
    if page.get_attribute("#viewer", "data-overlay-url"):
        page.wait_for_selector("#viewer[data-overlay-ready=true]")
    settled(page)
    return viewer_state(page)


def zoom_with_button(page) -> tuple[float, float]:
    before = float(viewer_state(page)["zoom"])
    page.click("#zoom-in")
    page.wait_for_function(ZOOMED_PAST, arg=before)
    settled(page)
    return before, float(viewer_state(page)["zoom"])


def zoom_with_wheel(page, notches: int = 3) -> tuple[float, float]:
    before = float(viewer_state(page)["zoom"])
    box = page.locator("#viewer").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.4)
    for _ in range(notches):
        page.mouse.wheel(0, -100)
    page.wait_for_function(ZOOMED_PAST, arg=before)
    settled(page)
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
    settled(page)
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
    settled(page)
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
    settled(page)
    return before, float(viewer_state(page)["zoom"])


def set_window(page, center: float, width: float) -> dict:
    page.fill("#wl-center", str(center))
    page.fill("#wl-width", str(width))
    settled(page)
    return viewer_state(page)


def choose_preset(page, key: str) -> dict:
    page.click(f".wl-preset[data-preset={key}]")
    settled(page)
    return viewer_state(page)


def toggle_invert(page) -> dict:
    page.click("#invert")
    settled(page)
    return viewer_state(page)


def press(page, key: str) -> dict:
    page.locator("#viewer").focus()
    page.keyboard.press(key)
    settled(page)
    return viewer_state(page)


def next_scan_by_keyboard(page) -> str:
    page.locator("#viewer").focus()
    with page.expect_navigation():
        page.keyboard.press("j")
    page.wait_for_selector("#viewer[data-state=ready]")
    settled(page)
    return page.url


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
