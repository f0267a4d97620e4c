"""Series-level verdicts from per-slice tumour probabilities (pure numpy, no model): is a tumour
suspected in this series, and which slices should the reader look at first.

A slice that got no answer (refused by the gate or the modality check) is NaN: it never passes a
threshold, breaks a run of consecutive slices and is left out of the maximum and the top-m mean.
How the rule in use was chosen, and its figures: docs/MODEL.md, "Series-level verdict".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CONSECUTIVE = "consecutive"  # k consecutive slices at or above the slice threshold
MAX = "max"  # the highest slice probability at or above the rule's own threshold
TOP_MEAN = "top_mean"  # the mean of the m highest slice probabilities at or above its threshold
KINDS = (CONSECUTIVE, MAX, TOP_MEAN)
# Beside a model's card: the rule chosen for that model by ``python -m ml.series_eval --write-rule``.
RULE_FILE = "series_rule.json"


def _probs(probs) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 1:
        raise ValueError(f"expected one probability per slice in slice order, got shape {probs.shape}")
    return probs


def longest_run(probs, threshold: float) -> int:
    """The most consecutive slices whose probability is at or above ``threshold``."""
    passing = np.nan_to_num(_probs(probs), nan=-np.inf) >= threshold
    best = run = 0
    for hit in passing:
        run = run + 1 if hit else 0
        best = max(best, run)
    return best


def top_mean(probs, m: int) -> float:
    """The mean of the ``m`` highest answered probabilities (all of them when fewer); 0.0 if none."""
    answered = _probs(probs)
    answered = np.sort(answered[~np.isnan(answered)])[::-1]
    return float(answered[:m].mean()) if answered.size else 0.0


def most_suspicious(probs, limit: int | None = None) -> list[int]:
    """Slice indices, most suspicious first: by probability, ties in slice order; unanswered
    slices are not listed."""
    probs = _probs(probs)
    answered = np.flatnonzero(~np.isnan(probs))
    # lexsort sorts by the last key first: descending probability, then ascending index.
    order = answered[np.lexsort((answered, -probs[answered]))]
    return [int(i) for i in order[:limit]]


@dataclass(frozen=True)
class Rule:
    """One series rule. ``k``: consecutive slices (CONSECUTIVE) or slices averaged (TOP_MEAN; 1
    for MAX). ``threshold``: the slice threshold the run counts against (CONSECUTIVE, the card's
    ``tumour_threshold``) or the cut-off on the series score (MAX, TOP_MEAN)."""

    kind: str
    k: int
    threshold: float

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown series rule {self.kind!r}: one of {', '.join(KINDS)}")
        if self.k < 1 or (self.kind == MAX and self.k != 1):
            raise ValueError(f"{self.kind} needs k >= 1 (1 for max), got {self.k}")

    def score(self, probs) -> float:
        """The series score the rule compares: the longest run for CONSECUTIVE, else a probability."""
        if self.kind == CONSECUTIVE:
            return float(longest_run(probs, self.threshold))
        return top_mean(probs, self.k)

    def suspected(self, probs) -> bool:
        if self.kind == CONSECUTIVE:
            return longest_run(probs, self.threshold) >= self.k
        return bool(len(_probs(probs))) and self.score(probs) >= self.threshold

    def describe(self) -> str:
        if self.kind == CONSECUTIVE:
            slices = "a slice reaches" if self.k == 1 else f"{self.k} consecutive slices reach"
            return f"tumour suspected if {slices} {self.threshold:.4g}"
        what = "the highest slice probability" if self.kind == MAX else f"the mean of the top {self.k} slices"
        return f"tumour suspected if {what} reaches {self.threshold:.4g}"

    def as_dict(self) -> dict:
        return {"kind": self.kind, "k": self.k, "threshold": round(float(self.threshold), 4)}

    @classmethod
    def from_dict(cls, data: dict) -> Rule:
        return cls(kind=data["kind"], k=int(data["k"]), threshold=float(data["threshold"]))


@dataclass(frozen=True)
class SeriesVerdict:
    tumour_suspected: bool
    score: float  # what the rule compared (see Rule.score)
    most_suspicious: list[int]  # slice indices, most suspicious first
    slices: int
    answered: int  # slices with a probability (not refused)
    rule: Rule


def verdict(probs, rule: Rule, limit: int | None = 5) -> SeriesVerdict:
    """The series' verdict under ``rule`` and its ``limit`` most suspicious slices."""
    probs = _probs(probs)
    return SeriesVerdict(
        tumour_suspected=rule.suspected(probs),
        score=rule.score(probs),
        most_suspicious=most_suspicious(probs, limit),
        slices=len(probs),
        answered=int((~np.isnan(probs)).sum()),
        rule=rule,
    )


def candidate_rules(series: list[np.ndarray], slice_threshold: float, max_k: int = 12, m_values=(2, 3, 5)):
    """The rules worth comparing on ``series``: CONSECUTIVE for k = 1..max_k at the slice
    threshold, and MAX / TOP_MEAN with every distinct score these series reach as a cut-off (to
    4 decimals), so choosing among them misses no operating point."""
    rules = [Rule(CONSECUTIVE, k, slice_threshold) for k in range(1, max_k + 1)]
    for m in (1, *m_values):
        kind = MAX if m == 1 else TOP_MEAN
        scores = np.array([top_mean(p, m) for p in series])
        # Cut-offs rounded down to 4 decimals, as the card writes thresholds: the rule written
        # down is exactly the rule measured, and it still calls every series the score did.
        rules += [Rule(kind, m, float(cut)) for cut in np.unique(np.floor(scores * 1e4) / 1e4)]
    return rules


def calls(rules, series: list[np.ndarray]) -> np.ndarray:
    """(rules, series) booleans: rule i calls series j "tumour suspected". Each family's score is
    computed once per series, so thousands of cut-offs cost one comparison each."""
    scores: dict[tuple, np.ndarray] = {}
    out = np.zeros((len(rules), len(series)), dtype=bool)
    for i, rule in enumerate(rules):
        family = (rule.kind, rule.threshold) if rule.kind == CONSECUTIVE else (rule.kind, rule.k)
        if family not in scores:
            scores[family] = np.array([rule.score(p) if len(p) else -np.inf for p in series])
        cut = rule.k if rule.kind == CONSECUTIVE else rule.threshold
        out[i] = scores[family] >= cut
    return out


def sensitivity_specificity(called, labels) -> tuple[float | None, float | None]:
    """Share of tumour series called, share of tumour-free series cleared (None without any)."""
    called, labels = np.asarray(called, dtype=bool), np.asarray(labels, dtype=bool)
    sensitivity = float(called[labels].mean()) if labels.any() else None
    specificity = float((~called[~labels]).mean()) if (~labels).any() else None
    return sensitivity, specificity


def choose_rule(rules, series: list[np.ndarray], labels, min_sensitivity: float = 0.97) -> Rule | None:
    """The rule with the best specificity among those whose sensitivity on ``series`` (labels:
    True for tumour) is at least ``min_sensitivity``; ties go to the higher sensitivity, then the
    simpler rule (CONSECUTIVE before MAX before TOP_MEAN, smaller k, earlier in ``rules``). None
    when no rule reaches the sensitivity."""
    labels = np.asarray(labels, dtype=bool)
    best, best_key = None, None
    for rank, (rule, called) in enumerate(zip(rules, calls(rules, series), strict=True)):
        sensitivity, specificity = sensitivity_specificity(called, labels)
        if sensitivity is not None and sensitivity < min_sensitivity:
            continue
        key = (specificity or 0.0, sensitivity or 0.0, -KINDS.index(rule.kind), -rule.k, -rank)
        if best_key is None or key > best_key:
            best, best_key = rule, key
    return best


def load_rule(model_dir: Path | str, slice_threshold: float) -> Rule:
    """The series rule chosen for the model in ``model_dir`` (its RULE_FILE); without one, "a slice
    reaches the card's threshold", which is what flags a case from single slices today."""
    path = Path(model_dir) / RULE_FILE
    if not path.is_file():
        return Rule(CONSECUTIVE, 1, slice_threshold)
    try:
        return Rule.from_dict(json.loads(path.read_text())["rule"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path} does not hold a series rule: {exc}") from exc
