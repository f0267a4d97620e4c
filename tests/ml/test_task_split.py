"""Splits across tasks: duplicate grouping that does not chain, and images another model
already split keep their side (ml.data.split_by_group's ``forced``, ml.data.forced_splits)."""

import numpy as np
import pytest

from ml.data import Dataset, forced_splits, split_by_group
from ml.dedup import group_duplicates


def _dataset(phashes, labels) -> Dataset:
    n = len(labels)
    return Dataset(
        images=np.zeros((n, 8, 8, 1), np.float32),
        labels=np.array(labels),
        sources=np.array(["s"] * n),
        sha256=[f"{i:064x}" for i in range(n)],
        phash=np.array(phashes, dtype=np.uint64),
        paths=[f"/x/{i}.png" for i in range(n)],
    )


def _spread(n: int, seed: int = 0) -> np.ndarray:
    """``n`` random 64-bit hashes, far apart from each other."""
    return np.random.default_rng(seed).integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)


def test_complete_linkage_does_not_chain_a_run_of_look_alikes_into_one_group():
    # 0b0, 0b11, 0b1111, ...: each within 2 bits of the next, the ends 14 bits apart.
    chain = np.array([(1 << (2 * k)) - 1 for k in range(8)], dtype=np.uint64)
    hashes = [f"h{i}" for i in range(len(chain))]
    single, _ = group_duplicates(hashes, chain, 2, "single")
    complete, counts = group_duplicates(hashes, chain, 2, "complete")
    assert len(set(single)) == 1
    assert len(set(complete)) >= 4 and counts["groups"] == len(set(complete))
    with pytest.raises(ValueError, match="linkage"):
        group_duplicates(hashes, chain, 2, "average")


def test_complete_linkage_keeps_exact_copies_together():
    phashes = np.concatenate([_spread(6), _spread(1, seed=1), _spread(1, seed=1)])
    hashes = [f"h{i}" for i in range(6)] + ["copy", "copy"]
    groups, counts = group_duplicates(hashes, phashes, 10, "complete")
    assert groups[6] == groups[7] and counts["exact_duplicates"] == 1


def test_images_another_model_split_keep_their_side_and_the_rest_is_stratified():
    ds = _dataset(_spread(200), [i % 2 for i in range(200)])
    forced = {ds.sha256[i]: "test" for i in range(5)} | {ds.sha256[i]: "train" for i in range(5, 30)}
    split, counts = split_by_group(ds, seed=3, forced=forced)
    side = {ds.sha256[i]: name for name, idx in split.items() for i in idx}
    assert all(side[digest] == name for digest, name in forced.items())
    assert counts["pinned_by_another_model"] == 30 and counts["left_out_for_consistency"] == 0
    assert sum(len(v) for v in split.values()) == 200
    assert 15 <= len(split["test"]) <= 25  # still about a tenth


def test_a_group_whose_images_were_split_apart_leaves_out_the_ones_that_would_change_side():
    twin = _spread(1, seed=9)
    ds = _dataset(np.concatenate([twin, twin, twin, _spread(40)]), [0] * 43)
    ds.sha256[:3] = ["a" * 64, "b" * 64, "c" * 64]  # three look-alikes, not copies
    forced = {"a" * 64: "train", "b" * 64: "train", "c" * 64: "test"}
    split, counts = split_by_group(ds, seed=0, forced=forced)
    assert set(split["train"]) >= {0, 1}
    assert 2 not in np.concatenate(list(split.values()))  # neither train (a leak) nor test
    assert counts["left_out_for_consistency"] == 1


def test_forced_splits_reads_model_directories_and_refuses_contradicting_ones(tmp_path):
    for name, test in (("a", ["x"]), ("b", ["y"]), ("c", ["z"])):
        (tmp_path / name).mkdir()
        np.savez(
            tmp_path / name / "split.npz", train=np.array(["w"]), val=np.array([], str), test=np.array(test)
        )
    assert forced_splits([tmp_path / "a", tmp_path / "b"]) == {"w": "train", "x": "test", "y": "test"}
    np.savez(tmp_path / "c" / "split.npz", train=np.array(["x"]), val=np.array([], str), test=np.array(["z"]))
    with pytest.raises(ValueError, match="is train there but test elsewhere"):
        forced_splits([tmp_path / "a", tmp_path / "c"])
    with pytest.raises(FileNotFoundError, match="split.npz"):
        forced_splits([tmp_path])
