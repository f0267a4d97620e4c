"""Choose the series-level verdict rule on lgg-flair's validation patients and report it on its
test patients, beside the slice-level figures at the card's threshold.

    python -m ml.series_eval --model ml/models/brain-tumour/2026.11.24 \\
        --data ../shared/datasets/lgg-flair --json out.json

Every lgg-flair patient has a tumour on some slice, so whole patients measure only the series
sensitivity. Specificity is measured on windows: consecutive, non-overlapping blocks of
``--window`` slices of each patient's volume, "tumour" when any of its slices is in ``yes``. The
rule is chosen on the validation patients' windows (``ml/splits/lgg-flair.json``) and then read
off, unchanged, on the test patients' windows and volumes. Slices the serving path refuses
(gate or modality check) get no probability, as in the worker. The per-slice probabilities are
cached by model sha256, runtime and file sha256, so a rerun scores only new or changed files.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ml import card as cards
from ml import cli, gate
from ml.metrics import NOTUMOR_INDEX, binary_report
from ml.patient_split import LGG_FLAIR_SPLIT, load_split
from ml.runtimes import RUNTIMES
from ml.series import (
    CONSECUTIVE,
    MAX,
    RULE_FILE,
    TOP_MEAN,
    Rule,
    calls,
    candidate_rules,
    choose_rule,
    sensitivity_specificity,
)

DEFAULT_CACHE = Path(__file__).resolve().parent.parent / "var" / "ml-cache" / "series"
DEFAULT_WINDOW = 10
MIN_SENSITIVITY = 0.97
TOP_M = (2, 3, 5)
MAX_K = 12


def _score(classifier, paths: list[str], batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(tumour probability, refused) per file, as ``ml.evaluate.evaluate`` decides refusals:
    the gate's image and feature checks and the modality check."""
    tumour, refused = [], []
    started, thresholds = time.time(), classifier.gate_thresholds
    for stats, feats, probs, modality in classifier.score_files(paths, batch):
        gated = (
            gate.refusals(stats, feats, thresholds, classifier.gate_stats)
            if thresholds
            else [""] * len(stats)
        )
        refused.extend(bool(g) or bool(m) for g, m in zip(gated, modality, strict=True))
        tumour.extend((1.0 - probs[:, NOTUMOR_INDEX]).tolist())
        cli.progress(len(tumour), len(paths), started, "scoring")
    return np.array(tumour, dtype=np.float64), np.array(refused, dtype=bool)


def cached_scores(classifier, paths: list[str], cache_dir: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """(tumour probability, refused, newly scored) per file; files already scored by this model
    on this runtime come from the cache, keyed by their sha256."""
    digests = [cards.sha256_file(p) for p in paths]
    cache_file = Path(cache_dir) / f"{classifier.card.sha256[:16]}-{classifier.runtime.name}.npz"
    known: dict[str, tuple[float, bool]] = {}
    if cache_file.is_file():
        with np.load(cache_file) as data:
            values = zip(data["tumour"].tolist(), data["refused"].tolist(), strict=True)
            known = dict(zip(data["digest"].tolist(), values, strict=True))
    missing = sorted({i for i, d in enumerate(digests) if d not in known}, key=lambda i: paths[i])
    if missing:
        tumour, refused = _score(classifier, [paths[i] for i in missing])
        for i, t, r in zip(missing, tumour, refused, strict=True):
            known[digests[i]] = (float(t), bool(r))
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        # Written beside, then renamed: an interrupted run leaves the old cache whole.
        fd, tmp = tempfile.mkstemp(dir=cache_file.parent, suffix=".npz")
        with os.fdopen(fd, "wb") as fh:
            np.savez(
                fh,
                digest=np.array(list(known)),
                tumour=np.array([v[0] for v in known.values()]),
                refused=np.array([v[1] for v in known.values()]),
            )
        os.replace(tmp, cache_file)
    tumour = np.array([known[d][0] for d in digests], dtype=np.float64)
    refused = np.array([known[d][1] for d in digests], dtype=bool)
    return tumour, refused, len(missing)


def windows(probs: np.ndarray, labels: np.ndarray, size: int) -> list[tuple[np.ndarray, bool]]:
    """Consecutive, non-overlapping blocks of ``size`` slices from the first slice on (a shorter
    remainder is dropped): (probabilities, contains a tumour slice)."""
    return [
        (probs[s : s + size], bool(labels[s : s + size].any())) for s in range(0, len(probs) - size + 1, size)
    ]


def _counts(called: np.ndarray, labels: np.ndarray) -> dict:
    called, labels = np.asarray(called, dtype=bool), np.asarray(labels, dtype=bool)
    sensitivity, specificity = sensitivity_specificity(called, labels)
    return {
        "n": int(len(labels)),
        "sensitivity": None if sensitivity is None else round(sensitivity, 4),
        "specificity": None if specificity is None else round(specificity, 4),
        "counts": {
            "tp": int((called & labels).sum()),
            "fn": int((~called & labels).sum()),
            "tn": int((~called & ~labels).sum()),
            "fp": int((called & ~labels).sum()),
        },
    }


def _slice_figures(tumour: np.ndarray, refused: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    def figures(probs):
        report = binary_report(probs, labels, threshold)
        return {
            "n": report["n"],
            "sensitivity": report["tumour_recall"],
            "specificity": report["tumour_specificity"],
            "counts": report["counts"],
        }

    return {
        # As ml.evaluate reports lgg-flair: every slice's probability, refused or not.
        "every_slice": figures(tumour),
        # As the worker answers: a refused slice is not flagged.
        "as_served": figures(np.where(refused, 0.0, tumour)),
        "refused": int(refused.sum()),
    }


def part_report(rules: list[Rule], patients: dict, window: int, threshold: float) -> dict:
    """Slice, window and patient figures of one part for each rule in ``rules``."""
    tumour = np.concatenate([p["tumour"] for p in patients.values()])
    refused = np.concatenate([p["refused"] for p in patients.values()])
    labels = np.concatenate([p["labels"] for p in patients.values()])
    blocks = [w for p in patients.values() for w in windows(p["served"], p["labels"], window)]
    block_labels = np.array([label for _, label in blocks], dtype=bool)
    volumes = [p["served"] for p in patients.values()]
    volume_labels = np.array([p["labels"].any() for p in patients.values()], dtype=bool)
    window_calls, volume_calls = calls(rules, [b for b, _ in blocks]), calls(rules, volumes)
    return {
        "patients": len(patients),
        "slices": _slice_figures(tumour, refused, labels, threshold),
        "rules": [
            {
                "rule": rule.as_dict(),
                "windows": _counts(window_calls[i], block_labels),
                "patients": _counts(volume_calls[i], volume_labels),
            }
            for i, rule in enumerate(rules)
        ],
    }


def choose(patients: dict, window: int, threshold: float, min_sensitivity: float = MIN_SENSITIVITY) -> dict:
    """The chosen rule and the best rule of each family on these (validation) patients' windows."""
    blocks = [w for p in patients.values() for w in windows(p["served"], p["labels"], window)]
    series, labels = [b for b, _ in blocks], [label for _, label in blocks]
    # A run longer than the window cannot happen inside one.
    rules = candidate_rules(series, threshold, max_k=min(MAX_K, window), m_values=TOP_M)
    best_of = {}
    for kind, k in [(CONSECUTIVE, None), (MAX, 1), *((TOP_MEAN, m) for m in TOP_M)]:
        family = [r for r in rules if r.kind == kind and (k is None or r.k == k)]
        best_of[f"{kind}" if k is None else f"{kind}-{k}"] = choose_rule(
            family, series, labels, min_sensitivity
        )
    return {"chosen": choose_rule(rules, series, labels, min_sensitivity), "best_of_each_family": best_of}


def load_patients(classifier, data: Path, split: dict[str, str], cache_dir: Path) -> tuple[dict, int]:
    """Per lgg-flair patient in slice order: part, probabilities (NaN where refused), labels."""
    from ml.dicomseries import lgg_patients

    found = lgg_patients(data)
    if not found:
        raise ValueError("no lgg-flair slices (yes/*.jpg, no/*.jpg)")
    unknown = sorted(set(found) - set(split))
    if unknown:
        raise ValueError(f"{len(unknown)} patients are not in the split file, e.g. {unknown[0]}")
    ordered = [s for patient in sorted(found) for s in found[patient]]
    tumour, refused, scored = cached_scores(classifier, [str(s.path) for s in ordered], cache_dir)
    patients, start = {}, 0
    for patient in sorted(found):
        n = len(found[patient])
        t, r = tumour[start : start + n], refused[start : start + n]
        patients[patient] = {
            "part": split[patient],
            "tumour": t,
            "refused": r,
            "served": np.where(r, np.nan, t),
            "labels": np.array([s.tumour for s in found[patient]], dtype=bool),
        }
        start += n
    return patients, scored


def run(
    classifier, data: Path, split_file: Path, window: int, cache_dir: Path, min_sensitivity: float
) -> dict:
    threshold = classifier.threshold
    patients, scored = load_patients(classifier, data, load_split(split_file), cache_dir)
    by_part = {part: {k: v for k, v in patients.items() if v["part"] == part} for part in ("val", "test")}
    if not all(by_part.values()):
        raise ValueError("the split leaves no validation or no test patients in this folder")
    choice = choose(by_part["val"], window, threshold, min_sensitivity)
    chosen = choice["chosen"]
    compared = [r for r in choice["best_of_each_family"].values() if r is not None]
    # The chosen rule, the best of each family, and every k of the consecutive rule for the table.
    every_k = [Rule(CONSECUTIVE, k, threshold) for k in range(1, min(MAX_K, window) + 1)]
    rules = list(dict.fromkeys(([chosen] if chosen else []) + compared + every_k))
    return {
        "model": classifier.card.label,
        "runtime": classifier.runtime.name,
        "data": str(data),
        "split_file": str(split_file),
        "slice_threshold": round(float(threshold), 4),
        "window_slices": window,
        "min_sensitivity": min_sensitivity,
        "chosen_rule": chosen.as_dict() if chosen else None,
        "chosen_rule_says": chosen.describe() if chosen else "no rule reaches the sensitivity on validation",
        "best_of_each_family_on_val": {
            k: r.as_dict() if r else None for k, r in choice["best_of_each_family"].items()
        },
        "val": part_report(rules, by_part["val"], window, threshold),
        "test": part_report(rules, by_part["test"], window, threshold),
        "slices_scored_now": scored,
    }


def main(argv=None) -> int:
    parser = cli.parser("ml.series_eval", __doc__)
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: newest shipped)")
    parser.add_argument("--data", type=Path, required=True, help="the lgg-flair folder (yes/, no/)")
    parser.add_argument("--split-file", type=Path, default=LGG_FLAIR_SPLIT, help="patient -> part")
    parser.add_argument(
        "--window", type=cli.non_negative_int, default=DEFAULT_WINDOW, help="slices per window"
    )
    parser.add_argument("--min-sensitivity", type=float, default=MIN_SENSITIVITY)
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help="per-slice probability cache folder"
    )
    parser.add_argument(
        "--write-rule",
        action="store_true",
        help=f"write the chosen rule beside the model's card ({RULE_FILE})",
    )
    parser.add_argument("--runtime", choices=RUNTIMES, help="keras or litert (default: LiteRT when exported)")
    cli.add_json_argument(parser)
    args = parser.parse_args(argv)
    if args.window < 1:
        return cli.fail("--window must be at least 1")
    from ml.serve import Classifier, ModelLoadError

    try:
        classifier = Classifier.load(args.model or cards.default_model_dir(), runtime=args.runtime)
        result = run(classifier, args.data, args.split_file, args.window, args.cache, args.min_sensitivity)
    except (FileNotFoundError, ValueError, ModelLoadError) as exc:
        return cli.fail(f"{args.data}: {exc}")
    cli.print_report(result, args.json)
    if args.write_rule:
        if result["chosen_rule"] is None:
            return cli.fail("no rule reaches the sensitivity on validation: nothing written")
        write_rule(classifier.model_dir, result)
    return 0


def write_rule(model_dir: Path, result: dict) -> Path:
    """The chosen rule and the figures it was chosen on, beside the model's card."""
    val = next(r for r in result["val"]["rules"] if r["rule"] == result["chosen_rule"])
    test = next(r for r in result["test"]["rules"] if r["rule"] == result["chosen_rule"])
    document = {
        "rule": result["chosen_rule"],
        "says": result["chosen_rule_says"],
        "chosen_on": f"lgg-flair validation patients' windows of {result['window_slices']} slices, "
        f"sensitivity >= {result['min_sensitivity']} ({Path(result['split_file']).name})",
        "validation": {"windows": val["windows"], "patients": val["patients"]},
        "test": {"windows": test["windows"], "patients": test["patients"]},
        "command": "python -m ml.series_eval --write-rule (docs/MODEL.md, Series-level verdict)",
    }
    path = Path(model_dir) / RULE_FILE
    # Written beside it, then renamed: a model directory of symlinks to the shipped files (a
    # test's copy) gets a file of its own instead of writing through the link into the shipped one.
    partial = path.with_name(f".{RULE_FILE}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(document, indent=1) + "\n")
    os.replace(partial, path)
    return path


if __name__ == "__main__":
    sys.exit(main())
