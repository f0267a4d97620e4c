"""Every page works in headless Chromium under the site's Content-Security-Policy: no script, style
or image is refused, the charts and the API docs draw, the explanation overlay still fades."""

import pytest
from django.core.files.base import ContentFile

from analytics.importer import import_folder
from analytics.stats import compute_dataset_stats
from tests.analytics.conftest import link_small_folder, model_card
from tests.browser.viewer_steps import log_in
from tests.factories import ModelVersionFactory, PredictionFactory, ScanFactory, png_bytes

pytestmark = pytest.mark.browser

# Every refusal the browser reports, from the first script on (before the page's own).
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample || ""}`);
});
"""


@pytest.fixture
def browser_context(chromium):
    context = chromium.new_context()
    context.add_init_script(RECORD_VIOLATIONS)
    context.set_default_timeout(20_000)
    return context


@pytest.fixture
def pages_to_visit(case, tmp_path):
    scan = ScanFactory(case=case, status="done", outcome="classified")
    prediction = PredictionFactory(scan=scan, model_version=ModelVersionFactory(card=model_card()))
    prediction.explanation.save("heat.png", ContentFile(png_bytes(colour=200)))
    dataset = import_folder(link_small_folder(tmp_path / "data"), "Reference").dataset
    compute_dataset_stats(dataset.pk)
    return {"case": case, "scan": scan, "dataset": dataset, "version": prediction.model_version}


def _visit(page, url, ready=None):
    response = page.goto(url)
    if ready:
        page.wait_for_selector(ready)
    page.wait_for_load_state("networkidle")
    return response


def test_every_page_works_under_the_content_security_policy(
    browser_context, live_server, owner, steward, pages_to_visit
):
    base = live_server.url
    objects = pages_to_visit
    page = browser_context.new_page()
    log_in(page, base, "owner")
    visited = {}

    response = _visit(page, f"{base}/cases/")
    csp = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe" not in csp
    visited["case list"] = page.evaluate("window.__csp")

    _visit(page, f"{base}/cases/{objects['case'].pk}/", ready=".scan .heatmap")
    heatmap = page.locator(".scan .heatmap")
    assert heatmap.evaluate("el => getComputedStyle(el).opacity") == "0.6"
    page.locator(".heatmap-opacity").fill("20")
    assert heatmap.evaluate("el => getComputedStyle(el).opacity") == "0.2"
    visited["case page"] = page.evaluate("window.__csp")

    dataset, version = objects["dataset"].pk, objects["version"].pk
    for name, path, ready in [
        ("analytics", "/analytics/", None),
        ("dataset", f"/analytics/datasets/{dataset}/", "[data-figure='fig-labels'] .main-svg"),
        ("model", f"/analytics/models/{version}/", ".figure .main-svg"),
        ("field", "/analytics/field/", None),
    ]:
        # Plotly styles its charts inline as it draws them; scripts stay this server's only.
        csp = _visit(page, base + path, ready).headers["content-security-policy"]
        assert "script-src 'self';" in csp and "style-src 'self' 'unsafe-inline';" in csp
        visited[name] = page.evaluate("window.__csp")
    for name, path, ready in [
        ("models", "/models/", None),
        ("not found", "/cases/999999/", "text=Back to the case list"),
        ("api docs", "/api/v1/docs/", ".swagger-ui .info .title"),
    ]:
        _visit(page, base + path, ready)
        visited[name] = page.evaluate("window.__csp")
    # The Swagger UI drew the operations from the schema, and its own style applied.
    assert page.locator(".opblock").count() > 5
    assert page.evaluate("getComputedStyle(document.body).margin") == "0px"

    page.context.clear_cookies()
    log_in(page, base, "steward")
    for name, path in [
        ("admin", "/admin/"),
        ("admin cases", "/admin/cases/case/"),
        ("admin case", f"/admin/cases/case/{objects['case'].pk}/change/"),
        ("admin audit", "/admin/cases/auditevent/"),
    ]:
        _visit(page, base + path, "#content")
        visited[name] = page.evaluate("window.__csp")

    assert {name: refused for name, refused in visited.items() if refused} == {}
