"""The fixed patient-level split of lgg-flair: each patient wholly in train, val or test, so that
training (issue 16) and the series-level rule (``ml.series``) hold out the same patients.

    python -m ml.patient_split --data ../shared/datasets/lgg-flair   # rewrite ml/splits/lgg-flair.json

The committed file is the split. It is reproducible from the patient ids alone: patients are
ranked by a keyed hash of their id within their acquisition site (``TCGA_<site>_<patient>``) and
the ranks cut 60/20/20, so every site, a proxy for the hospital and scanner, is spread over the
three parts. New patients would move some ranks: write a new split file rather than this one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from pathlib import Path

from ml import cli

PARTS = ("train", "val", "test")
SHARES = (0.6, 0.2, 0.2)
# Changing the key reshuffles every patient: do it only with a new split file name.
SPLIT_KEY = b"brainscan/lgg-flair/patient-split/v1"
SPLIT_DIR = Path(__file__).resolve().parent / "splits"
LGG_FLAIR_SPLIT = SPLIT_DIR / "lgg-flair.json"


def patient_hash(patient: str, key: bytes = SPLIT_KEY) -> str:
    return hmac.new(key, patient.encode(), hashlib.sha256).hexdigest()


def site_of(patient: str) -> str:
    """``TCGA_CS_4942`` -> ``CS``."""
    return patient.split("_")[1]


def assign_parts(patients, key: bytes = SPLIT_KEY) -> dict[str, str]:
    """patient -> "train" | "val" | "test": ranked by keyed hash within each site, the ranks cut
    at 60% and 80% (the middle of each rank decides, so a site of 1 goes to train, of 5 to 3/1/1)."""
    by_site: dict[str, list[str]] = {}
    for patient in sorted(set(patients)):
        by_site.setdefault(site_of(patient), []).append(patient)
    parts = {}
    for members in by_site.values():
        members.sort(key=lambda p: patient_hash(p, key))
        for rank, patient in enumerate(members):
            position = (rank + 0.5) / len(members)
            parts[patient] = (
                PARTS[0]
                if position < SHARES[0]
                else PARTS[1]
                if position < SHARES[0] + SHARES[1]
                else PARTS[2]
            )
    return dict(sorted(parts.items()))


def load_split(path: Path | str = LGG_FLAIR_SPLIT) -> dict[str, str]:
    """The committed split: patient -> part."""
    data = json.loads(Path(path).read_text(), object_pairs_hook=_no_repeated_keys)
    parts = data["patients"]
    unknown = {part for part in parts.values() if part not in PARTS}
    if unknown:
        raise ValueError(f"{path}: unknown parts {sorted(unknown)}")
    return parts


def _no_repeated_keys(pairs):
    # json.loads would keep the last of two entries for one patient: a patient in two parts.
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"listed more than once in the split: {', '.join(repeated)}")
    return dict(pairs)


def part_of(patient: str, split: dict[str, str] | None = None) -> str:
    """The part of one lgg-flair patient; a patient the split does not know is an error, not a
    silent "train": the split file is regenerated when the dataset grows."""
    split = load_split() if split is None else split
    try:
        return split[patient]
    except KeyError:
        raise KeyError(
            f"patient {patient} is not in the lgg-flair split: rerun python -m ml.patient_split"
        ) from None


def part_of_slice(path: Path | str, split: dict[str, str] | None = None) -> str:
    """The part of an lgg-flair slice, from its file name ``TCGA_<site>_<patient>_<date>_<slice>.jpg``."""
    from ml.dicomseries import LGG_NAME

    match = LGG_NAME.match(Path(path).name)
    if match is None:
        raise ValueError(f"{path} is not named TCGA_<site>_<patient>_<date>_<slice>.jpg")
    return part_of(match["patient"], split)


def split_document(parts: dict[str, str], slices: dict[str, tuple[int, int]] | None = None) -> dict:
    """What the split file holds: the rule, the patients' parts and, per part, the counts."""
    summary = {}
    for part in PARTS:
        members = [p for p, q in parts.items() if q == part]
        entry = {"patients": len(members)}
        if slices:
            entry["tumour_slices"] = sum(slices[p][0] for p in members)
            entry["tumour_free_slices"] = sum(slices[p][1] for p in members)
        summary[part] = entry
    return {
        "dataset": "lgg-flair",
        "rule": "HMAC-SHA256 of the patient id (key in ml.patient_split.SPLIT_KEY), ranked within "
        "site, ranks cut 60/20/20",
        "parts": summary,
        "patients": parts,
    }


def main(argv=None) -> int:
    parser = cli.parser("ml.patient_split", __doc__)
    parser.add_argument("--data", type=Path, required=True, help="the lgg-flair folder (yes/, no/)")
    parser.add_argument("--out", type=Path, default=LGG_FLAIR_SPLIT, help="split file to write")
    args = parser.parse_args(argv)
    from ml.dicomseries import lgg_patients

    try:
        patients = lgg_patients(args.data)
    except ValueError as exc:
        return cli.fail(str(exc))
    if not patients:
        return cli.fail(f"{args.data}: no lgg-flair slices (yes/*.jpg, no/*.jpg)")
    counts = {p: (sum(s.tumour for s in v), sum(not s.tumour for s in v)) for p, v in patients.items()}
    document = split_document(assign_parts(patients), counts)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(json.dumps(document["parts"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
