"""Load labelled folders into cached arrays and split them by duplicate group."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml import dedup
from ml.card import sha256_file
from ml.cli import progress
from ml.labels import CLASSES, NOTUMOR, TUMOUR_UNKNOWN, Item, index_folder
from ml.preprocess import PREPROCESS_VERSION, SIZE, preprocess

# Label codes in the arrays: 0..3 are CLASSES, 4 is "tumour of unknown type".
UNKNOWN_CODE = len(CLASSES)


def label_code(label: str) -> int:
    return UNKNOWN_CODE if label == TUMOUR_UNKNOWN else CLASSES.index(label)


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


def load_items(items: list[Item], cache_dir: Path | None = None) -> Dataset:
    """Decode and preprocess ``items``, reusing a cache keyed by content and preprocessing."""
    cache: dict[str, tuple[np.ndarray, np.uint64]] = {}
    cache_file = None
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache_file = cache_dir / f"preprocessed-v{PREPROCESS_VERSION}-{SIZE}.npz"
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
            arr = preprocess(item.path)
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
        labels=np.array([label_code(it.label) for it in items]),
        sources=np.array([it.source for it in items]),
        sha256=hashes,
        phash=np.array(phashes, dtype=np.uint64),
        paths=[str(it.path) for it in items],
    )


def split_by_group(
    ds: Dataset, fractions=(0.8, 0.1, 0.1), seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Train/val/test indices with every duplicate group on one side, stratified by label.

    Groups are assigned greedily (largest first) to the split furthest below its target
    share for the group's majority label.
    """
    group_ids, counts = dedup.group_duplicates(ds.sha256, ds.phash)
    rng = np.random.default_rng(seed)
    names = ("train", "val", "test")
    targets = np.array(fractions) / sum(fractions)
    groups: dict[int, list[int]] = {}
    for i, g in enumerate(group_ids):
        groups.setdefault(int(g), []).append(i)
    order = list(groups)
    rng.shuffle(order)
    order.sort(key=lambda g: -len(groups[g]))  # stable: random within equal sizes
    n_labels = UNKNOWN_CODE + 1
    totals = np.bincount(ds.labels, minlength=n_labels).astype(float)
    filled = np.zeros((3, n_labels))
    assigned: list[list[int]] = [[], [], []]
    for g in order:
        members = groups[g]
        label = int(np.bincount(ds.labels[members]).argmax())
        deficit = targets * totals[label] - filled[:, label]
        s = int(np.argmax(deficit))
        assigned[s].extend(members)
        for m in members:
            filled[s, ds.labels[m]] += 1
    split = {name: np.array(sorted(idx), dtype=int) for name, idx in zip(names, assigned, strict=False)}
    return split, counts


def healthy_items(folders: list[Path], limit: int, seed: int) -> list:
    """``notumor`` items from folders of brain MRIs without a tumour whose sub-folders are
    not class names (e.g. alzheimer-mri's dementia grades): at most ``limit`` of them from
    each folder (0: all), drawn at random. They give ``notumor`` sequences and looks (T1,
    skull-stripped) that the tumour collections' healthy class lacks."""
    rng = np.random.default_rng(seed)
    items = []
    for folder in folders:
        found = index_folder(Path(folder), label=NOTUMOR)
        if limit and len(found) > limit:
            found = [found[i] for i in sorted(rng.choice(len(found), limit, replace=False))]
        items.extend(found)
    return items
