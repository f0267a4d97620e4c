"""Load labelled folders into cached arrays and split them by duplicate group."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml import dedup
from ml.card import SPLIT_FILE, sha256_file
from ml.cli import progress
from ml.labels import CLASSES, NOTUMOR, TUMOUR_UNKNOWN, Item, index_folder
from ml.preprocess import PREPROCESS_VERSION, SIZE, preprocess

# Label codes in the arrays: 0..n-1 are the task's classes (tumour MRI: CLASSES), 4 is "tumour
# of unknown type" (tumour MRI only). No task has more than 4 classes (tests/ml/test_tasks.py).
UNKNOWN_CODE = len(CLASSES)
SPLIT_NAMES = ("train", "val", "test")


def label_code(label: str, classes: tuple[str, ...] = CLASSES) -> int:
    # CT's "tumour" is a class of its own; in tumour MRI the same word means "type unknown".
    if label in classes:
        return classes.index(label)
    if label == TUMOUR_UNKNOWN:
        return UNKNOWN_CODE
    raise ValueError(f"label {label!r} is none of {', '.join(classes)}")


@dataclass
class Dataset:
    images: np.ndarray  # float32 (n, SIZE, SIZE, 1) in [0, 1]
    labels: np.ndarray  # int (n,), see label_code
    sources: np.ndarray  # str (n,)
    sha256: list[str]
    phash: np.ndarray  # uint64 (n,)
    paths: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> Dataset:
        return Dataset(
            self.images[idx],
            self.labels[idx],
            self.sources[idx],
            [self.sha256[i] for i in idx],
            self.phash[idx],
            [self.paths[i] for i in idx],
        )

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for h in sorted(self.sha256):
            digest.update(h.encode())
        return digest.hexdigest()


def load_items(
    items: list[Item], cache_dir: Path | None = None, classes: tuple[str, ...] = CLASSES, size: int = SIZE
) -> Dataset:
    """Decode and preprocess ``items`` at ``size``, reusing a cache keyed by content,
    preprocessing and size."""
    cache: dict[str, tuple[np.ndarray, np.uint64]] = {}
    cache_file = None
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache_file = cache_dir / f"preprocessed-v{PREPROCESS_VERSION}-{size}.npz"
        if cache_file.exists():
            with np.load(cache_file) as data:
                cache = {
                    k: (a, p) for k, a, p in zip(data["keys"], data["images"], data["phash"], strict=False)
                }
    images, phashes, hashes = [], [], []
    started = time.time()
    for i, item in enumerate(items, 1):
        digest = sha256_file(item.path)
        if digest in cache:
            arr, ph = cache[digest]
        else:
            arr = preprocess(item.path, size)
            ph = dedup.phash(arr)
            cache[digest] = (arr, ph)
        images.append(arr)
        phashes.append(ph)
        hashes.append(digest)
        if i % 250 == 0 or i == len(items):
            progress(i, len(items), started, "loading images")
    if cache_file is not None:
        keys = list(cache)
        tmp = cache_file.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            keys=np.array(keys),
            images=np.stack([cache[k][0] for k in keys]),
            phash=np.array([cache[k][1] for k in keys], dtype=np.uint64),
        )
        tmp.replace(cache_file)
    return Dataset(
        images=np.stack(images).astype(np.float32),
        labels=np.array([label_code(it.label, classes) for it in items], dtype=int),
        sources=np.array([it.source for it in items]),
        sha256=hashes,
        phash=np.array(phashes, dtype=np.uint64),
        paths=[str(it.path) for it in items],
    )


def split_by_group(
    ds: Dataset,
    fractions=(0.8, 0.1, 0.1),
    seed: int = 0,
    forced: dict[str, str] | None = None,
    grouping: tuple[str, int] = ("single", dedup.NEAR_DUPLICATE_BITS),
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Train/val/test indices with every duplicate group on one side, stratified by label.

    ``forced`` maps content hashes to the split another model put them in (``forced_splits``):
    a group holding such an image goes to that split, so no image is test for one model and
    training for another. A group whose images were put in different splits goes where most
    of them were, and its images that would change side are left out (counted in
    ``counts["left_out_for_consistency"]``). The other groups are assigned greedily (largest
    first) to the split furthest below its target share for the group's majority label.

    ``grouping=("subject", 0)``: one group per subject (``ml.subjects``, from the file
    numbering). Subjects are not pinned (another model's random slices of one subject sit on
    every side, so the majority would put nearly every subject in train); each subject goes
    where the stratification wants it, and only its images another model put on another side
    are left out. A label with fewer subjects than there are splits sends its second subject to
    test and the rest to train: a figure on an unseen person says more than early stopping on one.
    """
    linkage, bits = grouping
    by_subject = linkage == "subject"
    if by_subject:
        from ml.subjects import group_by_subject

        group_ids, counts = group_by_subject(ds.paths, ds.images, ds.sha256)
    else:
        group_ids, counts = dedup.group_duplicates(ds.sha256, ds.phash, bits, linkage)
    rng = np.random.default_rng(seed)
    targets = np.array(fractions) / sum(fractions)
    groups: dict[int, list[int]] = {}
    for i, g in enumerate(group_ids):
        groups.setdefault(int(g), []).append(i)
    order = list(groups)
    rng.shuffle(order)
    order.sort(key=lambda g: -len(groups[g]))  # stable: random within equal sizes
    forced = forced or {}
    pinned = {}  # group -> split index, for the groups another model already split
    for g in order:
        sides = [SPLIT_NAMES.index(forced[ds.sha256[m]]) for m in groups[g] if ds.sha256[m] in forced]
        if sides and not by_subject:
            pinned[g] = int(np.bincount(sides).argmax())
    n_labels = UNKNOWN_CODE + 1
    totals = np.bincount(ds.labels, minlength=n_labels).astype(float)
    group_labels = {g: int(np.bincount(ds.labels[groups[g]]).argmax()) for g in order}
    groups_per_label = np.bincount(list(group_labels.values()), minlength=n_labels)
    seen_per_label = np.zeros(n_labels, dtype=int)
    filled = np.zeros((3, n_labels))
    assigned: list[list[int]] = [[], [], []]
    left_out = 0
    for g in sorted(order, key=lambda g: g not in pinned):  # pinned groups first, then as above
        members = groups[g]
        label = group_labels[g]
        if g in pinned:
            s = pinned[g]
        elif by_subject and groups_per_label[label] < len(SPLIT_NAMES):
            s = SPLIT_NAMES.index("test") if seen_per_label[label] == 1 else 0
        else:
            s = int(np.argmax(targets * totals[label] - filled[:, label]))
        seen_per_label[label] += 1
        kept = [m for m in members if forced.get(ds.sha256[m], SPLIT_NAMES[s]) == SPLIT_NAMES[s]]
        left_out += len(members) - len(kept)
        members = kept
        assigned[s].extend(members)
        for m in members:
            filled[s, ds.labels[m]] += 1
    split = {name: np.array(sorted(idx), dtype=int) for name, idx in zip(SPLIT_NAMES, assigned, strict=True)}
    counts["pinned_by_another_model"] = sum(ds.sha256[i] in forced for i in range(len(ds)))
    counts["left_out_for_consistency"] = left_out
    return split, counts


def forced_splits(model_dirs: list[Path]) -> dict[str, str]:
    """{content hash: split} of the images other models were trained, validated or tested on
    (their split.npz). An image two of them put on different sides is an error."""
    out: dict[str, str] = {}
    for model_dir in model_dirs:
        path = Path(model_dir) / SPLIT_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{model_dir} has no {SPLIT_FILE} to keep this split consistent with")
        with np.load(path) as data:
            for name in SPLIT_NAMES:
                for digest in data[name].tolist():
                    if out.setdefault(digest, name) != name:
                        raise ValueError(
                            f"{model_dir}: image {digest[:12]} is {name} there but {out[digest]} elsewhere"
                        )
    return out


def healthy_items(
    folders: list[Path], limit: int, seed: int, label: str = NOTUMOR, task: str = "tumour-mri"
) -> list:
    """``label`` (no finding) items from folders of scans without a finding whose sub-folders
    are not class names (e.g. alzheimer-mri's dementia grades for the tumour model): at most
    ``limit`` of them from each folder (0: all), drawn at random. They give ``notumor``
    sequences and looks (T1, skull-stripped) that the tumour collections' healthy class lacks."""
    rng = np.random.default_rng(seed)
    items = []
    for folder in folders:
        found = index_folder(Path(folder), label=label, task=task)
        if limit and len(found) > limit:
            found = [found[i] for i in sorted(rng.choice(len(found), limit, replace=False))]
        items.extend(found)
    return items
