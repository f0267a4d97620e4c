"""Fitting the modality check (``ml.modality``) on MRI folders against CT.

    python -m ml.fit_modality --mri DIR [--mri DIR ...] --ct DIR --out ml/models/modality/VERSION

The split follows the tumour model's (``--reference-split``), so no image the tumour model
was tested on trains this check; the rest is split by patient (lgg-flair) or duplicate group.
Training pictures get one augmented copy (gamma, lower resolution, MRI skull-stripped); the
threshold is the lowest CT probability at which no MRI source's validation slices are called
CT more often than ``--max-mr-refused``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml import cli
from ml.card import sha256_file, write_json_atomic
from ml.modality import CARD_FILE, CT, FEATURE_VERSION, MODEL_FILE, MR, features
from ml.preprocess import decode, preprocess_grey, skull_strip


@dataclass(frozen=True)
class Picture:
    path: Path
    modality: str
    source: str


CORRECTIONS = Path(__file__).resolve().parent / "modality-corrections.txt"


def read_corrections(path: Path) -> dict[str, str]:
    """{path relative to the datasets folder: modality} from a corrections file."""
    out = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, modality = line.rsplit(maxsplit=1)
            if modality not in (MR, CT):
                raise ValueError(f"{path}: {line!r}: the modality must be {MR} or {CT}")
            out[name] = modality
    return out


def collect(mri: list[Path], ct: list[Path], corrections: dict[str, str] | None = None) -> list[Picture]:
    """Every picture under the folders, with its folder's modality unless ``corrections``
    (keyed by the path's tail, e.g. ``br35h/yes/y1383.jpg``) says otherwise."""
    from ml.labels import IMAGE_SUFFIXES

    corrections = corrections or {}
    out = []
    for roots, modality in ((mri, MR), (ct, CT)):
        for root in roots:
            if not Path(root).is_dir():
                raise FileNotFoundError(f"dataset folder not found: {root}")
            files = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise FileNotFoundError(f"no images found under {root}")
            source = root.parent.name if root.name.lower() in ("train", "training") else root.name
            for p in files:
                fixed = next(
                    (m for tail, m in corrections.items() if p.as_posix().endswith("/" + tail)), None
                )
                out.append(Picture(p, fixed or modality, source))
    return out


def _patient(path: Path) -> str | None:
    # lgg-flair names keep the patient: TCGA_<site>_<patient>_<date>_<slice>.jpg
    parts = path.stem.split("_")
    return "_".join(parts[:3]) if len(parts) >= 5 and parts[0] == "TCGA" else None


def assign_splits(
    pictures: list[Picture], greys: list[np.ndarray], reference: dict[str, str], seed: int = 0
) -> tuple[np.ndarray, dict]:
    """ "train" / "val" / "test" per picture. A picture the reference (tumour model) split holds
    keeps that split, and so does its whole group (patient or duplicate group); the other
    groups are drawn 70/15/15 within their source."""
    from ml.dedup import NEAR_DUPLICATE_BITS, group_duplicates, phash

    hashes = [sha256_file(p.path) for p in pictures]
    groups = np.arange(len(pictures))
    counts = {"images": len(pictures), "largest_group": 1}
    # A patient's slices form one group; elsewhere byte-identical or perceptually close
    # pictures of one source do. (Across sources, near-duplicate chains would join unrelated
    # slices of similar anatomy into one giant group; byte-identical copies still join below.)
    by_patient: dict[str, int] = {}
    for i, picture in enumerate(pictures):
        patient = _patient(picture.path)
        if patient is not None:
            groups[i] = by_patient.setdefault(patient, i)
    for source in sorted({p.source for p in pictures}):
        members = [i for i, p in enumerate(pictures) if p.source == source and _patient(p.path) is None]
        if members:
            phashes = np.array([phash(preprocess_grey(greys[i], 64)) for i in members], dtype=np.uint64)
            # Registered collections (alzheimer-mri: every slice aligned to one template) chain
            # different subjects within a few bits; tighten until no group holds 10% of it.
            for bits in range(NEAR_DUPLICATE_BITS, -1, -1):
                local, found = group_duplicates([hashes[i] for i in members], phashes, max_bits=bits)
                if np.bincount(local).max() <= 0.1 * len(members):
                    break
            counts[source] = found | {"near_duplicate_bits": bits}
            for i, g in zip(members, local, strict=True):
                groups[i] = members[0] + len(pictures) * (1 + int(g))
    first: dict[str, int] = {}
    for i, digest in enumerate(hashes):
        if digest in first:
            groups[groups == groups[i]] = groups[first[digest]]
        else:
            first[digest] = i
    counts["largest_group"] = int(np.bincount(np.unique(groups, return_inverse=True)[1]).max())
    rank = {"train": 0, "val": 1, "test": 2}
    fixed: dict[int, str] = {}
    for i, digest in enumerate(hashes):
        if digest in reference:
            g = int(groups[i])
            if g not in fixed or rank[reference[digest]] > rank[fixed[g]]:
                fixed[g] = reference[digest]
    rng = np.random.default_rng(seed)
    split = np.empty(len(pictures), dtype=object)
    for source in sorted({p.source for p in pictures}):
        members = [i for i, p in enumerate(pictures) if p.source == source]
        free = sorted({int(groups[i]) for i in members} - set(fixed))
        rng.shuffle(free)
        drawn = {
            g: ("train" if k < 0.7 * len(free) else "val" if k < 0.85 * len(free) else "test")
            for k, g in enumerate(free)
        }
        for i in members:
            split[i] = fixed.get(int(groups[i])) or drawn[int(groups[i])]
    counts["pictures_in_reference_split"] = int(sum(h in reference for h in hashes))
    return split, counts


def _augment(grey: np.ndarray, rng: np.random.Generator, modality: str) -> np.ndarray:
    """Other scanners' look: gamma, lower resolution and, for MRI, a skull-stripped slice."""
    from PIL import Image

    out = grey
    if modality == MR and rng.random() < 0.5:
        out = skull_strip(out, float(rng.uniform(0.04, 0.10)))
    gamma = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
    out = (255 * (out / 255.0) ** gamma).astype(np.uint8)
    if rng.random() < 0.3:
        h, w = out.shape
        f = float(rng.uniform(0.3, 0.7))
        small = Image.fromarray(out).resize(
            (max(8, int(w * f)), max(8, int(h * f))), Image.Resampling.BILINEAR
        )
        out = np.asarray(small.resize((w, h), Image.Resampling.BILINEAR))
    return out


def _rates(p_ct: np.ndarray, pictures: list[Picture], threshold: float) -> dict:
    """Per source: how many pictures, and the share the check gives the other modality."""
    out = {}
    for source in sorted({p.source for p in pictures}):
        idx = [i for i, p in enumerate(pictures) if p.source == source]
        wrong = (p_ct[idx] >= threshold) != (pictures[idx[0]].modality == CT)
        out[source] = {"n": len(idx), "wrong_modality": round(float(wrong.mean()), 4)}
    return out


def choose_threshold(
    p_ct: np.ndarray, is_ct: np.ndarray, sources: np.ndarray, max_mr_refused: float
) -> tuple[float, bool]:
    """(cut-off, met): the lowest CT-probability cut-off at which no MRI source's validation
    slices are called CT more often than ``max_mr_refused`` (the most CT refused for that
    cost), or 0.95 and False when none is that low."""
    for t in np.round(np.arange(0.05, 0.951, 0.01), 2):
        worst = max(float((p_ct[(sources == s) & ~is_ct] >= t).mean()) for s in np.unique(sources[~is_ct]))
        if worst <= max_mr_refused:
            return float(t), True
    return 0.95, False


def fit(args) -> dict:
    import joblib
    import sklearn
    from sklearn.ensemble import HistGradientBoostingClassifier

    from ml.cli import progress

    corrections = read_corrections(args.corrections) if args.corrections else {}
    pictures = collect(args.mri, args.ct, corrections)
    corrected = sum(
        p.modality != (CT if any(p.path.is_relative_to(r) for r in args.ct) else MR) for p in pictures
    )
    started = time.time()
    greys = []
    for i, picture in enumerate(pictures):
        greys.append(decode(picture.path)[0])
        progress(i + 1, len(pictures), started, "reading")
    reference = {}
    if args.reference_split:
        with np.load(args.reference_split) as data:
            reference = {d: name for name in ("train", "val", "test") for d in data[name].tolist()}
    split, counts = assign_splits(pictures, greys, reference, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    rows, labels, kinds = [], [], []
    started = time.time()
    for i, (picture, grey) in enumerate(zip(pictures, greys, strict=True)):
        views = [("plain", grey)]
        if split[i] == "train":
            views.append(("augmented", _augment(grey, rng, picture.modality)))
        elif picture.modality == MR:
            views.append(("stripped", skull_strip(grey, 0.07)))
        for kind, view in views:
            rows.append(features(view))
            labels.append(picture.modality == CT)
            kinds.append((i, kind))
        progress(i + 1, len(pictures), started, "features")
    X, y = np.stack(rows), np.array(labels)
    if args.features_cache:
        np.savez(args.features_cache, X=X, y=y, split=np.array([split[i] for i, _ in kinds]))
    where = np.array([split[i] for i, _ in kinds])
    estimator = HistGradientBoostingClassifier(
        max_iter=300, learning_rate=0.1, class_weight="balanced", early_stopping=False, random_state=args.seed
    )
    estimator.fit(X[where == "train"], y[where == "train"])
    p_ct = estimator.predict_proba(X)[:, 1]
    sources = np.array([pictures[i].source for i, _ in kinds])
    val = where == "val"
    threshold, met = choose_threshold(p_ct[val], y[val], sources[val], args.max_mr_refused)

    def report(name: str, kind: str) -> dict:
        sel = [k for k, (i, view) in enumerate(kinds) if split[i] == name and view == kind]
        return _rates(p_ct[sel], [pictures[kinds[k][0]] for k in sel], threshold)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{MODEL_FILE}.tmp"
    joblib.dump(estimator, tmp)
    tmp.replace(out / MODEL_FILE)
    card = {
        "kind": "modality check",
        "version": out.name,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "modalities": [MR, CT],
        "feature_version": FEATURE_VERSION,
        "model_file": MODEL_FILE,
        "sha256": sha256_file(out / MODEL_FILE),
        "threshold": threshold,
        "threshold_rule": (
            f"lowest CT probability at which every MRI source's validation slices (as they are and "
            f"skull-stripped) are called CT at most {args.max_mr_refused:.1%} of the time"
            + ("" if met else "; none was that low, so the highest allowed, 0.95")
        ),
        "estimator": "HistGradientBoostingClassifier(max_iter=300, class_weight=balanced), 42 ring features",
        "data": {
            "mri": [str(p) for p in args.mri],
            "ct": [str(p) for p in args.ct],
            "reference_split": str(args.reference_split or ""),
            "split_counts": {name: int((split == name).sum()) for name in ("train", "val", "test")},
            "duplicates": counts,
            "corrections": f"{corrected} pictures whose pixels show the other modality ({args.corrections})",
            "augmentation": (
                "one copy per training picture: gamma 0.6-1.6, 30% lower resolution, MRI 50% skull-stripped"
            ),
        },
        "metrics": {
            "validation": report("val", "plain"),
            "validation_skull_stripped": report("val", "stripped"),
            "test": report("test", "plain"),
            "test_skull_stripped": report("test", "stripped"),
        },
        "libraries": {"scikit-learn": sklearn.__version__, "numpy": np.__version__},
    }
    write_json_atomic(out / CARD_FILE, card)
    return card


def main(argv=None) -> int:
    parser = cli.parser("ml.fit_modality", __doc__)
    parser.add_argument("--mri", type=Path, action="append", required=True, help="folder of MRI slices")
    parser.add_argument("--ct", type=Path, action="append", required=True, help="folder of CT slices")
    parser.add_argument("--out", type=Path, required=True, help="directory to write the check into")
    parser.add_argument("--reference-split", type=Path, help="a model's split.npz whose splits to keep")
    parser.add_argument("--max-mr-refused", type=float, default=0.01, help="validation MRI refusal allowed")
    parser.add_argument(
        "--corrections", type=Path, default=CORRECTIONS, help="pictures whose folder names the wrong modality"
    )
    parser.add_argument("--features-cache", type=Path, help="also save the feature matrix here (.npz)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        card = fit(args)
    except FileNotFoundError as exc:
        return cli.fail(str(exc))
    cli.print_report({"version": card["version"], "threshold": card["threshold"], "metrics": card["metrics"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
