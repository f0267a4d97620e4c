"""Model performance (from a ModelVersion's card) and field performance (from clinicians' reviews)."""

from __future__ import annotations

import functools
import json
from collections import defaultdict

from django.db.models import Count, Exists, OuterRef, Q
from django.db.models.functions import TruncMonth

from . import charts
from .consent import reviews_without_consent, usable_reviews

NOT_CLASSIFIED = "not classified"
SPLITS = ["train", "val", "test"]


def card_figures(card: dict) -> dict:
    """Figures (as plotly JSON) and tables for one model card; a section whose data the card lacks
    is left out. Kept per card content: a version's card does not change between requests, and
    building its figures through plotly's validation is most of the model page's time."""
    return _card_figures(json.dumps(card, sort_keys=True))


@functools.lru_cache(maxsize=32)
def _card_figures(card_json: str) -> dict:
    result = _build_card_figures(json.loads(card_json))
    result["figures"] = {name: figure.to_plotly_json() for name, figure in result["figures"].items()}
    return result


def _build_card_figures(card: dict) -> dict:
    figures, tables = {}, {}
    metrics = card.get("metrics") or {}
    training = card.get("training") or {}
    classes = list(metrics.get("labels") or card.get("classes") or [])

    # PostgreSQL's jsonb does not keep key order: order splits and classes explicitly.
    split_sizes = _ordered(training.get("split_sizes") or {}, SPLITS)
    if split_sizes:
        figures["split_sizes"] = charts.bar(
            "Images per split", list(split_sizes), list(split_sizes.values()), xaxis="split"
        )
    label_counts = _ordered(training.get("label_counts") or {}, SPLITS)
    if label_counts:
        labels = sorted(
            {label for counts in label_counts.values() for label in counts}, key=_class_key(classes)
        )
        figures["label_counts"] = charts.grouped_bars(
            "Label frequencies per split",
            labels,
            {split: [counts.get(label, 0) for label in labels] for split, counts in label_counts.items()},
            colours=charts.SPLIT_COLOURS,
        )

    history = card.get("history") or {}
    if history.get("loss"):
        epochs = list(range(1, len(history["loss"]) + 1))
        figures["loss"] = charts.lines(
            "Loss per epoch",
            {"train": (epochs, history["loss"]), "validation": (epochs, history.get("val_loss", []))},
            xaxis="epoch",
            yaxis="loss",
            dashed={"validation"},
        )
        accuracy_key = next((k for k in ("accuracy", "mask_accuracy") if k in history), None)
        if accuracy_key:
            figures["accuracy"] = charts.lines(
                "Accuracy per epoch",
                {
                    "train": (epochs, history[accuracy_key]),
                    "validation": (epochs, history.get(f"val_{accuracy_key}", [])),
                },
                xaxis="epoch",
                yaxis="accuracy",
                dashed={"validation"},
                yrange=[0, 1.02],
            )

    matrix = metrics.get("confusion_matrix")
    if matrix and classes:
        figures["confusion"] = charts.confusion_matrix(
            f"Confusion matrix (test split, n={metrics.get('n', '?')})",
            matrix,
            classes,
            classes,
            truth="test split",
            prediction="model",
        )
    per_class = metrics.get("per_class") or {}
    if per_class:
        tables["per_class"] = [
            {"label": label, **{k: per_class[label].get(k) for k in ("precision", "recall", "f1", "support")}}
            for label in sorted(per_class, key=_class_key(classes))
        ]
        figures["per_class"] = charts.grouped_bars(
            "Precision, recall and F1 per class",
            [row["label"] for row in tables["per_class"]],
            {k: [row[k] for row in tables["per_class"]] for k in ("precision", "recall", "f1")},
            yaxis="score",
        )
    if metrics.get("roc_curves"):
        curves = _ordered(metrics["roc_curves"], classes)
        drawable = {name: curve for name, curve in curves.items() if _has_both_classes(curve)}
        tables["roc_one_class"] = [name for name in curves if name not in drawable]
        if drawable:
            figures["roc"] = charts.roc_curves(drawable, operating_point(card))
    if metrics.get("reliability"):
        figures["reliability"] = charts.reliability(metrics["reliability"], metrics.get("ece"))

    baselines = card.get("baselines") or {}
    if baselines and metrics.get("accuracy") is not None:
        names = ["this model"] + [name.replace("_", " ") for name in baselines]
        values = [metrics["accuracy"]] + [b.get("accuracy") for b in baselines.values()]
        figures["baselines"] = charts.bar(
            "Accuracy: the model beside simple baselines (same test split)",
            names,
            values,
            yaxis="accuracy",
            text=[f"{v:.3f}" if v is not None else "" for v in values],
        )
        tables["baselines"] = [
            {"name": name.replace("_", " "), "accuracy": b.get("accuracy"), "input": b.get("input", "")}
            for name, b in baselines.items()
        ]

    by_source = card.get("metrics_by_source") or {}
    tables["by_source"] = [
        {
            "source": source,
            "n": values.get("n"),
            "accuracy": values.get("accuracy"),
            "macro_f1": values.get("macro_f1"),
            "tumour_recall": (values.get("tumour_present") or {}).get("tumour_recall"),
            "tumour_specificity": (values.get("tumour_present") or {}).get("tumour_specificity"),
        }
        for source, values in by_source.items()
    ]
    summary = {
        "accuracy": metrics.get("accuracy"),
        "macro_f1": metrics.get("macro_f1"),
        "ece": metrics.get("ece"),
        "ece_before_calibration": metrics.get("ece_before_calibration"),
        "tumour_recall": metrics.get("tumour_recall"),
        "tumour_specificity": metrics.get("tumour_specificity"),
        "n": metrics.get("n"),
        "split": metrics.get("split"),
        "epochs_run": training.get("epochs_run"),
        "seconds": training.get("seconds"),
        "duplicates": training.get("duplicates") or {},
    }
    return {"figures": figures, "tables": tables, "summary": summary}


def _has_both_classes(curve: dict) -> bool:
    """False for the curve of a split that holds one side only: no positives (the true positive
    rate stays 0), no negatives (the false positive rate stays 0), or an AUC that is not a number."""
    auc = curve.get("auc")
    return (
        max(curve.get("fpr") or [0]) > 0
        and max(curve.get("tpr") or [0]) > 0
        and isinstance(auc, int | float)
        and auc == auc
    )


def operating_point(card: dict) -> dict | None:
    """The shipped tumour threshold (the card's ``tumour_threshold``, as the worker applies it)
    with the test-split sensitivity and specificity it gives; None when the card lacks either."""
    metrics = card.get("metrics") or {}
    present = metrics.get("tumour_present") or {}
    threshold = card.get("tumour_threshold")
    sensitivity = present.get("tumour_recall", metrics.get("tumour_recall"))
    specificity = present.get("tumour_specificity", metrics.get("tumour_specificity"))
    if None in (threshold, sensitivity, specificity) or present.get("threshold", threshold) != threshold:
        return None
    return {"threshold": threshold, "sensitivity": sensitivity, "specificity": specificity}


def _ordered(mapping: dict, first: list) -> dict:
    """``mapping`` with the keys named in ``first`` first, in that order, then the rest sorted."""
    keys = [key for key in first if key in mapping] + sorted(key for key in mapping if key not in first)
    return {key: mapping[key] for key in keys}


def _class_key(classes):
    return lambda label: (classes.index(label) if label in classes else len(classes), label)


def field_performance(model_version=None, task=None) -> dict:
    """Agreement of the model with clinicians' latest review of each prediction, per model
    version and per month, with the confusion matrix (``matrix[reviewed][predicted]``, rows in
    ``reviewed_labels`` order, columns in ``predicted_labels`` order). Only cases with analytics
    consent count; ``not_consented`` is how many latest reviews that leaves out. ``task``: only
    the versions of that clinical question."""
    from inference.models import Review

    later = Review.objects.filter(prediction=OuterRef("prediction")).filter(
        Q(created_at__gt=OuterRef("created_at")) | Q(created_at=OuterRef("created_at"), id__gt=OuterRef("id"))
    )
    reviews = usable_reviews().filter(~Exists(later))
    not_consented = reviews_without_consent().filter(~Exists(later))
    if task is not None:
        reviews = reviews.filter(prediction__model_version__task=task)
        not_consented = not_consented.filter(prediction__model_version__task=task)
    if model_version is not None:
        reviews = reviews.filter(prediction__model_version=model_version)
        not_consented = not_consented.filter(prediction__model_version=model_version)
    rows = (
        reviews.annotate(month=TruncMonth("created_at"))
        .values(
            "prediction__model_version",
            "prediction__model_version__name",
            "prediction__model_version__version",
            "prediction__model_version__classes",
            "month",
            "prediction__label",
            "label",
        )
        .annotate(count=Count("id"))
        .order_by("prediction__model_version", "month")
    )
    versions: dict[int, dict] = {}
    for row in rows:
        version = versions.setdefault(
            row["prediction__model_version"],
            {
                "pk": row["prediction__model_version"],
                "name": "{} {}".format(
                    row["prediction__model_version__name"], row["prediction__model_version__version"]
                ),
                "classes": list(row["prediction__model_version__classes"] or []),
                "months": defaultdict(lambda: {"reviews": 0, "agreed": 0}),
                "pairs": defaultdict(int),
                "reviews": 0,
                "agreed": 0,
            },
        )
        predicted = row["prediction__label"] or NOT_CLASSIFIED
        agreed = row["count"] if row["prediction__label"] == row["label"] else 0
        month = version["months"][row["month"].strftime("%Y-%m")]
        month["reviews"] += row["count"]
        month["agreed"] += agreed
        version["reviews"] += row["count"]
        version["agreed"] += agreed
        version["pairs"][(predicted, row["label"])] += row["count"]
    result = []
    for version in versions.values():
        predicted_labels = {p for p, _ in version["pairs"]}
        reviewed_labels = {r for _, r in version["pairs"]}
        key = _class_key(version["classes"] + [NOT_CLASSIFIED])
        predicted_order = sorted(set(version["classes"]) | predicted_labels, key=key)
        reviewed_order = sorted(set(version["classes"]) | reviewed_labels, key=key)
        # The clinician's review is the truth: one row per reviewed label, as on the model page.
        matrix = [[version["pairs"].get((p, r), 0) for p in predicted_order] for r in reviewed_order]
        months = [
            {"month": month, **values, "rate": values["agreed"] / values["reviews"]}
            for month, values in sorted(version["months"].items())
        ]
        result.append(
            {
                "pk": version["pk"],
                "figure_id": f"fig-confusion-{version['pk']}",
                "name": version["name"],
                "reviews": version["reviews"],
                "agreed": version["agreed"],
                "rate": version["agreed"] / version["reviews"],
                "months": months,
                "predicted_labels": predicted_order,
                "reviewed_labels": reviewed_order,
                "matrix": matrix,
                "confusion_figure": charts.confusion_matrix(
                    f"{version['name']}: model vs clinician (n={version['reviews']})",
                    matrix,
                    reviewed_order,
                    predicted_order,
                    truth="clinician's review",
                    prediction="model",
                    colorscale="Greens",
                ),
            }
        )
    trend = charts.agreement_trend(result) if result else None
    return {"versions": result, "trend": trend, "not_consented": not_consented.count()}
