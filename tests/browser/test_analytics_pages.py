"""The analytics pages in headless Chromium, with the shipped model card and real images: every
chart draws, nothing is refused by the Content-Security-Policy, no script error.

With ANALYTICS_SCREENSHOTS=DIR the test also saves a full-page screenshot of each page there."""

import json
import os
from pathlib import Path

import pytest
from django.conf import settings

from analytics.importer import import_folder, import_reviewed_scans
from analytics.stats import compute_dataset_stats
from cases.models import Consent
from tests.analytics.conftest import link_small_folder
from tests.browser.viewer_steps import log_in
from tests.factories import CaseFactory, ModelVersionFactory, PredictionFactory, ReviewFactory, ScanFactory

pytestmark = pytest.mark.browser

RECORD_PROBLEMS = """
window.__problems = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__problems.push(`CSP ${e.violatedDirective} ${e.blockedURI}`);
});
window.addEventListener("error", (e) => { window.__problems.push(`error ${e.message}`); });
"""

UNDRAWN = """Array.from(document.querySelectorAll("[data-figure]"))
  .filter((el) => !(el.classList.contains("js-plotly-plot") && el.querySelector(".main-svg")))
  .map((el) => el.dataset.figure)"""

# Per chart: tick labels or axis titles drawn outside the chart (clipped), and whether the mode
# bar's box overlaps the title's.
LAYOUT_PROBLEMS = """Array.from(document.querySelectorAll(".js-plotly-plot")).flatMap((plot) => {
  const box = plot.getBoundingClientRect();
  const found = [];
  plot.querySelectorAll(".xtick text, .ytick text, .g-xtitle text, .g-ytitle text").forEach((label) => {
    const r = label.getBoundingClientRect();
    if (r.width && (r.left < box.left - 1 || r.right > box.right + 1 || r.bottom > box.bottom + 1)) {
      found.push(`${plot.dataset.figure}: "${label.textContent}" clipped`);
    }
  });
  const bar = plot.querySelector(".modebar"), title = plot.querySelector(".gtitle");
  if (bar && title) {
    const a = bar.getBoundingClientRect(), b = title.getBoundingClientRect();
    if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) {
      found.push(`${plot.dataset.figure}: the mode bar covers the title`);
    }
  }
  return found;
})"""


def shipped_card():
    cards = sorted(Path(settings.ML_MODELS_ROOT).glob("brain-tumour/*/model.json"))
    if not cards:
        pytest.skip("no shipped brain-tumour model card")
    return json.loads(cards[-1].read_text())


@pytest.fixture
def browser_context(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(RECORD_PROBLEMS)
    context.set_default_timeout(20_000)
    return context


@pytest.fixture
def analytics_data(tmp_path, team, owner, steward):
    dataset = import_folder(link_small_folder(tmp_path / "Training"), "Brain tumour MRI").dataset
    compute_dataset_stats(dataset.pk)
    empty = import_reviewed_scans("Reviewed scans").dataset  # before any scan is reviewed
    compute_dataset_stats(empty.pk)
    card = shipped_card()
    version = ModelVersionFactory(name=card["name"], version=card["version"], card=card, is_active=True)
    consented, refused = CaseFactory(team=team, created_by=owner), CaseFactory(team=team, created_by=owner)
    Consent.record(consented, Consent.Scope.ANALYTICS, Consent.State.GRANTED, steward)
    pairs = [("glioma", "glioma"), ("meningioma", "meningioma"), ("notumor", "notumor")]
    for case in (consented, refused):
        for predicted, reviewed in pairs * 2 + [("glioma", "pituitary"), (None, "notumor")]:
            scan = ScanFactory(case=case)
            prediction = PredictionFactory(scan=scan, model_version=version, label=predicted)
            ReviewFactory(prediction=prediction, reviewer=owner, label=reviewed)
    return {"dataset": dataset, "version": version, "empty": empty}


def test_analytics_pages_draw_every_chart(browser_context, live_server, analytics_data):
    shots = os.environ.get("ANALYTICS_SCREENSHOTS")
    page = browser_context.new_page()
    log_in(page, live_server.url, "owner")
    dataset, version = analytics_data["dataset"].pk, analytics_data["version"].pk
    problems = {}
    for name, path in [
        ("overview", "/analytics/"),
        ("dataset", f"/analytics/datasets/{dataset}/"),
        ("model", f"/analytics/models/{version}/"),
        ("field", "/analytics/field/"),
        ("empty dataset", f"/analytics/datasets/{analytics_data['empty'].pk}/"),
    ]:
        page.goto(live_server.url + path)
        page.wait_for_load_state("networkidle")
        # Each placeholder holds a drawn Plotly chart (its SVG), none left empty.
        assert page.evaluate(UNDRAWN) == [], name
        if name not in ("overview", "empty dataset"):
            assert page.locator(".js-plotly-plot .main-svg").count() > 0, name
        assert page.evaluate(LAYOUT_PROBLEMS) == [], name
        if page.locator(".js-plotly-plot").count():
            page.locator(".js-plotly-plot").last.hover()  # the mode bar shows in the screenshot
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=f"{shots}/{name.replace(' ', '-')}.png", full_page=True)
        problems[name] = page.evaluate("window.__problems")
    assert {name: found for name, found in problems.items() if found} == {}
