"""Does the model still find tumours when the slice looks like a research pipeline's?

    python -m ml.stress --data ../shared/datasets/brain-tumor-mri/Training --split test
    python -m ml.stress --data ../shared/datasets/br35h --split test --json out.json

Other hospitals' and research collections' slices (BraTS, OASIS) are often skull-stripped.
If the only skull-stripped images a model saw in training were healthy, "stripped" becomes a
shortcut for "no tumour". This command scores each image twice through the serving
preprocessing: as it is and skull-stripped (head mask eroded by ``--strip`` of the head's
size, everything outside set to black, at the image's own resolution), and reports the
tumour-present figures of both, so the shortcut shows as a drop in recall.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from ml import cli
from ml.cli import print_report, progress
from ml.data import UNKNOWN_CODE, label_code
from ml.evaluate import add_selection_arguments, report_header, select_or_explain
from ml.metrics import binary_report
from ml.preprocess import decode, preprocess_grey, skull_strip


def stress(classifier, paths: list[str], labels: np.ndarray, fraction: float, batch: int = 64) -> dict:
    """Tumour-present figures (and 4-class accuracy where typed) on the images as they are
    and skull-stripped."""
    plain, stripped = [], []
    started = time.time()
    for start in range(0, len(paths), batch):
        xs, ys = [], []
        for path in paths[start : start + batch]:
            grey, _ = decode(path)
            xs.append(preprocess_grey(grey, classifier.size))
            ys.append(preprocess_grey(skull_strip(grey, fraction), classifier.size))
        plain.append(classifier.predict_arrays(np.stack(xs))[1])
        stripped.append(classifier.predict_arrays(np.stack(ys))[1])
        progress(min(start + batch, len(paths)), len(paths), started, "scoring")
    out = {"n": len(paths), "strip_fraction": fraction}
    no_finding = classifier.card.classes.index(classifier.card.no_finding_class)
    is_tumour = labels != no_finding
    typed = labels < UNKNOWN_CODE
    for name, probs in (("original", np.concatenate(plain)), ("skull_stripped", np.concatenate(stripped))):
        report = binary_report(1 - probs[:, no_finding], is_tumour, classifier.threshold)
        entry = {k: report[k] for k in ("tumour_recall", "tumour_specificity") if report.get(k) is not None}
        if typed.any() and len(np.unique(labels[typed])) > 1:
            entry["accuracy_4class"] = round(float((probs[typed].argmax(1) == labels[typed]).mean()), 4)
        out[name] = entry
    return out


def main(argv=None) -> int:
    parser = cli.parser("ml.stress", __doc__)
    add_selection_arguments(parser)
    parser.add_argument("--strip", type=float, default=0.07, help="erosion as a fraction of the head's size")
    args = parser.parse_args(argv)

    selection = select_or_explain(args)
    if selection is None:
        return 2
    classifier, items, _ = selection
    labels = np.array([label_code(it.label, classifier.card.classes) for it in items])
    result = {
        **report_header(classifier, args),
        **stress(classifier, [str(it.path) for it in items], labels, args.strip),
    }
    print_report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
