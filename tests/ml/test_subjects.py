"""Subjects recovered from level-major file numbering (ml.subjects), and the split by subject
(ml.data.split_by_group with grouping ("subject", 0)) that dementia staging trains on."""

import numpy as np
import pytest
from PIL import Image

from ml.data import Dataset, split_by_group
from ml.metrics import per_subject_report
from ml.subjects import SubjectsNotRecovered, subject_ids

LEVELS = 6


def _brains(folder: str, prefix: str, subjects: int, rng, levels: int = LEVELS):
    """Slices numbered level-major: file n is level n // subjects of subject n % subjects. Each
    subject is a random brain; its levels differ a little from each other, subjects a lot."""
    base = rng.random((subjects, 16, 16))
    paths, images = [], []
    for n in range(subjects * levels):
        subject, level = n % subjects, n // subjects
        image = base[subject] + 0.05 * level * np.linspace(0, 1, 16)[None, :]
        paths.append(f"/data/{folder}/{prefix}{n}.jpg")
        images.append(image[:, :, None])
    return paths, np.array(images, dtype=np.float32)


def _dataset(parts) -> Dataset:
    paths = [p for part in parts for p in part[0]]
    images = np.concatenate([part[1] for part in parts])
    labels = np.concatenate([np.full(len(part[0]), label) for label, part in enumerate(parts)])
    return Dataset(
        images=images,
        labels=labels,
        sources=np.array(["s"] * len(paths)),
        sha256=[f"{i:064x}" for i in range(len(paths))],
        phash=np.zeros(len(paths), dtype=np.uint64),
        paths=paths,
    )


def test_the_subject_count_of_each_folder_comes_from_the_pixels():
    rng = np.random.default_rng(0)
    paths_a, images_a = _brains("A", "a", 7, rng)
    paths_b, images_b = _brains("B", "b", 2, rng)
    subjects, levels, found = subject_ids(paths_a + paths_b, np.concatenate([images_a, images_b]))
    assert {f.folder: f.stride for f in found} == {"A/a": 7, "B/b": 2}
    assert all(f.agreement >= 0.9 for f in found)
    assert len(set(subjects)) == 9
    assert subjects[0] == subjects[7] == subjects[14] != subjects[1]  # levels 0, 1, 2 of subject 0
    assert levels.tolist()[:8] == [0] * 7 + [1]


def test_a_shuffled_numbering_is_refused_rather_than_guessed():
    rng = np.random.default_rng(1)
    paths, images = _brains("A", "a", 10, rng)
    shuffled = images[rng.permutation(len(images))]
    with pytest.raises(SubjectsNotRecovered, match="does not follow subjects"):
        subject_ids(paths, shuffled)
    with pytest.raises(SubjectsNotRecovered, match="not named"):
        subject_ids(["/data/A/scan.jpg", *paths[1:]], images)


def test_the_split_by_subject_keeps_every_subject_on_one_side_and_holds_out_a_rare_class():
    rng = np.random.default_rng(2)
    ds = _dataset([_brains("A", "a", 30, rng), _brains("B", "b", 20, rng), _brains("C", "c", 2, rng)])
    split, counts = split_by_group(ds, fractions=(0.7, 0.15, 0.15), seed=0, grouping=("subject", 0))
    subjects, _, _ = subject_ids(ds.paths, ds.images)
    sides = {}
    for name, idx in split.items():
        for i in idx:
            sides.setdefault(subjects[i], set()).add(name)
    assert all(len(s) == 1 for s in sides.values()) and len(sides) == 52 == counts["groups"]
    assert sum(len(v) for v in split.values()) == len(ds)
    # Two subjects of class C: one to learn from, one unseen person to be measured on.
    assert (ds.labels[split["train"]] == 2).sum() == LEVELS == (ds.labels[split["test"]] == 2).sum()
    assert 0.1 <= len(split["test"]) / len(ds) <= 0.25


def test_by_subject_another_models_images_keep_their_side_and_only_they_are_left_out():
    rng = np.random.default_rng(3)
    ds = _dataset([_brains("A", "a", 20, rng), _brains("B", "b", 20, rng)])
    # Another model took slices at random: each subject has some on every side.
    picked = rng.choice(len(ds), 60, replace=False)
    forced = {ds.sha256[i]: ("train", "val", "test")[k % 3] for k, i in enumerate(picked)}
    split, counts = split_by_group(
        ds, fractions=(0.7, 0.15, 0.15), seed=0, forced=forced, grouping=("subject", 0)
    )
    side = {ds.sha256[i]: name for name, idx in split.items() for i in idx}
    assert all(side.get(digest, name) == name for digest, name in forced.items())
    assert counts["left_out_for_consistency"] == len(ds) - len(side) > 0
    subjects, _, _ = subject_ids(ds.paths, ds.images)
    assert len(set(subjects[split["test"]])) >= 4  # not all pulled to train by their majority


def test_per_subject_figures_read_the_mean_of_a_subjects_slices():
    rng = np.random.default_rng(4)
    ds = _dataset([_brains("A", "a", 3, rng), _brains("B", "b", 3, rng)])
    probs = np.tile([[0.9, 0.1]], (len(ds), 1))
    probs[ds.labels == 1] = [0.3, 0.7]
    probs[np.flatnonzero(ds.labels == 1)[:3]] = [0.8, 0.2]  # level 0 of each: one wrong slice each
    subjects, _, _ = subject_ids(ds.paths, ds.images)
    report = per_subject_report(subjects, probs, ds.labels, ("A", "B"), 0, False)
    assert report["n_subjects"] == 6 and report["accuracy"] == 1.0
    assert report["slices_per_subject"] == LEVELS


def test_alzheimer_mri_numbering_gives_200_subjects_of_about_26_slices(datasets):
    folder = datasets / "alzheimer-mri" / "train"
    paths = sorted(folder.glob("*/*.jpg"))
    images = np.array(
        [np.asarray(Image.open(p).convert("L").reduce(2), np.float32)[:, :, None] for p in paths]
    )
    subjects, levels, found = subject_ids([str(p) for p in paths], images)
    assert {f.folder.split("/")[0]: f.stride for f in found} == {
        "NonDemented": 100,
        "VeryMildDemented": 70,
        "MildDemented": 28,
        "ModerateDemented": 2,
    }
    assert min(f.agreement for f in found) >= 0.95
    assert len(set(subjects)) == 200 and levels.max() == 25


def test_the_strides_on_a_card_give_back_the_same_subjects_without_the_pixels():
    from ml.subjects import ids_from_strides

    rng = np.random.default_rng(5)
    paths, images = _brains("A", "a", 7, rng)
    subjects, _, found = subject_ids(paths, images)
    assert ids_from_strides(paths, {f.folder: f.stride for f in found}).tolist() == subjects.tolist()
