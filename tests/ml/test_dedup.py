import io

import numpy as np
from PIL import Image

from ml.data import load_items, split_by_group
from ml.dedup import group_duplicates, phash
from ml.labels import Item
from ml.preprocess import preprocess


def test_resized_and_reencoded_copies_share_a_group(datasets, tmp_path):
    files = sorted((datasets / "brain-tumor-mri" / "Training" / "glioma").glob("*.jpg"))[:6]
    original = Image.open(files[0]).convert("L")
    original.resize((300, 300)).save(tmp_path / "resized.png")
    original.save(tmp_path / "reencoded.jpg", quality=70)
    (tmp_path / "copy.jpg").write_bytes(files[0].read_bytes())
    items = [
        Item(p, "glioma", "t")
        for p in [*files, tmp_path / "resized.png", tmp_path / "reencoded.jpg", tmp_path / "copy.jpg"]
    ]
    ds = load_items(items)
    groups, counts = group_duplicates(ds.sha256, ds.phash)
    assert counts["exact_duplicates"] == 1
    assert len({groups[0], groups[6], groups[7], groups[8]}) == 1
    assert len(set(groups[1:6])) == 5  # other slices stay apart


def test_phash_is_stable_under_jpeg_noise(datasets):
    f = sorted((datasets / "brain-tumor-mri" / "Training" / "notumor").glob("*.jpg"))[10]
    buf = io.BytesIO()
    Image.open(f).save(buf, "JPEG", quality=60)
    a, b = phash(preprocess(f)), phash(preprocess(buf.getvalue()))
    assert bin(int(a) ^ int(b)).count("1") <= 4


def test_split_never_separates_a_duplicate_group(datasets):
    files = []
    for cls in ("glioma", "notumor"):
        files += [
            Item(p, cls, "t")
            for p in sorted((datasets / "brain-tumor-mri" / "Training" / cls).glob("*.jpg"))[:60]
        ]
    ds = load_items(files + files[:15])  # 15 exact copies
    split, counts = split_by_group(ds, seed=1)
    groups, _ = group_duplicates(ds.sha256, ds.phash)
    side = np.empty(len(ds), dtype=object)
    for name, idx in split.items():
        side[idx] = name
    for g in np.unique(groups):
        assert len(set(side[groups == g])) == 1
    assert sum(len(v) for v in split.values()) == len(ds)
    assert counts["exact_duplicates"] >= 15  # the folder has copies of its own too
