"""The series verdict: stored when a series' last slice is answered, from its slices' tumour
probabilities under the model's shipped series rule; a model without one gives the slices'
answers only, and says so. Fixed predictions pin the rule logic; the shipped model on real
lgg-flair slices checks it end to end."""

import json
from types import SimpleNamespace

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cases.models import Scan, Series, Study
from inference import pipeline
from inference.models import Prediction, SeriesVerdict
from inference.registry import sync_registry
from ml.dicomseries import build_series, patient_slices
from ml.series import RULE_FILE
from tests.cases.series_data import LGG_FLAIR, PATIENT, as_file
from tests.factories import ModelVersionFactory, ScanFactory

pytestmark = pytest.mark.django_db

CLASSES = ("glioma", "meningioma", "notumor", "pituitary")


def answer(tumour_probability, outcome="classified"):
    """What the model returns for a slice with this tumour probability (glioma the likeliest type)."""
    rest = 1.0 - tumour_probability
    probabilities = {"glioma": tumour_probability * 0.7, "meningioma": tumour_probability * 0.2}
    probabilities |= {"pituitary": tumour_probability * 0.1, "notumor": rest}
    label = max(probabilities, key=probabilities.get)
    return SimpleNamespace(
        outcome=outcome,
        outcome_reason="",
        label=label,
        confidence=probabilities[label],
        probabilities=probabilities,
        tumour_probability=tumour_probability,
        tumour_suspected=tumour_probability >= 0.5,
        latency_ms=10.0,
        explanation_png=None,
    )


def with_rule(models_root, version, rule):
    folder = models_root / version.path
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RULE_FILE).write_text(json.dumps({"rule": rule}))


def make_series(case, count, first_instance=1):
    study = Study.objects.create(case=case, study_uid="2.25.100")
    series = Series.objects.create(case=case, study=study, series_uid="2.25.200", modality="MR")
    scans = [
        ScanFactory(case=case, series=series, series_instance=first_instance + i, status=Scan.Status.QUEUED)
        for i in range(count)
    ]
    return series, scans


@pytest.fixture
def model(settings, tmp_path):
    settings.ML_MODELS_ROOT = tmp_path
    return ModelVersionFactory(is_active=True, card={"tumour_threshold": 0.5, "no_finding_class": "notumor"})


@pytest.fixture
def classify(monkeypatch):
    """classify(scan, probability): run the pipeline on the scan with the model answering that."""

    def run(scan, probability):
        result = answer(probability) if probability is not None else None
        monkeypatch.setattr("inference.runtime.classify_image", lambda version, data: result)
        monkeypatch.setattr("inference.runtime.modality_of", lambda data: None)
        if probability is None:  # the slice is refused as not one the question reads
            monkeypatch.setattr("inference.runtime.modality_of", lambda data: ("CT", 0.99))
        return pipeline.classify_scan(scan.pk)

    return run


def test_the_verdict_is_stored_when_the_last_slice_is_classified(case, model, classify, tmp_path):
    with_rule(tmp_path, model, {"kind": "consecutive", "k": 3, "threshold": 0.5})
    series, scans = make_series(case, 5, first_instance=10)
    probabilities = [0.2, 0.6, 0.9, 0.7, 0.1]
    for scan, p in zip(scans[:-1], probabilities, strict=False):
        assert classify(scan, p) == Scan.Status.DONE
        assert not SeriesVerdict.objects.exists()  # slices still to come
    classify(scans[-1], probabilities[-1])

    verdict = SeriesVerdict.objects.get(series=series)
    assert (verdict.model_version, verdict.has_rule, verdict.tumour_suspected) == (model, True, True)
    assert verdict.score == 3 and (verdict.slices, verdict.answered) == (5, 5)
    assert [item["scan"] for item in verdict.most_suspicious] == [scans[i].pk for i in (2, 3, 1, 0, 4)]
    assert [item["slice"] for item in verdict.most_suspicious][:3] == [12, 13, 11]
    assert verdict.headline == "Tumour suspected: 3 consecutive slices at or above 0.5"
    # Reported as the likeliest tumour class of the most suspicious slice, at its probability there.
    assert verdict.label == "glioma" and verdict.probability == pytest.approx(0.9 * 0.7)
    assert verdict.scan_ids == [scan.pk for scan in scans]


def test_a_series_under_the_rule_is_no_tumour_suspected(case, model, classify, tmp_path):
    with_rule(tmp_path, model, {"kind": "consecutive", "k": 3, "threshold": 0.5})
    series, scans = make_series(case, 4)
    for scan, p in zip(scans, [0.2, 0.6, 0.1, 0.7], strict=True):
        classify(scan, p)

    verdict = SeriesVerdict.objects.get(series=series)
    assert verdict.tumour_suspected is False and verdict.headline == "No tumour suspected"
    assert verdict.evidence == "longest run 1 of the 3 consecutive slices at or above 0.5"
    assert (verdict.label, verdict.probability) == ("notumor", pytest.approx(0.3))


def test_a_refused_slice_breaks_a_run_and_is_not_listed(case, model, classify, tmp_path):
    with_rule(tmp_path, model, {"kind": "consecutive", "k": 2, "threshold": 0.5})
    series, scans = make_series(case, 3)
    for scan, p in zip(scans, [0.9, None, 0.8], strict=True):
        classify(scan, p)

    verdict = SeriesVerdict.objects.get(series=series)
    assert Scan.objects.get(pk=scans[1].pk).outcome == Scan.Outcome.WRONG_MODALITY
    assert verdict.tumour_suspected is False and (verdict.slices, verdict.answered) == (3, 2)
    assert [item["scan"] for item in verdict.most_suspicious] == [scans[0].pk, scans[2].pk]


def test_the_max_rule_reads_as_the_highest_slice(case, model, classify, tmp_path):
    with_rule(tmp_path, model, {"kind": "max", "k": 1, "threshold": 0.0693})
    series, scans = make_series(case, 2)
    classify(scans[0], 0.05)
    classify(scans[1], 0.31)

    verdict = SeriesVerdict.objects.get(series=series)
    assert verdict.headline == "Tumour suspected: highest slice probability 0.3100 at or above 0.0693"


def test_a_model_without_a_series_rule_gives_the_slices_answers_and_says_so(
    owner_client, case, model, classify
):
    series, scans = make_series(case, 2)
    classify(scans[0], 0.9)
    classify(scans[1], 0.2)

    verdict = SeriesVerdict.objects.get(series=series)
    assert verdict.has_rule is False and verdict.tumour_suspected is None and not verdict.reviewable
    assert Prediction.objects.filter(scan__series=series).count() == 2
    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert f"No series verdict: model {model} ships no series rule; the slices" in page
    assert page.count("Tumour suspected – review") >= 1  # the slice's own answer still shows


def test_a_later_slice_judges_the_series_again(case, model, classify, tmp_path):
    with_rule(tmp_path, model, {"kind": "max", "k": 1, "threshold": 0.5})
    series, scans = make_series(case, 2)
    classify(scans[0], 0.1)
    classify(scans[1], 0.2)
    assert SeriesVerdict.objects.get(series=series).tumour_suspected is False
    later = ScanFactory(case=case, series=series, series_instance=3, status=Scan.Status.QUEUED)
    classify(later, 0.8)

    verdict = SeriesVerdict.objects.get(series=series)
    assert verdict.tumour_suspected is True and verdict.most_suspicious[0]["scan"] == later.pk


def test_the_case_page_shows_the_series_verdict_with_its_most_suspicious_slices(
    owner_client, case, model, classify, tmp_path
):
    with_rule(tmp_path, model, {"kind": "consecutive", "k": 2, "threshold": 0.5})
    series, scans = make_series(case, 3, first_instance=11)
    for scan, p in zip(scans, [0.7, 0.95, 0.3], strict=True):
        classify(scan, p)

    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    block = page[page.index(f'id="series-verdict-{series.pk}"') :]
    block = block[: block.index("</div>")]
    assert "Tumour suspected: 2 consecutive slices at or above 0.5" in block
    assert f'<a href="#scan-{scans[1].pk}">slice 12</a>, <a href="#scan-{scans[0].pk}">slice 11</a>' in block


@pytest.fixture(scope="module")
def lgg_slices():
    if not LGG_FLAIR.is_dir():
        pytest.skip(f"lgg-flair slices not found at {LGG_FLAIR}")
    return patient_slices(LGG_FLAIR, PATIENT)


@pytest.fixture
def shipped_model(require_model):
    sync_registry()
    active = pipeline.ModelVersion.active_for("tumour-mri")
    if active is None or not (pipeline.runtime.model_dir(active) / RULE_FILE).is_file():
        pytest.skip("no active tumour model with a series rule")
    return active


def test_the_shipped_model_judges_a_real_series(owner_client, case, shipped_model, lgg_slices):
    """Five lgg-flair slices (two tumour-free, three with tumour) uploaded as a DICOM series and
    classified by the shipped model: the verdict follows its rule over the recorded probabilities."""
    first_tumour = next(i for i, item in enumerate(lgg_slices) if item.tumour)
    chosen = lgg_slices[first_tumour - 2 : first_tumour + 3]
    files = [SimpleUploadedFile(f"{i}.dcm", as_file(ds)) for i, ds in enumerate(build_series(chosen))]
    assert owner_client.post(reverse("cases:upload", args=[case.pk]), {"files": files}).status_code == 302
    series = Series.objects.get(case=case)
    for scan in series.slices():
        pipeline.classify_scan(scan.pk)

    verdict = SeriesVerdict.objects.get(series=series, model_version=shipped_model)
    slices = list(series.slices())
    probs = {p.scan_id: p.tumour_probability for p in Prediction.objects.filter(scan__in=slices)}
    rule = verdict.parsed_rule
    answered = [probs[s.pk] for s in slices if probs.get(s.pk) is not None]
    assert verdict.answered == len(answered) and verdict.slices == 5
    assert verdict.tumour_suspected == rule.suspected([probs.get(s.pk, float("nan")) for s in slices])
    assert verdict.tumour_suspected is True  # three glioma slices: the shipped rule finds them
    ranked = sorted(answered, reverse=True)
    assert [item["probability"] for item in verdict.most_suspicious] == pytest.approx(ranked, abs=1e-6)


def test_the_case_flag_follows_the_series_verdict_not_its_single_slices(case, model, classify, tmp_path):
    """Rule "2 consecutive at 0.5": one isolated slice over the threshold flags the slice, not
    the series, so the case is not flagged; a run of two flags it."""
    with_rule(tmp_path, model, {"kind": "consecutive", "k": 2, "threshold": 0.5})
    series, scans = make_series(case, 3)
    classify(scans[0], 0.9)
    case.refresh_from_db()
    assert case.flag == case.Flag.TUMOUR_SUSPECTED  # no verdict yet: the slice's own flag
    classify(scans[1], 0.1)
    classify(scans[2], 0.2)
    case.refresh_from_db()
    assert SeriesVerdict.objects.get(series=series).tumour_suspected is False
    assert case.flag == case.Flag.NONE
    later = ScanFactory(case=case, series=series, series_instance=4, status=Scan.Status.QUEUED)
    scans[2].predictions.update(tumour_probability=0.7)
    classify(later, 0.8)
    case.refresh_from_db()
    assert case.flag == case.Flag.TUMOUR_SUSPECTED


def test_retracting_the_last_slice_still_to_answer_judges_the_series_without_it(
    case, owner, model, classify, tmp_path, django_capture_on_commit_callbacks
):
    # A held slice (burned-in text) its uploader takes back: the rest of the series is answered.
    with_rule(tmp_path, model, {"kind": "max", "k": 1, "threshold": 0.5})
    series, scans = make_series(case, 3)
    classify(scans[0], 0.1)
    classify(scans[1], 0.8)
    Scan.objects.filter(pk=scans[2].pk).update(status=Scan.Status.HELD)
    assert not SeriesVerdict.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        Scan.objects.get(pk=scans[2].pk).retract(owner, "wrong patient's slice")

    verdict = SeriesVerdict.objects.get(series=series)
    assert verdict.scan_ids == [scans[0].pk, scans[1].pk] and verdict.tumour_suspected is True


def test_retracting_a_judged_slice_judges_the_series_again_without_it(
    case, owner, model, classify, tmp_path, django_capture_on_commit_callbacks
):
    with_rule(tmp_path, model, {"kind": "max", "k": 1, "threshold": 0.5})
    series, scans = make_series(case, 3)
    for scan, p in zip(scans, [0.1, 0.2, 0.9], strict=True):
        classify(scan, p)
    assert SeriesVerdict.objects.get(series=series).tumour_suspected is True

    with django_capture_on_commit_callbacks(execute=True):
        Scan.objects.get(pk=scans[2].pk).retract(owner, "slice of another series")

    verdict = SeriesVerdict.objects.get(series=series)
    assert verdict.scan_ids == [scans[0].pk, scans[1].pk] and verdict.tumour_suspected is False
