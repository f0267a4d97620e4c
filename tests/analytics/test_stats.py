"""Cached statistics checked against a direct numpy computation on real images."""

import io
import shutil
from collections import Counter

import numpy as np
import pytest
from django.core.files.storage import default_storage
from PIL import Image

from analytics import stats as analytics_stats
from analytics.importer import import_folder
from analytics.models import DatasetStats
from analytics.tasks import compute_dataset_stats
from ml.preprocess import preprocess

from .conftest import FOLDERS, GREY_LEVEL, PER_CLASS, shown_grey

pytestmark = pytest.mark.django_db


def direct_arrays(folder):
    """Class -> stacked preprocessed images, straight from the files."""
    return {
        FOLDERS[sub.name]: np.stack([preprocess(path)[..., 0] for path in sorted(sub.iterdir())]).astype(
            np.float64
        )
        for sub in sorted(folder.iterdir())
    }


@pytest.fixture
def computed(small_folder):
    dataset = import_folder(small_folder, "small").dataset
    compute_dataset_stats(dataset.pk)  # the Celery task's body, run here
    return dataset, DatasetStats.objects.get(dataset=dataset)


def test_mean_and_std_images_match_numpy(small_folder, computed):
    _, stats = computed
    assert stats.status == DatasetStats.Status.DONE
    direct = direct_arrays(small_folder)
    assert stats.data["classes"] == ["glioma", "meningioma", "notumor", "pituitary"]
    for label, stack in direct.items():
        mean = shown_grey(stats.files[f"mean-{label}.png"])
        std = shown_grey(stats.files[f"std-{label}.png"]) * stats.data["std_scale"]
        np.testing.assert_allclose(mean, stack.mean(axis=0), atol=GREY_LEVEL)
        np.testing.assert_allclose(std, stack.std(axis=0), atol=GREY_LEVEL * stats.data["std_scale"] + 1e-5)
        assert stats.data["class_counts"][label] == PER_CLASS
    # Only the images the pages show are stored.
    assert all(name.endswith(".png") for name in stats.files)
    # The std rendering shares one scale: the most variable pixel of any class is white.
    assert stats.data["std_scale"] == pytest.approx(
        max(s.std(axis=0).max() for s in direct.values()), abs=1e-5
    )


def test_difference_images_are_the_difference_of_class_means(small_folder, computed):
    _, stats = computed
    direct = direct_arrays(small_folder)
    differences = {
        (a, b): direct[a].mean(axis=0) - direct[b].mean(axis=0) for a in direct for b in direct if a != b
    }
    scale = max(np.abs(d).max() for d in differences.values())
    assert stats.data["diff_scale"] == pytest.approx(scale, abs=1e-5)
    for tumour in ("glioma", "meningioma", "pituitary"):
        with default_storage.open(stats.files[f"diff-{tumour}-notumor.png"]) as fh:
            rgb = np.asarray(
                Image.open(fh).convert("RGB").resize((128, 128), Image.Resampling.NEAREST), np.int16
            )
        diff = differences[(tumour, "notumor")]
        # Red where the tumour class is brighter, blue where no-tumour is: blue - red has the opposite sign.
        strong = np.abs(diff) > 0.25 * scale
        assert strong.any()
        assert (np.sign(rgb[..., 2] - rgb[..., 0])[strong] == -np.sign(diff[strong])).mean() > 0.99


def test_distributions_match_the_files(small_folder, computed):
    _, stats = computed
    sizes, modes = Counter(), Counter()
    for path in small_folder.rglob("*.jpg"):
        with Image.open(path) as image:
            sizes[f"{image.width}×{image.height}"] += 1
            modes[(image.mode, FOLDERS[path.parent.name])] += 1
    distributions = stats.data["distributions"]
    assert dict(distributions["sizes"]) == dict(sizes.most_common(20)) | (
        {"other": sum(sizes.values()) - sum(c for _, c in sizes.most_common(20))} if len(sizes) > 20 else {}
    )
    assert distributions["distinct_sizes"] == len(sizes)
    for mode, per_class in distributions["modes"].items():
        assert per_class == [modes[(mode, label)] for label in stats.data["classes"]]


def test_byte_identical_copies_across_classes_form_a_duplicate_group(small_folder):
    source = sorted((small_folder / "glioma_tumor").iterdir())[0]
    shutil.copyfile(source, small_folder / "no_tumor" / "copy-of-glioma.jpg")
    dataset = import_folder(small_folder, "small").dataset
    stats = analytics_stats.compute_dataset_stats(dataset.pk)

    duplicates = stats.data["duplicates"]
    assert duplicates["counts"]["exact_duplicates"] == 1
    assert duplicates["cross_label_groups"] >= 1
    group = next(
        g for g in duplicates["groups"] if "no_tumor/copy-of-glioma.jpg" in [m[0] for m in g["members"]]
    )
    assert f"glioma_tumor/{source.name}" in [m[0] for m in group["members"]]
    assert group["labels"] == ["glioma", "notumor"]


def test_montage_holds_the_sample_size_and_a_new_sample_replaces_it(computed):
    dataset, stats = computed
    sample = stats.data["montages"]["glioma"]
    # Fewer images than the sample size: all of them, in a 4x3 grid.
    assert (sample["count"], sample["of"]) == (PER_CLASS, PER_CLASS)
    with default_storage.open(stats.files["montage-glioma.png"]) as fh:
        assert Image.open(fh).size == (4 * analytics_stats.MONTAGE_TILE, 3 * analytics_stats.MONTAGE_TILE)

    png, small = analytics_stats.build_montage(dataset, "notumor", seed=7, sample_size=4)
    assert small["count"] == 4 == len(set(small["images"]))
    assert all(dataset.images.get(relpath=relpath).label == "notumor" for relpath in small["images"])
    assert Image.open(io.BytesIO(png)).size == (
        2 * analytics_stats.MONTAGE_TILE,
        2 * analytics_stats.MONTAGE_TILE,
    )

    old_name = stats.files["montage-pituitary.png"]
    new_sample = analytics_stats.resample_montage(dataset.pk, "pituitary")
    stats.refresh_from_db()
    assert stats.files["montage-pituitary.png"] != old_name
    assert not default_storage.exists(old_name)
    assert stats.data["montages"]["pituitary"] == new_sample


def test_recomputing_replaces_the_cached_files(computed):
    dataset, stats = computed
    old = set(stats.files.values())
    analytics_stats.compute_dataset_stats(dataset.pk)
    stats.refresh_from_db()
    assert not old & set(stats.files.values())
    assert not any(default_storage.exists(name) for name in old)
    assert all(default_storage.exists(name) for name in stats.files.values())


def test_a_vanished_folder_marks_the_statistics_failed(small_folder):
    dataset = import_folder(small_folder, "small").dataset
    shutil.rmtree(small_folder)
    with pytest.raises(FileNotFoundError):
        analytics_stats.compute_dataset_stats(dataset.pk)
    stats = DatasetStats.objects.get(dataset=dataset)
    assert stats.status == DatasetStats.Status.FAILED
    assert "No such file" in stats.error


def test_the_task_returns_quietly_for_a_deleted_dataset():
    assert compute_dataset_stats(123456) is None
