"""Analytics pages: who may see them, and what the model and field performance pages show."""

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import plotly
import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.urls import reverse

from analytics.importer import import_folder
from analytics.stats import compute_dataset_stats
from cases.models import Consent
from inference.models import Review
from tests.factories import (
    CaseFactory,
    ModelVersionFactory,
    PredictionFactory,
    ReviewFactory,
    ScanFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(small_folder):
    dataset = import_folder(small_folder, "small").dataset
    compute_dataset_stats(dataset.pk)
    return dataset


def page_urls(dataset, model_version):
    return [
        reverse("analytics:index"),
        reverse("analytics:dataset", args=[dataset.pk]),
        reverse("analytics:dataset_file", args=[dataset.pk, "mean-glioma.png"]),
        reverse("analytics:model", args=[model_version.pk]),
        reverse("analytics:field"),
    ]


def figures(response):
    """Every plotly figure the page embeds, by its script id."""
    found = re.findall(
        r'<script id="([^"]+)" type="application/json">(.*?)</script>', response.content.decode(), re.S
    )
    return {name: json.loads(body) for name, body in found}


def test_anonymous_users_are_sent_to_login(client, dataset, model_version):
    for url in page_urls(dataset, model_version):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("login")), url
    response = client.post(reverse("analytics:dataset_resample", args=[dataset.pk]), {"label": "glioma"})
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_clinicians_and_stewards_see_every_page(client_for, owner, steward, dataset, model_version):
    for user in (owner, steward):
        client = client_for(user)
        for url in page_urls(dataset, model_version):
            assert client.get(url).status_code == 200, (user, url)


def test_a_user_with_no_role_is_refused(client_for, dataset, model_version):
    client = client_for(UserFactory(username="nobody"))
    for url in page_urls(dataset, model_version):
        assert client.get(url).status_code == 403, url


def test_layout_links_analytics_and_serves_plotly_locally(owner_client, dataset):
    response = owner_client.get(reverse("cases:list"))
    assert f'href="{reverse("analytics:index")}"'.encode() in response.content
    page = owner_client.get(reverse("analytics:dataset", args=[dataset.pk])).content.decode()
    assert '/static/vendor/plotly.min.js"' in page
    # Every script and stylesheet is served from this host: nothing loads from a CDN.
    # (A bare "cdn" substring check is flaky: the random CSRF token can contain it.)
    assert not re.search(r'<(?:script|link)[^>]+(?:src|href)="(?:https?:)?//', page)


def test_plotly_js_is_the_copy_the_pinned_plotly_package_ships(tmp_path, settings):
    shipped = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert Path(finders.find("vendor/plotly.min.js")) == shipped
    settings.STATIC_ROOT = str(tmp_path / "static")
    call_command("collectstatic", interactive=False, verbosity=0)
    assert (tmp_path / "static" / "vendor" / "plotly.min.js").read_bytes() == shipped.read_bytes()


def test_dataset_page_shows_distributions_images_and_montages(owner_client, dataset):
    response = owner_client.get(reverse("analytics:dataset", args=[dataset.pk]))
    shown = figures(response)
    assert shown["fig-labels"]["data"][0]["y"] == [10, 10, 10, 10]
    content = response.content.decode()
    for tumour in ("glioma", "meningioma", "pituitary"):
        assert reverse("analytics:dataset_file", args=[dataset.pk, f"diff-{tumour}-notumor.png"]) in content
    assert "random sample of 10 of 10" in content

    chosen = owner_client.get(
        reverse("analytics:dataset", args=[dataset.pk]), {"a": "notumor", "b": "glioma"}
    )
    assert (
        reverse("analytics:dataset_file", args=[dataset.pk, "diff-notumor-glioma.png"])
        in chosen.content.decode()
    )
    image = owner_client.get(reverse("analytics:dataset_file", args=[dataset.pk, "mean-notumor.png"]))
    assert image["Content-Type"] == "image/png"
    assert b"".join(image.streaming_content).startswith(b"\x89PNG")
    assert (
        owner_client.get(reverse("analytics:dataset_file", args=[dataset.pk, "mean-glioma.npy"])).status_code
        == 404
    )


def test_new_montage_sample_on_request(owner_client, dataset):
    before = dataset.stats.files["montage-glioma.png"]
    response = owner_client.post(
        reverse("analytics:dataset_resample", args=[dataset.pk]), {"label": "glioma"}
    )
    assert response.status_code == 302
    dataset.stats.refresh_from_db()
    assert dataset.stats.files["montage-glioma.png"] != before
    assert (
        owner_client.post(
            reverse("analytics:dataset_resample", args=[dataset.pk]), {"label": "x"}
        ).status_code
        == 404
    )


def test_only_stewards_queue_a_recompute(client_for, owner, steward, dataset, monkeypatch):
    from analytics import tasks

    monkeypatch.setattr(tasks.compute_dataset_stats, "delay", lambda pk: None)
    url = reverse("analytics:dataset_recompute", args=[dataset.pk])
    assert client_for(owner).post(url).status_code == 403
    assert client_for(steward).post(url).status_code == 302
    dataset.stats.refresh_from_db()
    assert dataset.stats.status == "pending"


def test_model_page_draws_the_card(owner_client, model_version, card):
    response = owner_client.get(reverse("analytics:model", args=[model_version.pk]))
    shown = figures(response)
    assert shown["fig-confusion"]["data"][0]["z"] == card["metrics"]["confusion_matrix"]
    assert shown["fig-loss"]["data"][0]["y"] == card["history"]["loss"]
    assert shown["fig-loss"]["data"][1]["y"] == card["history"]["val_loss"]
    assert shown["fig-accuracy"]["data"][1]["y"] == card["history"]["val_mask_accuracy"]
    assert shown["fig-split-sizes"]["data"][0]["y"] == [300, 40, 40]
    assert [trace["name"] for trace in shown["fig-roc"]["data"]][0] == "glioma (AUC 0.900)"
    assert shown["fig-reliability"]["data"][0]["y"] == [0.66, 0.93]
    assert shown["fig-baselines"]["data"][0]["y"] == [0.85, 0.55, 0.7]
    assert shown["fig-per-class"]["data"][0]["y"] == pytest.approx([0.8, 0.81, 0.82, 0.83])


def test_model_page_without_a_card_says_so(owner_client):
    version = ModelVersionFactory(card={})
    response = owner_client.get(reverse("analytics:model", args=[version.pk]))
    assert b"no model card stored" in response.content


def test_field_performance_per_version_and_month(owner_client, owner, steward, team, model_version):
    newer = ModelVersionFactory(name="bt", version="v2")
    case = CaseFactory(team=team, created_by=owner)
    Consent.record(case, Consent.Scope.ANALYTICS, Consent.State.GRANTED, steward)

    def reviewed(version, predicted, reviewed_label, when, superseded=None):
        prediction = PredictionFactory(scan=ScanFactory(case=case), model_version=version, label=predicted)
        if superseded:
            first = ReviewFactory(prediction=prediction, reviewer=owner, label=superseded)
            Review.objects.filter(pk=first.pk).update(created_at=when.replace(day=1))
        review = ReviewFactory(prediction=prediction, reviewer=owner, label=reviewed_label)
        Review.objects.filter(pk=review.pk).update(created_at=when)

    january, february = datetime(2026, 1, 15, tzinfo=UTC), datetime(2026, 2, 3, tzinfo=UTC)
    reviewed(model_version, "glioma", "glioma", january)
    reviewed(model_version, "glioma", "meningioma", january)
    reviewed(model_version, "notumor", "notumor", february, superseded="glioma")  # the later review counts
    reviewed(model_version, None, "notumor", february)
    reviewed(newer, "pituitary", "pituitary", february)

    response = owner_client.get(reverse("analytics:field"))
    context = {v["name"]: v for v in response.context["versions"]}
    old = context["bt v1"]
    assert (old["reviews"], old["agreed"]) == (4, 2)
    assert [(m["month"], m["reviews"], m["agreed"]) for m in old["months"]] == [
        ("2026-01", 2, 1),
        ("2026-02", 2, 1),
    ]
    # Rows: the clinician's review (the truth); columns: the model's prediction.
    matrix = dict(zip(old["reviewed_labels"], old["matrix"], strict=True))
    columns = old["predicted_labels"]
    assert matrix["meningioma"][columns.index("glioma")] == 1
    assert matrix["notumor"][columns.index("not classified")] == 1
    assert (context["bt v2"]["reviews"], context["bt v2"]["agreed"]) == (1, 1)
    trend = figures(response)["fig-trend"]
    assert trend["data"][0]["y"] == [0.5, 0.5]


def test_confusion_matrices_have_truth_in_rows_and_room_for_their_labels(
    owner_client, owner, steward, team, model_version
):
    case = CaseFactory(team=team, created_by=owner)
    Consent.record(case, Consent.Scope.ANALYTICS, Consent.State.GRANTED, steward)
    prediction = PredictionFactory(scan=ScanFactory(case=case), model_version=model_version, label=None)
    ReviewFactory(prediction=prediction, reviewer=owner, label="meningioma")

    model_page = figures(owner_client.get(reverse("analytics:model", args=[model_version.pk])))
    field_page = figures(owner_client.get(reverse("analytics:field")))
    for figure in (model_page["fig-confusion"], field_page[f"fig-confusion-{model_version.pk}"]):
        layout, (heatmap,) = figure["layout"], figure["data"]
        assert layout["yaxis"]["title"]["text"].startswith("true label")
        assert layout["xaxis"]["title"]["text"].startswith("predicted label")
        # Margins grow to fit "meningioma" and "not classified" instead of clipping them.
        assert layout["xaxis"]["automargin"] and layout["yaxis"]["automargin"]
        assert len(heatmap["z"]) == len(heatmap["y"]) and len(heatmap["z"][0]) == len(heatmap["x"])
    field = field_page[f"fig-confusion-{model_version.pk}"]["data"][0]
    assert "clinician" in field_page[f"fig-confusion-{model_version.pk}"]["layout"]["yaxis"]["title"]["text"]
    row, column = field["y"].index("meningioma"), field["x"].index("not classified")
    assert field["z"][row][column] == 1


def test_every_chart_title_sits_below_the_mode_bar(owner_client, model_version):
    shown = figures(owner_client.get(reverse("analytics:model", args=[model_version.pk])))
    assert shown
    for name, figure in shown.items():
        title = figure["layout"]["title"]
        # Anchored to the top of the plotting area, inside a top margin the mode bar does not reach.
        assert (title["yref"], title["y"], title["yanchor"]) == ("paper", 1, "bottom"), name
        assert figure["layout"]["margin"]["t"] >= 60, name


def test_roc_curves_mark_the_shipped_threshold(owner_client, model_version, card):
    shown = figures(owner_client.get(reverse("analytics:model", args=[model_version.pk])))
    (point,) = [trace for trace in shown["fig-roc"]["data"] if trace.get("mode") == "markers"]
    present = card["metrics"]["tumour_present"]
    assert point["x"] == [pytest.approx(1 - present["tumour_specificity"])]
    assert point["y"] == [present["tumour_recall"]]
    assert point["hovertemplate"].startswith("threshold 0.19: sensitivity 99.8%, specificity 67.3%")


def test_roc_curves_without_a_threshold_in_the_card_mark_no_point(owner_client, card):
    del card["tumour_threshold"]
    version = ModelVersionFactory(card=card)
    shown = figures(owner_client.get(reverse("analytics:model", args=[version.pk])))
    assert not [trace for trace in shown["fig-roc"]["data"] if trace.get("mode") == "markers"]


def test_performance_pages_show_one_question_at_a_time(owner_client, owner, steward, team, model_version):
    dementia = ModelVersionFactory(name="dementia", version="d1", task="dementia-mri")
    case = CaseFactory(team=team, created_by=owner)
    Consent.record(case, Consent.Scope.ANALYTICS, Consent.State.GRANTED, steward)
    for version in (model_version, dementia):
        ReviewFactory(
            prediction=PredictionFactory(scan=ScanFactory(case=case), model_version=version), reviewer=owner
        )

    default = owner_client.get(reverse("analytics:field"))
    assert [v["name"] for v in default.context["versions"]] == ["bt v1"]
    chosen = owner_client.get(reverse("analytics:field"), {"task": "dementia-mri"})
    assert [v["name"] for v in chosen.context["versions"]] == ["dementia d1"]
    assert "Field performance: Dementia staging (MRI)" in chosen.content.decode()
    index = owner_client.get(reverse("analytics:index"), {"task": "tumour-ct"}).content.decode()
    assert "No model registered for Tumour (CT) yet." in index and "dementia d1" not in index
    assert owner_client.get(reverse("analytics:field"), {"task": "knee-xray"}).status_code == 404
