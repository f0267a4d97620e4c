"""The scan viewer: one scan at full size with zoom, pan, window/level and the explanation overlay,
stepping through its series in slice order (or the case's single images). Drawing happens in
static/js/viewer.js."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from .access import scans_visible_to
from .acquisition import ALLOWED_ATTRIBUTES, RETAINED_WHEN_CLEAN, estimated_weighting
from .models import AuditEvent
from .scans import PIXELS_HIDDEN
from .studies import SLICE_ORDER

# Window/level presets on the 8-bit preview (centre, width): JPEG/PNG scans and DICOM renders
# alike are 0-255 there. "Brain" narrows onto the grey/white-matter range of T1/T2 renders;
# "High contrast" is a steep ramp that separates bone-like bright structures from soft tissue.
PRESETS = [
    ("default", "Default", 127.5, 255),
    ("brain", "Brain", 110, 160),
    ("contrast", "High contrast", 128, 80),
]


def presets_for(scan) -> list[dict]:
    """The presets offered for ``scan``, the first being the one it opens with: a DICOM slice's
    own window when its header had one (cases.acquisition), else Default."""
    presets = [{"key": key, "label": label, "center": c, "width": w} for key, label, c, w in PRESETS]
    window = (scan.acquisition or {}).get("window")
    if window:
        label = f"DICOM (C {window['center']} / W {window['width']})"
        dicom = {
            "key": "dicom",
            "label": label,
            "center": window["preview_center"],
            "width": window["preview_width"],
        }
        presets.insert(0, dicom)
    return presets


def acquisition_rows(scan) -> list[tuple[str, str]]:
    stored = (scan.acquisition or {}).get("attributes", {})
    # Labels come from the allow-list, so a stored key outside it (an older row) is never shown; a
    # series description is checked again (one stored before the Clean Descriptors check, say).
    shown = {
        key: stored[key]
        for key in ALLOWED_ATTRIBUTES
        if key in stored and (key not in RETAINED_WHEN_CLEAN or RETAINED_WHEN_CLEAN[key](stored[key]))
    }
    rows = [(ALLOWED_ATTRIBUTES[key], value) for key, value in shown.items()]
    weighting = estimated_weighting(stored)
    if weighting:
        # After Modality and the series description (when it was clean enough to keep).
        rows.insert(
            len({"Modality", "SeriesDescription"} & set(shown)),
            ("Weighting (estimated from TR/TE/TI)", weighting),
        )
    return rows


@login_required
@require_GET
def scan_viewer(request, pk):
    scan = get_object_or_404(
        scans_visible_to(request.user)
        .select_related("case", "series")
        .prefetch_related("predictions__model_version"),
        pk=pk,
    )
    if scan.pixels_hidden_from(request.user):
        raise Http404(PIXELS_HIDDEN)
    # Reading a scan is reading its case: audited as the retract page's view of a scan is.
    AuditEvent.record(request.user, AuditEvent.Verb.CASE_VIEW, scan.case, scan=scan.pk)
    # Next/previous step through the scan's series in slice order, or through the single images.
    # Scans whose pixels are hidden from this user are stepped over, not stepped onto as a 404.
    neighbours = scan.case.scans.not_retracted().pixels_shown_to(request.user).filter(series=scan.series_id)
    if scan.series_id is not None:
        neighbours = neighbours.order_by(*SLICE_ORDER)
    order = list(neighbours.values_list("pk", flat=True))
    position = order.index(scan.pk)
    context = {
        "scan": scan,
        "case": scan.case,
        "prediction": scan.latest_prediction,
        "presets": presets_for(scan),
        "acquisition": acquisition_rows(scan),
        "position": position + 1,
        "count": len(order),
        "series": scan.series,
        "previous_pk": order[position - 1] if position > 0 else None,
        "next_pk": order[position + 1] if position + 1 < len(order) else None,
    }
    return render(request, "cases/viewer.html", context)
