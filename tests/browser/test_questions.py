"""One case per clinical question in headless Chromium: upload a slice of the question's modality
and one of the other, let the real worker read them (text check, modality check, the question's
active model), and read on the page an answer from that question's classes for the first and
"this looks like a CT slice; this case asks for ..." for the second.

The newest version under ml/models/<task>/ is registered and activated. A question with no
shipped model (dementia-mri today: its model is a candidate, ml/candidates/) is walked all the
same: the slice of its modality answers "no model is active for ... yet", the other is refused
for its modality before any model is asked."""

from pathlib import Path

import pytest
from django.conf import settings

from cases.models import Scan
from inference.models import ModelVersion
from inference.registry import sync_registry
from ml import tasks
from tests.browser.viewer_steps import log_in
from tests.conftest import SHARED_DATASETS
from tests.factories import CaseFactory

pytestmark = pytest.mark.browser

MRI_TUMOUR = SHARED_DATASETS / "brain-tumor-mri" / "Training" / "glioma" / "Tr-gl_0010.jpg"
MRI_DEMENTIA = SHARED_DATASETS / "alzheimer-mri" / "train" / "MildDemented"
# A CT slice without burned-in text (cases.burnedin passes it): the worker must not hold it.
CT_SLICE = SHARED_DATASETS / "brain-ct" / "train" / "tumor" / "ct_tumor_1001.jpg"
# The model directory of each question under ml/models/ (the tumour-MRI cards keep their old name).
MODEL_DIRS = {
    tasks.TUMOUR_MRI: "brain-tumour",
    tasks.DEMENTIA_MRI: "dementia-mri",
    tasks.TUMOUR_CT: "tumour-ct",
}


def _first(path: Path) -> Path:
    if path.is_dir():
        path = next(iter(sorted(path.glob("*.jpg"))), path)
    if not path.is_file():
        pytest.skip(f"real slices not found at {path}")
    return path


def _slices(task: tasks.Task) -> tuple[Path, Path]:
    """(a slice the question reads, one of the other modality)."""
    mri = _first(MRI_DEMENTIA if task.name == tasks.DEMENTIA_MRI else MRI_TUMOUR)
    ct = _first(CT_SLICE)
    return (ct, mri) if task.modality == "CT" else (mri, ct)


@pytest.fixture
def model_dir(task_name) -> Path | None:
    """The newest version directory of the question's model, or None while none is shipped."""
    root = Path(settings.ML_MODELS_ROOT) / MODEL_DIRS[task_name]
    versions = sorted(d for d in root.glob("*") if (d / "model.json").is_file())
    return versions[-1] if versions else None


def _activate(model_dir: Path) -> ModelVersion:
    """Registered from its card and made the question's active version, as the tumour model is."""
    sync_registry()
    version = ModelVersion.objects.get(path=f"{model_dir.parent.name}/{model_dir.name}", is_available=True)
    version.activate()
    return version


@pytest.mark.parametrize("task_name", list(tasks.TASKS))
def test_each_question_answers_its_modality_and_refuses_the_other(
    task_name, model_dir, page, live_server, running_worker, team, owner
):
    task = tasks.get(task_name)
    model = _activate(model_dir) if model_dir else None
    right, wrong = _slices(task)
    case = CaseFactory(team=team, created_by=owner, task=task.name)

    log_in(page, live_server.url)
    page.goto(f"{live_server.url}/cases/{case.pk}/")
    page.set_input_files("#upload-files", [str(right), str(wrong)])
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#uploads .upload.stored", timeout=30_000)
    # The panel before the upload (no scans) also reads "not pending": wait for both scans, settled.
    page.wait_for_function(
        "() => { const panel = document.querySelector('#scans [data-pending]');"
        " return panel && panel.dataset.pending === 'false'"
        " && document.querySelectorAll('#scans .scan').length === 2; }",
        polling=200,
        timeout=120_000,
    )

    answered, refused = Scan.objects.filter(case=case).order_by("id")  # stored in the files' order
    assert answered.status == refused.status == Scan.Status.DONE, (answered.hold_reason, refused.hold_reason)
    if model is None:
        assert answered.outcome == Scan.Outcome.NO_MODEL
        said = page.text_content(f"#scan-{answered.pk} .result").lower()
        assert f"no model is active for {task.label} yet".lower() in said, said
        assert page.locator(f"#scan-{answered.pk} .type-answer").count() == 0
    else:
        label = page.text_content(f"#scan-{answered.pk} .type-answer .label").strip()
        assert label in task.classes and label in model.classes, (task.name, label)
    reason = page.text_content(f"#scan-{refused.pk} .result strong").strip().lower()
    other = "an MRI" if task.modality == "CT" else "a CT"
    assert f"this looks like {other} slice; this case asks for {task.label}".lower() in reason
    assert page.locator(f"#scan-{refused.pk} .type-answer").count() == 0
