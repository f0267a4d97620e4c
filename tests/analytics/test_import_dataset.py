"""manage.py import_dataset: per image label, hash, size and mode; idempotent re-import."""

import hashlib
import io
import shutil

import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from analytics.models import DatasetImage, ReferenceDataset

from .conftest import FOLDERS, PER_CLASS

pytestmark = pytest.mark.django_db


def run_import(path, name="small", *extra):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "import_dataset", str(path), "--name", name, "--stats", "skip", *extra, stdout=out, stderr=err
    )
    return out.getvalue(), err.getvalue()


def test_import_records_label_hash_size_and_mode_of_every_image(small_folder):
    out, err = run_import(small_folder)

    dataset = ReferenceDataset.objects.get(name="small")
    assert dataset.root == str(small_folder.resolve())
    assert dataset.images.count() == PER_CLASS * len(FOLDERS)
    for folder, label in FOLDERS.items():
        for path in (small_folder / folder).iterdir():
            row = dataset.images.get(relpath=f"{folder}/{path.name}")
            with Image.open(path) as image:
                assert (row.width, row.height, row.mode) == (*image.size, image.mode)
            assert row.label == label
            assert row.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
            assert row.file_size == path.stat().st_size
    assert f"{PER_CLASS * len(FOLDERS)} images ({PER_CLASS * len(FOLDERS)} added" in out
    assert f"{PER_CLASS * len(FOLDERS)}/{PER_CLASS * len(FOLDERS)}" in err  # the progress bar's last state


def test_reimport_is_idempotent_and_follows_changes(small_folder):
    run_import(small_folder)
    before = list(DatasetImage.objects.order_by("relpath").values_list("pk", "relpath", "sha256"))

    out, _ = run_import(small_folder)
    assert list(DatasetImage.objects.order_by("relpath").values_list("pk", "relpath", "sha256")) == before
    assert "(0 added, 0 changed, 0 removed)" in out
    assert ReferenceDataset.objects.count() == 1

    gone = sorted((small_folder / "pituitary").iterdir())[0]
    gone.unlink()
    changed = sorted((small_folder / "meningioma").iterdir())[0]
    changed.unlink()
    Image.new("L", (300, 200), 40).save(changed, format="JPEG")
    out, _ = run_import(small_folder)

    assert "(0 added, 1 changed, 1 removed)" in out
    assert not DatasetImage.objects.filter(relpath=f"pituitary/{gone.name}").exists()
    row = DatasetImage.objects.get(relpath=f"meningioma/{changed.name}")
    assert (row.width, row.height, row.mode) == (300, 200, "L")


def test_unknown_class_folder_is_a_clear_error(small_folder):
    shutil.move(small_folder / "pituitary", small_folder / "misc")
    with pytest.raises(CommandError, match="unknown class folder 'misc'"):
        run_import(small_folder)
    assert not DatasetImage.objects.exists()


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="not found"):
        run_import(tmp_path / "nowhere")


def test_import_queues_the_statistics_after_commit(
    small_folder, django_capture_on_commit_callbacks, monkeypatch
):
    from analytics import tasks

    queued = []
    monkeypatch.setattr(tasks.compute_dataset_stats, "delay", lambda pk: queued.append(pk))
    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "import_dataset", str(small_folder), "--name", "small", stdout=io.StringIO(), stderr=io.StringIO()
        )
    dataset = ReferenceDataset.objects.get()
    assert queued == [dataset.pk]
    assert dataset.stats.status == "pending"


def test_reviewed_scans_leave_out_pictures_refused_for_their_modality(case, owner):
    from analytics.importer import import_reviewed_scans
    from cases.models import Scan
    from tests.factories import PredictionFactory, ReviewFactory, ScanFactory

    kept = PredictionFactory(scan=ScanFactory(case=case, status=Scan.Status.DONE))
    ReviewFactory(prediction=kept, reviewer=owner, label="glioma")
    # A review recorded on a refused picture before reviews of those were refused.
    refused = ScanFactory(case=case, status=Scan.Status.DONE, outcome=Scan.Outcome.WRONG_MODALITY)
    ReviewFactory(prediction=PredictionFactory(scan=refused, label=None), reviewer=owner, label="glioma")

    dataset = import_reviewed_scans("reviewed").dataset

    assert list(dataset.images.values_list("scan", flat=True)) == [kept.scan_id]
