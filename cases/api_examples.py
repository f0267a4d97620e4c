"""Example bodies for the API schema (/api/v1/docs/): real-looking values of each answer, so the
docs show a case, a scan and its result as a client will receive them."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse

from brainscan.api import ErrorSerializer
from ml.card import refer_reason

API = "http://127.0.0.1:8000/api/v1"
CASE_ID, SCAN_ID = 7, 42

CASE = {
    "id": CASE_ID,
    "url": f"{API}/cases/{CASE_ID}/",
    "pseudonym": "amber-falcon-4821",
    "team": 1,
    "team_name": "Neuro A",
    "status": "open",
    "flag": "tumour_suspected",
    "task": "tumour-mri",
    "task_label": "Tumour (MRI)",
    "notes": "headache, 3 weeks",
    "patient_ref_hash": "5b1f0c6f3e4a9d2c8b7e61a0f4d39c2e7a8b5d1c0e9f6a3b2d4c7e8f1a0b9c3d",
    "created_by": "alice",
    "created_at": "2026-11-30T09:12:44.512301Z",
    "updated_at": "2026-11-30T09:14:02.118934Z",
    "scans_url": f"{API}/cases/{CASE_ID}/scans/",
}

_SCAN = {
    "id": SCAN_ID,
    "url": f"{API}/scans/{SCAN_ID}/",
    "case": CASE_ID,
    "status": "done",
    "hold_reason": "",
    "failure_reason": "",
    "outcome": "classified",
    "outcome_reason": "",
    "task": "tumour-mri",
    "modality": "image",
    "series": None,
    "width": 512,
    "height": 512,
    "acquisition": None,
    "uploaded_at": "2026-11-30T09:13:10.402117Z",
    "image_url": f"{API}/scans/{SCAN_ID}/image/",
    "explanation_url": f"{API}/scans/{SCAN_ID}/explanation/",
    "review": None,
}
_PREDICTION = {
    "id": 40,
    "model_version": "brain-tumour 2026.11.24",
    "model_version_id": 2,
    "latency_ms": 7.9,
    "explanation_url": f"{API}/scans/{SCAN_ID}/explanation/",
    "created_at": "2026-11-30T09:13:10.561820Z",
}

CLASSIFIED_SCAN = _SCAN | {
    "prediction": _PREDICTION
    | {
        "label": "glioma",
        "confidence": 0.9412,
        "probabilities": {"glioma": 0.9412, "meningioma": 0.0391, "notumor": 0.0124, "pituitary": 0.0073},
        "tumour_probability": 0.9876,
        "tumour_suspected": True,
    }
}
# Most likely type notumor, yet the tumour classes together pass the (low) tumour threshold.
UNCERTAIN_SCAN = _SCAN | {
    "outcome": "uncertain",
    "outcome_reason": refer_reason(0.7402, 0.87),
    "prediction": _PREDICTION
    | {
        "label": "notumor",
        "confidence": 0.7402,
        "probabilities": {"glioma": 0.1921, "meningioma": 0.0498, "notumor": 0.7402, "pituitary": 0.0179},
        "tumour_probability": 0.2598,
        "tumour_suspected": True,
    },
}
NOT_MRI_SCAN = _SCAN | {
    "outcome": "wrong_modality",
    "outcome_reason": "not classified: not a brain MRI (colour picture: brain MRI slices are greyscale)",
    "width": 1024,
    "height": 768,
    "explanation_url": None,
    "prediction": _PREDICTION
    | {
        "label": None,
        "confidence": 0.0,
        "probabilities": {},
        "tumour_probability": 0.0,
        "tumour_suspected": False,
        "explanation_url": None,
    },
}
QUEUED_SCAN = _SCAN | {"status": "queued", "outcome": None, "explanation_url": None, "prediction": None}
# Stored, not yet read for burned-in text by the worker: its image_url answers 409 until then.
CHECKING_SCAN = QUEUED_SCAN | {"status": "checking"}
# Text burnt into the pixels (cases.burnedin): classified only once a data steward releases it.
HELD_SCAN = QUEUED_SCAN | {"status": "held", "hold_reason": "text found in the picture (7 words)"}
DICOM_SCAN = CLASSIFIED_SCAN | {
    "modality": "dicom",
    "acquisition": {
        "attributes": {
            "Modality": "MR",
            "SeriesDescription": "AX T2 FLAIR",
            "ScanningSequence": "SE, IR",
            "RepetitionTime": "9000",
            "EchoTime": "120",
            "InversionTime": "2500",
            "PixelSpacing": "0.45, 0.45",
        },
        "window": {"center": "1100", "width": "1800", "preview_center": 142.5, "preview_width": 284.9},
    },
}

REVIEW = {
    "id": 5,
    "decision": "confirmed",
    "label": "glioma",
    "comment": "enhancing rim, agree",
    "reviewer": "alice",
    "created_at": "2026-11-30T09:20:31.004562Z",
}

CASE_EXAMPLES = [
    OpenApiExample(
        "A new case",
        value={
            "notes": "headache, 3 weeks",
            "patient_reference": "MRN 0012345",
            "team": 1,
            "task": "tumour-mri",
        },
        request_only=True,
    ),
    OpenApiExample("A case", value=CASE, response_only=True),
]
CASE_UPDATE_EXAMPLES = [
    OpenApiExample("Close a case", value={"status": "closed", "notes": "headache, 3 weeks; reviewed"}),
    OpenApiExample("Ask another question (no scan reviewed yet)", value={"task": "dementia-mri"}),
]
SCAN_EXAMPLES = [
    OpenApiExample("Classified", value=CLASSIFIED_SCAN),
    OpenApiExample(
        "Uncertain", summary="Uncertain: refer (tumour suspected, most likely notumor)", value=UNCERTAIN_SCAN
    ),
    OpenApiExample("Not a brain MRI", value=NOT_MRI_SCAN),
    OpenApiExample("Being checked for burned-in text", value=CHECKING_SCAN),
    OpenApiExample("Queued", value=QUEUED_SCAN),
    OpenApiExample("Held for a data steward", value=HELD_SCAN),
    OpenApiExample("DICOM slice", summary="A DICOM slice with its acquisition attributes", value=DICOM_SCAN),
]
UPLOAD_EXAMPLES = [
    OpenApiExample(
        "Two slices stored, to be checked for burned-in text",
        value={
            "scans": [
                CHECKING_SCAN,
                CHECKING_SCAN
                | {
                    "id": SCAN_ID + 1,
                    "url": f"{API}/scans/{SCAN_ID + 1}/",
                    "image_url": f"{API}/scans/{SCAN_ID + 1}/image/",
                },
            ]
        },
        status_codes=["202"],
    ),
]
# GET scans/{id}/image/: the PNG, or 409 while the worker has not read the scan for burned-in text.
IMAGE_RESPONSES = {
    (200, "image/png"): OpenApiTypes.BINARY,
    409: OpenApiResponse(
        ErrorSerializer,
        description="`awaiting_text_check`: the scan (status `checking`) is being read for burned-in "
        "text; `held_for_steward`: text was found (or could not be ruled out) and the scan (status "
        "`held`) waits for a data steward. Either way its pixels are shown to no one but data "
        "stewards until the check passes it or a steward releases it.",
        examples=[
            OpenApiExample(
                "awaiting_text_check",
                value={
                    "detail": "This scan is being checked for burned-in text (a name in its pixels): its "
                    "image is shown once the check has passed it.",
                    "code": "awaiting_text_check",
                },
            )
        ],
    ),
}
REVIEW_EXAMPLES = [OpenApiExample("A confirmed label", value=REVIEW)]
REVIEW_REQUEST_EXAMPLES = [
    OpenApiExample("Confirm glioma", value={"label": "glioma", "comment": "enhancing rim, agree"}),
    OpenApiExample("Correct a dementia grade (dementia-mri)", value={"label": "MildDemented"}),
]
NO_PREDICTION_EXAMPLE = OpenApiExample(
    "conflict", value={"detail": "The scan has no prediction to review yet.", "code": "conflict"}
)
CASE_CLOSED_EXAMPLE = OpenApiExample(
    "case_closed",
    value={
        "detail": "Case amber-falcon-4821 is closed, so it is read-only: reopen it to upload scans.",
        "code": "case_closed",
    },
)
SCAN_PROCESSING_EXAMPLE = OpenApiExample(
    "scan_processing",
    value={"detail": "This scan is being classified: retract it once it is done.", "code": "scan_processing"},
)
RETRACT_FORBIDDEN_EXAMPLE = OpenApiExample(
    "permission_denied",
    value={
        "detail": "Only its uploader (until it is reviewed) or a data steward retracts a scan.",
        "code": "permission_denied",
    },
)
UPLOAD_TOO_LARGE_EXAMPLE = OpenApiExample(
    "upload_too_large",
    value={
        "detail": "The 5 images of this upload hold 125,000,000 pixels together; one upload may hold at "
        "most 100,000,000 pixels. Nothing was stored: send them in smaller batches.",
        "code": "upload_too_large",
    },
)
ARCHIVE_TOO_LARGE_EXAMPLE = OpenApiExample(
    "archive_too_many_members",
    value={
        "detail": "The archives of this upload hold more than 500 files (UPLOAD_ZIP_MAX_MEMBERS): send the "
        "series in smaller archives. Nothing was stored.",
        "code": "archive_too_many_members",
    },
)
UPLOAD_TIMEOUT_EXAMPLE = OpenApiExample(
    "upload_timeout",
    value={
        "detail": "The server is too busy to check this upload now (it took longer than 20 s). Nothing "
        "was stored: try again in a minute, or send fewer images at once.",
        "code": "upload_timeout",
    },
)
RERUN_REQUEST_EXAMPLES = [
    OpenApiExample(
        "Move the case to the question that fits",
        value={"task": "tumour-ct", "move_case": True},
        request_only=True,
    ),
    OpenApiExample(
        "Run this scan alone under another question", value={"task": "tumour-ct"}, request_only=True
    ),
]
RERUN_EXAMPLES = [
    *RERUN_REQUEST_EXAMPLES,
    OpenApiExample(
        "Queued again",
        value=QUEUED_SCAN | {"task": "tumour-ct"},
        response_only=True,
        status_codes=["202"],
    ),
]
QUESTION_SETTLED_EXAMPLE = OpenApiExample(
    "question_settled",
    value={
        "detail": "Case amber-falcon-4821 stays a Tumour (MRI) case: a clinician has reviewed one of "
        "its scans under that question. Open a new case to ask another.",
        "code": "question_settled",
    },
    response_only=True,
    status_codes=["409"],
)
RETRACT_REQUEST_EXAMPLES = [OpenApiExample("Wrong patient", value={"reason": "wrong patient"})]
RETRACTION_EXAMPLES = [
    OpenApiExample(
        "Retracted",
        value={
            "id": 43,
            "case": 7,
            "sha256": "5d41402abc4b2a76b9719d911017c592" * 2,
            "retracted_by": "alice",
            "retracted_at": "2026-12-01T10:42:07Z",
            "reason": "wrong patient",
        },
    )
]
